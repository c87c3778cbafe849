"""Library instrumentation done at import time, before the application exists.

Instrumentation must precede the app: Django builds its middleware chain once, in
``get_wsgi_application()``, so instrumenting later (e.g. in a post-fork hook while the app was
loaded in the master) yields no server spans at all.  Instrumenting creates no threads, so doing
it in the master is fork-safe; only the provider and exporter are built after fork.

Each integration is optional and guarded: a missing library is a debug line under ``auto`` and a
warning naming the package to install when the user asked for it explicitly.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Iterable
from typing import Any, Callable

logger = logging.getLogger(__name__)

_done: set[str] = set()


def _missing(name: str, explicit: bool, package: str, exc: BaseException) -> None:
    log = logger.warning if explicit else logger.debug
    log("otel-uwsgi: %s not instrumented: %s (install %s)", name, exc, package)


def _django(explicit: bool, fast: bool = False) -> bool:
    try:
        from django.core.handlers import base
        from opentelemetry.instrumentation.django import DjangoInstrumentor
    except ImportError as exc:
        _missing("django", explicit, "otel-uwsgi[django]", exc)
        return False

    def instrument_now() -> None:
        if fast:  # otel-fast-instrumentation: otel-uwsgi's own middleware instead of the stock one
            from otel_uwsgi.fast import add_middleware

            add_middleware()
            return
        instrumentor = DjangoInstrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()

    from django.apps import apps

    if apps.ready:
        # The app may already have built its middleware chain: those handlers stay untraced.
        logger.warning(
            "otel-uwsgi: Django was set up before otel_uwsgi.auto was imported; requests served by "
            "a handler built before this point produce no server spans. Put `import otel_uwsgi.auto` "
            "first in the wsgi file, before get_wsgi_application()."
        )
        instrument_now()
        return True

    original = base.BaseHandler.load_middleware
    if getattr(original, "_otel_uwsgi", False):
        return True

    @functools.wraps(original)
    def load_middleware(self: Any, *args: Any, **kwargs: Any) -> Any:
        # Settings are configured by now (django.setup() ran), so the instrumentor sees the real
        # MIDDLEWARE instead of configuring empty settings, as it would at import time.
        try:
            instrument_now()
        except Exception:  # noqa: BLE001 - a tracing problem must not stop the app
            logger.exception("otel-uwsgi: could not instrument Django")
        return original(self, *args, **kwargs)

    load_middleware._otel_uwsgi = True  # type: ignore[attr-defined]
    base.BaseHandler.load_middleware = load_middleware
    return True


def _dbapi(module_name: str, system: str, attributes: dict[str, str], package: str) -> Callable[[bool, bool], bool]:
    def instrument(explicit: bool, fast: bool = False) -> bool:
        try:
            module = importlib.import_module(module_name)
            from opentelemetry.instrumentation.dbapi import trace_integration
        except ImportError as exc:
            _missing(system, explicit, package, exc)
            return False
        if fast:  # Django's queries through connection.execute_wrapper; without Django, the stock way
            from otel_uwsgi.fast import install_db

            if install_db(system, attributes):
                return True
        trace_integration(module, "connect", system, connection_attributes=attributes)
        return True

    return instrument


_INTEGRATIONS: dict[str, Callable[[bool, bool], bool]] = {
    "django": _django,
    # mysqlclient through the generic DB-API integration; Django's MySQL backend calls
    # MySQLdb.connect, so its queries become children of the request span.
    "mysql": _dbapi("MySQLdb", "mysql", {"database": "db", "port": "port", "host": "host", "user": "user"},
                    "otel-uwsgi[mysql]"),
    # Django's SQLite backend imports sqlite3.dbapi2 and calls its connect.
    "sqlite3": _dbapi("sqlite3.dbapi2", "sqlite", {"database": "database"}, "the standard sqlite3 module"),
}


def instrument(names: Iterable[str], *, fast: bool = False) -> list[str]:
    """Instrument the named libraries (``auto``: every supported one that is installed).

    ``fast`` (``otel-fast-instrumentation``) uses :mod:`otel_uwsgi.fast` for Django and its
    queries instead of the stock instrumentations.  Idempotent per library.  Returns the names
    instrumented by this or an earlier call.
    """
    names = tuple(names)
    explicit = names not in (("auto",),)
    if names == ("none",):
        return sorted(_done)
    wanted = list(_INTEGRATIONS) if not explicit else list(names)
    for name in wanted:
        if name in _done:
            continue
        try:
            if _INTEGRATIONS[name](explicit, fast):
                _done.add(name)
        except Exception:  # noqa: BLE001 - a broken library is logged, never fatal
            logger.exception("otel-uwsgi: could not instrument %s", name)
    if _done:
        logger.info("otel-uwsgi: instrumented %s%s", ", ".join(sorted(_done)), " (fast path)" if fast else "")
    return sorted(_done)


def wrap_wsgi(application: Callable[..., Any]) -> Callable[..., Any]:
    """Trace a plain WSGI app: ``application = otel_uwsgi.wrap_wsgi(application)``."""
    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

    if isinstance(application, OpenTelemetryMiddleware):
        return application
    return OpenTelemetryMiddleware(application)
