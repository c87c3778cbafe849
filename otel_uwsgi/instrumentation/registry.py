"""Which libraries are instrumented: at import, before the application exists, in the process that
loads it (the uWSGI master, or each worker with ``lazy-apps``).

``otel-instrumentations = auto`` (the default) instruments every installed OpenTelemetry
instrumentation, as ``opentelemetry-instrument`` finds them (:mod:`.entry_points`), minus
``otel-python-disabled-instrumentations``; a list names them.  otel-uwsgi adds its own for what
needs it: Django, instrumented when it builds its middleware chain (:mod:`.django`); mysqlclient
and sqlite3 when no instrumentor for them is installed, so MySQLdb is never wrapped twice
(:mod:`.dbapi`); on the fast path (``otel-fast-instrumentation``, on by default, where proven
equal: :mod:`.fast.verified`), Django's server spans and its queries through every driver,
Flask's server spans, outgoing ``requests`` calls and Redis commands.
Instrumenting builds no provider and starts no thread: it is safe in the master.

Keyword arguments for an instrumentor (Django's ``request_hook``, sqlcommenter ...) are given in
the wsgi file, before ``import otel_uwsgi.auto``: :func:`otel_uwsgi.instrumentation_options`.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Iterable
from typing import Any, Optional

from otel_uwsgi.config.settings import ConfigError
from otel_uwsgi.instrumentation import dbapi, entry_points, late_import
from otel_uwsgi.instrumentation.django import instrument_django
from otel_uwsgi.instrumentation.missing import fast_unavailable

logger = logging.getLogger(__name__)

_done: set[str] = set()
_fast: set[str] = set()  # of those, traced by otel-uwsgi's fast path
_options: dict[str, dict[str, Any]] = {}
_metrics = False  # whether the instrumentations' metrics are exported (otel-metrics-exporter)
#: Names otel-uwsgi accepted before it read entry points: ``mysql`` meant mysqlclient.
ALIASES = {"mysql": "mysqlclient"}


def set_options(name: str, **options: Any) -> None:
    """Keyword arguments for ``name``'s ``instrument()`` call (see :func:`otel_uwsgi.instrumentation_options`)."""
    _options.setdefault(name, {}).update(options)


def instrument(
    names: Iterable[str],
    *,
    fast: bool = False,
    disabled: Iterable[str] = (),
    strict: bool = False,
    where: str = "uwsgi.ini",
    metrics: bool = False,
) -> list[str]:
    """Instrument ``names`` (``auto``: every installed instrumentation, less ``disabled``;
    ``none``: nothing).  ``strict``: an unknown name in the list is a :class:`ConfigError` (it was
    written in the ini), else a warning.  ``metrics``: a MeterProvider will take the
    instrumentations' metrics.  Idempotent.  Returns every name instrumented so far."""
    global _metrics
    _metrics = metrics
    names = tuple(names)
    if names == ("none",):
        return sorted(_done)
    installed = entry_points.installed()
    loaded_before = late_import.frameworks_loaded()
    if names == ("auto",):
        skip = {ALIASES.get(n, n) for n in disabled}
        wanted = sorted((set(installed) | set(dbapi.OWN)) - skip)
        explicit = False
    else:
        wanted = _known(names, installed, strict, where)
        explicit = True
    for name in wanted:
        if name in _done:
            continue
        try:
            if _instrument_one(name, installed, explicit, fast):
                _done.add(name)
        except Exception:  # noqa: BLE001 - a broken instrumentor is logged, never a failed app load
            logger.exception("otel-uwsgi: could not instrument %s", name)
    late_import.check(loaded_before, _done, _fast)  # an app created before this: said, with the fix
    if _done:
        fast_note = f" (fast path: {', '.join(sorted(_fast))})" if _fast else ""
        logger.info("otel-uwsgi: instrumented %s%s", ", ".join(sorted(_done)), fast_note)
    return sorted(_done)


def on_fast_path() -> list[str]:
    """The instrumentations traced by otel-uwsgi's fast path in this process (the rest: stock)."""
    return sorted(_fast)


def _fast_scope(name: str, entry_point: Any, options: dict[str, Any]) -> Optional[tuple[str, str]]:
    """The scope (name, version) of the stock instrumentation the fast path stands in for, where it
    is proven equal; None (and one info line naming why) where the stock one must trace."""
    from otel_uwsgi.instrumentation.fast import verified

    dist = getattr(entry_point, "dist", None)
    stock = verified.canonical(dist.name) if dist is not None else verified.DBAPI
    libraries = {
        "django": ("django",),
        "sqlite3": ("django",),
        "flask": ("flask",),
        "requests": ("requests",),
        "redis": ("redis",),
    }.get(name, ("django", name))
    try:
        if name in dbapi.DRIVERS and verified.sqlcommenter(_options.get("django", {})):
            reason = "instrumentation_options('django', ...) turns sqlcommenter on (stock only)"
        elif name == "django" and _metrics:  # Flask's fast path records them; Django's does not (yet)
            reason = "otel-metrics-exporter is on, and only the stock one records Django's HTTP server metrics"
        elif name == "requests" and _metrics:
            reason = "otel-metrics-exporter is on, and only the stock one records the HTTP client duration metrics"
        elif name == "requests":
            reason = verified.client_headers_problem(os.environ) or verified.why_stock(stock, libraries, options, name)
        else:
            reason = verified.why_stock(stock, libraries, options, name)
        if reason is None:  # what the fast path imports from the instrumentation packages: now, not at first use
            from otel_uwsgi.instrumentation.fast import db, http  # noqa: F401
    except Exception as error:  # noqa: BLE001 - a release it was not built for: the stock path, never none
        fast_unavailable(error)
        return None
    if reason is not None:
        verified.tell(name, reason)
        return None
    return verified.stock_scope(stock)


