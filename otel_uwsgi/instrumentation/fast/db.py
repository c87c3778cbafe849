"""DB client spans from Django's ``execute_wrapper``, one per query, for MySQL, PostgreSQL and SQLite.

The stock dbapi integration wraps every connection and cursor in proxies and recomputes the
connection's attributes for every query.  Here one wrapper object sits in each Django
connection's ``execute_wrappers`` from the moment the connection object exists (so the queries
Django runs while opening a connection are traced too, as with the stock proxies); it reads the
driver connection's attributes once per connection and names each statement from a cache.
The spans match the stock ones: name (first word of the statement, else the database, else the
system), kind CLIENT, attributes, and on failure the driver's exception and ERROR status.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.instrumentation import utils as _instrumentation_utils
from opentelemetry.instrumentation._semconv import (
    _get_schema_url_for_signal_types,
    _OpenTelemetrySemanticConventionStability,
    _OpenTelemetryStabilitySignalType,
    _set_db_name,
    _set_db_statement,
    _set_db_system,
    _set_db_user,
    _set_http_net_peer_name_client,
    _set_http_peer_port_client,
)
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_uwsgi.instrumentation.fast.sql import OPERATIONS, operation_name
from otel_uwsgi.instrumentation.fast.tracer import LazyTracer
from otel_uwsgi.traces.context_ops import get_current

logger = logging.getLogger(__name__)

#: Django ``connection.vendor`` of each system traced from ``execute_wrapper`` (the dbapi ``db.system``).
VENDORS = {"mysql": "mysql", "sqlite": "sqlite"}

_wanted: dict[str, tuple[str, Mapping[str, str], LazyTracer]] = {}  # vendor -> (db.system, attribute paths, tracer)


_SUPPRESS_KEYS = tuple(
    getattr(_instrumentation_utils, name, None)
    for name in ("_SUPPRESS_INSTRUMENTATION_KEY", "_SUPPRESS_INSTRUMENTATION_KEY_PLAIN")
)


#: Whether ``is_instrumentation_enabled()`` can be read from the current context directly (once,
#: not twice through ``get_value``: four Python calls per query): where the API keeps both keys.
_SUPPRESS_INLINE = None not in _SUPPRESS_KEYS


def _statement(sql: object) -> str:
    if isinstance(sql, str):
        return sql
    if isinstance(sql, bytes):
        return sql.decode("utf8", "replace")
    return ""


def _driver_error(exc: BaseException) -> BaseException:
    """The driver's exception behind Django's re-raised copy: the one the stock proxies record."""
    cause = exc.__cause__
    if cause is not None and type(exc).__module__ == "django.db.utils" and type(cause).__name__ == type(exc).__name__:
        return cause
    return exc


class QuerySpans:
    """An ``execute_wrapper`` making one CLIENT span per query of one Django connection."""

    __slots__ = ("_system", "_paths", "_tracer", "_raw", "_static", "_fallback", "_statement_keys", "_modes")

    def __init__(self, system: str, paths: Mapping[str, str], tracer: LazyTracer) -> None:
        self._system, self._paths, self._tracer = system, paths, tracer
        self._raw: Any = None
        self._static: dict[str, Any] = {}
        self._fallback = system
        stability = _OpenTelemetrySemanticConventionStability
        stability._initialize()
        self._modes = (
            stability._get_opentelemetry_stability_opt_in_mode(_OpenTelemetryStabilitySignalType.DATABASE),
            stability._get_opentelemetry_stability_opt_in_mode(_OpenTelemetryStabilitySignalType.HTTP),
        )
        probe: dict[str, Any] = {}
        _set_db_statement(probe, "probe", self._modes[0])  # a non-empty value: some releases skip ""
        self._statement_keys = tuple(probe)

    def _connected(self, raw: Any) -> None:
        """Attributes of a new driver connection, read as the stock integration reads them."""
        db_mode, http_mode = self._modes
        props: dict[str, Any] = {}
        for key, path in self._paths.items():
            value = functools.reduce(lambda obj, name: getattr(obj, name, None), path.split("."), raw)
            if value:
                props[key] = value
        database = props.get("database", "")
        if database and hasattr(database, "decode"):
            database = database.decode(errors="ignore")
        static: dict[str, Any] = {}
        _set_db_system(static, self._system, db_mode)
        _set_db_name(static, database, db_mode)
        user = props.get("user")
        if isinstance(user, bytes):
            user = user.decode()
        if user is not None:
            _set_db_user(static, str(user), db_mode)
        if props.get("host") is not None:
            _set_http_net_peer_name_client(static, props["host"], http_mode)
        if props.get("port") is not None:
            _set_http_peer_port_client(static, props["port"], http_mode)
        self._raw, self._static, self._fallback = raw, static, database or self._system

    def __call__(self, execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: dict) -> Any:
        """Django's ``execute_wrapper`` call: ``execute(sql, params, many, context)`` in its span."""
        span = self._start(context["connection"].connection, sql)
        if span is None:
            return execute(sql, params, many, context)
        try:
            return execute(sql, params, many, context)
        except Exception as exc:
            _record_error(span, exc)
            raise
        finally:
            span.end()

    def traced(self, raw: Any, sql: Any, run: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``run(*args, **kwargs)`` (the query ``sql`` on the driver connection ``raw``) inside its
        CLIENT span (arguments passed on, not closed over: no lambda made and called per query)."""
        span = self._start(raw, sql)
        if span is None:
            return run(*args, **kwargs)
        try:
            return run(*args, **kwargs)
        except Exception as exc:
            _record_error(span, exc)
            raise
        finally:
            span.end()

    def _start(self, raw: Any, sql: Any) -> Any:
        """The query's CLIENT span, started; None where instrumentation is suppressed, or where the
        span could not be started (logged once: telemetry never fails a query)."""
        try:
            if _SUPPRESS_INLINE:  # is_instrumentation_enabled(), read here (see _SUPPRESS_INLINE)
                ctx = get_current()
                if ctx.get(_SUPPRESS_KEYS[0]) or ctx.get(_SUPPRESS_KEYS[1]):
                    return None
            elif not is_instrumentation_enabled():
                return None
            if raw is not self._raw:
                self._connected(raw)
            attributes = dict(self._static)
            statement = sql if type(sql) is str else _statement(sql)  # _statement(), inline for a str
            for key in self._statement_keys:
                attributes[key] = statement
            tracer = self._tracer.tracer or self._tracer.get()
            name = OPERATIONS.get(sql) if type(sql) is str else None  # operation_name()'s cache, read here
            if name is None:
                name = operation_name(sql)
            return tracer.start_span(name or self._fallback, None, SpanKind.CLIENT, attributes)
        except Exception:  # noqa: BLE001 - a driver attribute that raises, a failing tracer
            _start_failed()
            return None


_failed: list[bool] = []


def _start_failed() -> None:
    """A query span that could not be started (a driver attribute that raises, say): the query runs
    untraced; logged with its traceback the first time only."""
    if not _failed:
        _failed.append(True)
        logger.exception("otel-uwsgi: could not start a query's span; such queries run untraced")


def _record_error(span: Any, exc: Exception) -> None:
    """The driver's exception and the ERROR status, as the stock proxies record a failed query."""
    if span.is_recording():
        error = _driver_error(exc)
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


def _attach(connection: Any) -> None:
    wanted = _wanted.get(getattr(connection, "vendor", ""))
    if wanted is None or any(isinstance(w, QuerySpans) for w in connection.execute_wrappers):
        return
    connection.execute_wrappers.insert(0, QuerySpans(*wanted))


def install(system: str, connection_attributes: Mapping[str, str], scope: tuple[str, str]) -> bool:
    """Trace the queries of every Django connection of ``system`` (``mysql``, ``postgresql``,
    ``sqlite``), with the instrumentation ``scope`` (name, version).

    Returns False when Django is not installed (the caller then uses the stock integration).
    """
    try:
        from django.db.backends.base.base import BaseDatabaseWrapper
    except ImportError:
        return False
    _OpenTelemetrySemanticConventionStability._initialize()
    schema_url = _get_schema_url_for_signal_types(
        [_OpenTelemetryStabilitySignalType.DATABASE, _OpenTelemetryStabilitySignalType.HTTP]
    )
    tracer = LazyTracer(scope[0], schema_url, scope[1])
    if system == "postgresql":  # from the cursor, not from execute_wrapper (see _trace_postgres_cursors)
        _trace_postgres_cursors(system, connection_attributes, tracer)
        return True
    _wanted[VENDORS[system]] = (system, dict(connection_attributes), tracer)
    original = BaseDatabaseWrapper.__init__
    if not getattr(original, "_otel_uwsgi", False):

        @functools.wraps(original)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            try:
                _attach(self)
            except Exception:  # noqa: BLE001 - telemetry never breaks a connection
                logger.exception("otel-uwsgi: could not trace queries of a %s connection", getattr(self, "vendor", "?"))

        __init__._otel_uwsgi = True  # type: ignore[attr-defined]
        BaseDatabaseWrapper.__init__ = __init__  # type: ignore[method-assign]
    _attach_existing()
    return True


def _trace_postgres_cursors(system: str, paths: Mapping[str, str], tracer: LazyTracer) -> None:
    """Django's PostgreSQL backend also runs queries with the driver's own cursor (``SET
    TimeZone`` on a new connection, ``SELECT 1`` to test one), which ``execute_wrapper`` does not
    see; the stock psycopg instrumentations trace every query through the connection's cursor
    factory.  So for PostgreSQL the spans come from the cursor too: each new connection's cursor
    factory is the driver's (Django's) with a traced ``execute`` / ``executemany``."""
    try:
        from django.db.backends.postgresql.base import DatabaseWrapper
    except Exception:  # noqa: BLE001 - no PostgreSQL driver installed: nothing to trace
        return
    original = DatabaseWrapper.get_new_connection
    if getattr(original, "_otel_uwsgi", False):
        return

    @functools.wraps(original)
    def get_new_connection(self: Any, *args: Any, **kwargs: Any) -> Any:
        raw = original(self, *args, **kwargs)
        try:
            factory = raw.cursor_factory
            raw.cursor_factory = _tracing_cursor(factory or _default_cursor(), QuerySpans(system, paths, tracer), raw)
        except Exception:  # noqa: BLE001 - telemetry never breaks a connection
            logger.exception("otel-uwsgi: could not trace the queries of a PostgreSQL connection")
        return raw

    get_new_connection._otel_uwsgi = True  # type: ignore[attr-defined]
    DatabaseWrapper.get_new_connection = get_new_connection  # type: ignore[method-assign]


def _default_cursor() -> Any:
    """psycopg2's cursor class (a psycopg2 connection's ``cursor_factory`` is None by default)."""
    from psycopg2.extensions import cursor

    return cursor


def _tracing_cursor(base: Any, spans: QuerySpans, raw: Any) -> Any:
    class TracingCursor(base):  # type: ignore[misc,valid-type]
        def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
            return spans.traced(raw, query, base.execute, self, query, *args, **kwargs)

        def executemany(self, query: Any, *args: Any, **kwargs: Any) -> Any:
            return spans.traced(raw, query, base.executemany, self, query, *args, **kwargs)

    return TracingCursor


def _attach_existing() -> None:
    """Connections made before this call (Django set up before ``otel_uwsgi.auto``): this thread's."""
    from django.conf import settings

    if not settings.configured:
        return
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        _attach(connection)
