"""An app created before ``import otel_uwsgi.auto``: said once, naming where, and the fix.

Flask's stock instrumentation replaces ``flask.Flask`` when it instruments: an app created before
(or from a ``Flask`` class imported before) stays a plain Flask app, and its requests produce no
server spans, silently.  Django's handler built before its instrumentation lacks the tracing
middleware (:mod:`.django` warns, with :func:`fix`).  The Flask check runs after instrumenting
and only where Flask had been imported before: with ``import otel_uwsgi.auto`` first, the
documented order, it costs nothing.  Flask's fast path adopts every app, whenever it was created:
then there is nothing to say.  A plain WSGI app is traced by :func:`otel_uwsgi.wrap_wsgi` whenever
it is called: its order does not matter.
"""

from __future__ import annotations

import logging
import os
import sys
import sysconfig
import weakref
from collections.abc import Collection, Iterator
from typing import Any, Optional

logger = logging.getLogger(__name__)

_said: set[str] = set()  # what was already warned of in this process
_untraced_handlers: weakref.WeakSet[Any] = weakref.WeakSet()  # Django handlers built before instrumenting
#: (framework, the module its apps are made from): imported before instrumenting, apps may exist.
_FRAMEWORKS = (("flask", "flask.app"),)


def frameworks_loaded() -> frozenset[str]:
    """The frameworks already imported (before instrumenting: what apps could exist already)."""
    return frozenset(name for name, module in _FRAMEWORKS if module in sys.modules)


def caller_file() -> Optional[str]:
    """The file of the first caller outside otel-uwsgi: the code running ``import otel_uwsgi.auto``
    (or ``otel_uwsgi.setup()``, ``otel_uwsgi.wrap_wsgi()``)."""
    frame = sys._getframe(1)
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        ours = module.partition(".")[0] == "otel_uwsgi" and not module.startswith("otel_uwsgi.demo.")
        if not (ours or frame.f_code.co_filename.startswith("<frozen importlib")):
            return frame.f_code.co_filename
        frame = frame.f_back
    return None


def fix() -> str:
    """What to do about a late import, naming the file."""
    return f"put `import otel_uwsgi.auto` first in {caller_file() or 'the wsgi file'}"


def check(before: Collection[str], instrumented: Collection[str], fast: Collection[str]) -> list[str]:
    """Warn (once each) of the Flask apps that were created before instrumenting and stay untraced.

    ``before``: :func:`frameworks_loaded` as it was before instrumenting; ``instrumented``, ``fast``:
    the instrumentations now on, and those on otel-uwsgi's fast path.  Returns the lines logged.
    """
    if "flask" not in before or "flask" not in instrumented or "flask" in fast:
        return []
    lines = []
    try:
        for line in _late_flask():
            if line not in _said:
                _said.add(line)
                logger.warning("%s", line)
                lines.append(line)
    except Exception:  # noqa: BLE001 - a check never stops the app from loading
        logger.debug("otel-uwsgi: could not look for Flask apps created before instrumenting", exc_info=True)
    return lines


def _late_flask() -> Iterator[str]:
    """Untraced Flask apps in any module's globals (named by the module that created them), and
    modules of the app's own (outside site-packages and the standard library) holding a Flask class
    imported before instrumenting: the apps they create would be untraced too."""
    import flask
    from flask.app import Flask

    traced_class = flask.Flask  # the instrumented subclass, once the stock instrumentation is on
    libraries = tuple({sysconfig.get_paths()[k] + os.sep for k in ("stdlib", "platstdlib", "purelib", "platlib")})
    apps: dict[str, None] = {}  # ordered set of import names
    holders: dict[str, None] = {}
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] in ("flask", "opentelemetry", "otel_uwsgi"):
            continue
        namespace = getattr(module, "__dict__", None) or {}
        for value in list(namespace.values()):
            kind = type(value)  # never isinstance(): it asks a lazy proxy for __class__ (and sets it up)
            if issubclass(kind, Flask):
                if not value.__dict__.get("_is_instrumented_by_opentelemetry"):
                    apps[str(value.import_name)] = None
            elif kind is type and issubclass(value, Flask) and not issubclass(value, traced_class):
                if not (getattr(module, "__file__", None) or "").startswith(libraries):
                    holders[name] = None
    for import_name in apps:
        yield (
            f"otel-uwsgi: the Flask app of {import_name!r} was created before otel_uwsgi.auto was imported, "
            f"so Flask's instrumentation does not trace it (no server spans); {fix()}"
        )
    for name in holders:
        if name not in apps:
            yield (
                f"otel-uwsgi: {name!r} imported flask.Flask before otel_uwsgi.auto was imported, so Flask's "
                f"instrumentation does not trace the apps it creates (no server spans); {fix()}"
            )


def django_message() -> str:
    """The warning for Django set up before instrumenting, naming the modules holding a handler
    built already (its middleware chain has no tracing middleware), and the fix."""
    holders: list[str] = []
    try:
        from django.core.handlers.base import BaseHandler

        for name, module in list(sys.modules.items()):
            namespace = getattr(module, "__dict__", None) or {}
            handlers = [value for value in list(namespace.values()) if issubclass(type(value), BaseHandler)]
            if handlers:
                holders.append(name)
                _untraced_handlers.update(handlers)
    except Exception:  # noqa: BLE001 - the warning goes out without the names
        pass
    where = f"already built in {', '.join(repr(n) for n in holders)}" if holders else "built before this point"
    return (
        "otel-uwsgi: Django was set up before otel_uwsgi.auto was imported; requests served by a handler "
        f"{where} produce no server spans; {fix()}, before get_wsgi_application()"
    )


def built_before(handler: object) -> bool:
    """Whether ``handler`` is a Django handler :func:`django_message` found built before instrumenting."""
    return handler in _untraced_handlers


def reset() -> None:
    """Forget what was said (tests)."""
    _said.clear()