def _instrument_one(name: str, installed: dict[str, Any], explicit: bool, fast: bool) -> bool:
    options = _options.get(name, {})
    entry_point = installed.get(name)
    if name == "django":
        if not _runnable(name, installed, explicit):
            return False
        scope = _fast_scope(name, entry_point, options) if fast else None
        if not instrument_django(explicit, scope, options):
            return False
        if scope is not None:
            _fast.add(name)
        return True
    if entry_point is not None and not _runnable(name, installed, explicit):
        return False
    if fast and name == "flask" and entry_point is not None:  # else, or where it declines: the stock one
        if _fast_scope(name, entry_point, options) is not None:
            from otel_uwsgi.instrumentation.fast.flask import instrument_flask_fast

            instrument_flask_fast()
            _fast.add(name)
            return True
    if fast and name == "requests" and entry_point is not None:
        if _fast_scope(name, entry_point, options) is not None:
            from otel_uwsgi.instrumentation.fast import requests_client

            if requests_client.install():
                _fast.add(name)
                return True
    if fast and name in dbapi.DRIVERS and (entry_point is not None or dbapi.driver_installed(name)):
        # Django's queries through Django's execute_wrapper; the stock instrumentor would trace
        # them a second time.  Without Django, or where the fast path cannot load: the stock one.
        scope = _fast_scope(name, entry_point, options) if dbapi.django_installed() else None
        if scope is not None and dbapi.fast_queries(name, scope):
            _fast.add(name)
            return True
    if entry_point is not None:
        try:
            entry_points.instrument(entry_point, options)
        except ModuleNotFoundError as error:  # its library is not installed (as opentelemetry-instrument skips it)
            (logger.warning if explicit else logger.debug)("otel-uwsgi: %s is not instrumented: %s", name, error)
            return False
        if fast and name == "redis" and _fast_scope(name, entry_point, options) is not None:
            _redis_fast()
        return True
    if name in dbapi.OWN:
        return dbapi.instrument_own(name, explicit)
    package = entry_points.package_names().get(name, f"{entry_points.PACKAGE_PREFIX}{name}")
    logger.warning(
        "otel-uwsgi: %s is not instrumented: %s is not installed (pip install %s, or "
        "`opentelemetry-bootstrap -a requirements` for every library the app uses)",
        name,
        package,
        package,
    )
    return False


def _redis_fast() -> None:
    """Redis commands on the fast path, over the stock instrumentor just installed (which keeps
    pipelines, cluster and asyncio clients); where it cannot, the stock one traces them all."""
    try:
        from otel_uwsgi.instrumentation.fast import redis_client

        if redis_client.install():
            _fast.add("redis")
    except Exception as error:  # noqa: BLE001 - a release it was not built for: the stock path, never none
        fast_unavailable(error)


def _runnable(name: str, installed: dict[str, Any], explicit: bool) -> bool:
    """Whether ``name``'s instrumentor supports the installed library (one line when not)."""
    entry_point = installed.get(name)
    problem = entry_points.conflict(entry_point) if entry_point is not None else None
    if problem is None:
        return True
    required, found = problem
    if found is None:
        (logger.warning if explicit else logger.debug)(
            "otel-uwsgi: %s is not instrumented: it instruments %s, which is not installed", name, required
        )
    else:
        logger.warning(
            "otel-uwsgi: %s is not instrumented: its instrumentation supports %s, and %s is installed",
            name,
            required,
            found,
        )
    return False


def _known(names: tuple[str, ...], installed: dict[str, Any], strict: bool, where: str) -> list[str]:
    """The listed names, each an installed instrumentation, one otel-uwsgi provides, or one the
    OpenTelemetry project publishes (then a warning says what to install); anything else is an
    error in the ini (a warning from the environment) naming what is installed."""
    available = sorted(set(installed) | set(dbapi.OWN) | {"django"})
    published = set(entry_points.package_names())
    known = []
    for raw in names:
        name = raw if raw in installed else ALIASES.get(raw, raw)
        if name in available or name in published:
            known.append(name)
            continue
        close = difflib.get_close_matches(name, available, n=1)
        message = (
            f"otel-uwsgi: unknown instrumentation {raw!r} in otel-instrumentations ({where})"
            + (f"; did you mean {close[0]}?" if close else "")
            + f" installed: {', '.join(available)}"
        )
        if strict:
            raise ConfigError(message)
        logger.warning("%s", message)
    return known
