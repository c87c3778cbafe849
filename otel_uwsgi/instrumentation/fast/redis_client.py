"""The client span of a Redis command: opentelemetry-instrumentation-redis's span, made with less.

The stock instrumentation wraps ``Redis.execute_command`` (and pipelines, cluster and asyncio
clients).  Per command it checks ``is_recording()`` and reads the span's name twice each, sets
each attribute with its own ``set_attribute`` call (its own lock, its own checks), and rebuilds the
connection's attributes through five semantic-convention helpers although they only change when
the connection's host, port, path or database does.  Here only the synchronous
``Redis.execute_command`` is re-wrapped, after the stock instrumentor has wrapped everything: the
span's name and ``db.statement`` come from the stock module's own helpers, the connection's
attributes from its own ``_extract_conn_attributes`` (kept per host, port, path and database), all
set in one call, in the stock order, by the same tracer scope.  Everything else — pipelines,
``immediate_execute_command``, cluster and asyncio clients, the RediSearch commands whose spans
get more attributes — stays with the stock wrapper.  With options (hooks) for the stock instrumentor
the fast path is not installed at all (:mod:`.verified`).
``tests/unit/instrumentation/fast/test_redis_spans_equal_stock.py`` holds the spans of both equal,
command for command, in the three conventions modes.
"""

from __future__ import annotations

from typing import Any

import redis
from opentelemetry.instrumentation import _semconv as semconv
from opentelemetry.instrumentation.redis import util as stock_util
from opentelemetry.instrumentation.redis import version as stock_version
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import SpanKind
from wrapt import FunctionWrapper

from otel_uwsgi.instrumentation.fast.tracer import LazyTracer

#: The stock instrumentation's scope: a backend grouping spans by scope sees no change.
SCOPE = "opentelemetry.instrumentation.redis"
_STOCK = {"redis.search", "redis.create_index"}  # span names the stock wrapper adds more attributes to
_ABSENT = object()
_CONNECTIONS_KEPT = 64


def install() -> bool:
    """Re-wrap ``Redis.execute_command`` with the fast span (False: it is not the stock
    instrumentor's wrapper, so something else wrapped it too, or the stock one did not run)."""
    current = redis.Redis.__dict__.get("execute_command")
    stock, original = getattr(current, "_self_wrapper", None), getattr(current, "__wrapped__", None)
    if original is None or getattr(stock, "__module__", "") != "opentelemetry.instrumentation.redis":
        return False
    semconv._OpenTelemetrySemanticConventionStability._initialize()
    signals = (semconv._OpenTelemetryStabilitySignalType.DATABASE, semconv._OpenTelemetryStabilitySignalType.HTTP)
    modes = semconv._get_semconv_opt_in_modes(signals)
    tracer = LazyTracer(SCOPE, semconv._get_schema_url_for_signal_types(list(signals)), stock_version.__version__)
    wrapper = _wrapper(tracer, modes[signals[0]], modes[signals[1]], stock)
    # a wrapt wrapper like the stock one, so RedisInstrumentor().uninstrument() takes it off the same way
    redis.Redis.execute_command = FunctionWrapper(original, wrapper)  # type: ignore[method-assign]
    return True


def _wrapper(lazy: LazyTracer, db_mode: Any, http_mode: Any, stock: Any) -> Any:
    connections: dict[tuple[Any, ...], dict[str, Any]] = {}
    statement = semconv._set_db_statement
    extract = stock_util._extract_conn_attributes
    format_args, span_name = stock_util._format_command_args, stock_util._build_span_name

    def connection_attributes(instance: Any) -> dict[str, Any]:
        """``_extract_conn_attributes`` of the client's connection, which reads only these five."""
        pool = getattr(instance, "connection_pool", None)
        kwargs = getattr(pool, "connection_kwargs", None)
        if kwargs is None:  # the stock one sets none then (and its own reads would raise)
            return {}
        get = kwargs.get
        key = ("path" in kwargs, get("path", _ABSENT), get("host", _ABSENT), get("port", _ABSENT), get("db", _ABSENT))
        try:
            found = connections.get(key)
        except TypeError:  # an unhashable value: not kept
            return extract(kwargs, db_mode, http_mode)
        if found is None:
            if len(connections) >= _CONNECTIONS_KEPT:
                connections.clear()
            found = connections[key] = extract(kwargs, db_mode, http_mode)
        return found

    def execute_command(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not is_instrumentation_enabled():
            return wrapped(*args, **kwargs)
        name = span_name(instance, args)
        if name in _STOCK:
            return stock(wrapped, instance, args, kwargs)
        query = format_args(args)
        tracer = lazy.provider_tracer or lazy.sdk()
        with tracer.start_as_current_span(name, kind=SpanKind.CLIENT) as span:
            if span.is_recording():
                attributes: dict[str, Any] = {}
                statement(attributes, query, db_mode)
                attributes["db.redis.args_length"] = len(args)
                attributes.update(connection_attributes(instance))
                setter = getattr(span, "set_checked_attributes", None)
                (setter or span.set_attributes)(attributes)
            return wrapped(*args, **kwargs)

    return execute_command
