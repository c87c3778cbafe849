"""What every fast server span shares, whatever the framework (Django's middleware, Flask's hooks):
the settings read once, the parent decision and context extraction, the request attributes in
the semantic-convention mode in force, the status a response code gives, a recorded exception,
and the one warning a failing telemetry step logs.

Each step is what the stock instrumentations do through ``opentelemetry.instrumentation.utils``
and the WSGI helpers (``_start_internal_or_server_span``, ``collect_request_attributes``,
``add_response_attributes``, ``trace.use_span``), done once per request without re-reading the
environment.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from opentelemetry import context, trace
from opentelemetry import propagate as _propagate
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.instrumentation.utils import http_status_to_status_code
from opentelemetry.propagate import extract, get_global_textmap
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otel_uwsgi.instrumentation.fast.http import (
    HeaderCapture,
    HttpConfig,
    native_request_attributes,
    request_attributes,
)
from otel_uwsgi.instrumentation.fast.tracer import LazyTracer
from otel_uwsgi.native import accel
from otel_uwsgi.native.sdk_layout import LEAN_SPAN_CLASSES
from otel_uwsgi.traces import context_ops
from otel_uwsgi.traces.context_ops import SPAN_KEY, get_current

logger = logging.getLogger("otel_uwsgi.instrumentation.fast")

_LIMIT = 256
#: Whether the API keeps its global propagator in ``opentelemetry.propagate._HTTP_TEXT_FORMAT``
#: (what get_global_textmap() returns and set_global_textmap() replaces).
_TEXTMAP_GLOBAL = hasattr(_propagate, "_HTTP_TEXT_FORMAT")


class EnvironGetter(Getter[dict]):
    """Propagation headers from a WSGI environ (``traceparent`` -> ``HTTP_TRACEPARENT``)."""

    def __init__(self) -> None:
        self._keys: dict[str, str] = {}

    def get(self, carrier: dict, key: str) -> Optional[list[str]]:
        environ_key = self._keys.get(key)
        if environ_key is None:
            if len(self._keys) >= _LIMIT:
                self._keys.clear()
            environ_key = self._keys[key] = "HTTP_" + key.upper().replace("-", "_")
        value = carrier.get(environ_key)
        return None if value is None else [value]

    def keys(self, carrier: dict) -> list[str]:
        return [k[5:].lower().replace("_", "-") for k in carrier if k.startswith("HTTP_")]


class Extractor:
    """``extract()``, skipped when the request has none of the headers the global propagator reads.

    Most requests carry no ``traceparent``/``tracestate``/``baggage``; then extraction returns
    the current context unchanged, at the cost of a pass through every propagator.  Only the
    W3C propagators (the default) are trusted to read nothing but their ``fields``; with any
    other propagator every request is extracted.
    """

    def __init__(self) -> None:
        self.propagator: Any = None
        self.keys: Optional[tuple[str, ...]] = None  # environ keys, or None: always extract

    def __call__(self, meta: dict, getter: Getter[dict]) -> Optional[context.Context]:
        propagator = _global_textmap()
        if propagator is not self.propagator:
            self.refresh(propagator)
        keys = self.keys
        if keys is not None and meta.keys().isdisjoint(keys):
            return None  # start_span and set_span_in_context then use the current context, as extract would
        return extract(meta, getter=getter)

    def refresh(self, propagator: Any) -> None:
        self.propagator, self.keys = propagator, _w3c_keys(propagator)


def _global_textmap() -> Any:
    """``get_global_textmap()``, read where the API keeps it when it does (no call)."""
    return _propagate._HTTP_TEXT_FORMAT if _TEXTMAP_GLOBAL else get_global_textmap()


def _w3c_keys(propagator: Any) -> Optional[tuple[str, ...]]:
    parts = propagator._propagators if type(propagator) is CompositePropagator else [propagator]
    if not all(type(p) in (TraceContextTextMapPropagator, W3CBaggagePropagator) for p in parts):
        return None
    return tuple(sorted("HTTP_" + field.upper().replace("-", "_") for p in parts for field in p.fields))


class ServerSetup:
    """Everything read once: settings from the environment, semantic-convention mode, tracer
    (named ``scope``, at ``version``: otel-uwsgi's own when None)."""

    def __init__(
        self,
        http: HttpConfig,
        mode: Any,
        default_mode: bool,
        schema_url: str,
        scope: str,
        version: Optional[str] = None,
    ) -> None:
        self.http, self.mode, self.default_mode = http, mode, default_mode
        self.request_headers = HeaderCapture(http.request_headers, http.sanitize, "http.request.header.")
        self.response_headers = HeaderCapture(http.response_headers, http.sanitize, "http.response.header.")
        self.capture_request_headers = bool(self.request_headers)  # read per request: no __bool__ call
        self.capture_response_headers = bool(self.response_headers)
        self.tracer = LazyTracer(scope, schema_url, version)
        self.getter = EnvironGetter()
        self.extract = Extractor()


def http_mode() -> tuple[Any, bool, str]:
    """The HTTP semantic-convention mode the stock instrumentations use (``OTEL_SEMCONV_STABILITY_OPT_IN``):
    ``(mode, is the default mode, schema URL)``."""
    from opentelemetry.instrumentation._semconv import (
        _get_schema_url,
        _OpenTelemetrySemanticConventionStability,
        _OpenTelemetryStabilitySignalType,
        _StabilityMode,
    )

    _OpenTelemetrySemanticConventionStability._initialize()
    mode = _OpenTelemetrySemanticConventionStability._get_opentelemetry_stability_opt_in_mode(
        _OpenTelemetryStabilitySignalType.HTTP
    )
    return mode, mode is _StabilityMode.DEFAULT, _get_schema_url(mode)


def attributes_of(setup: ServerSetup, environ: dict) -> dict[str, Any]:
    """The request's span attributes, as ``collect_request_attributes(environ, mode)`` gives them
    (C for the request a WSGI server normally sends, in the default mode)."""
    if setup.default_mode:
        attributes = None
        if native_request_attributes is not None:
            attributes = native_request_attributes(environ, setup.http.capture_all_methods)
        return request_attributes(environ, setup.http) if attributes is None else attributes
    from opentelemetry.instrumentation.wsgi import collect_request_attributes

    return collect_request_attributes(environ, setup.mode)


def start_server_span(
    setup: ServerSetup, environ: dict, name: str, attributes: dict[str, Any], start_time: Optional[int] = None
) -> tuple[Any, context.Context, bool]:
    """``(span, the context to make current with it, is it a SERVER span)``: SERVER with the
    propagated parent when no span is current, else INTERNAL under the current one."""
    ctx = get_current()
    if SPAN_KEY is not None:  # trace.get_current_span(ctx) is INVALID_SPAN, without its two calls
        current = ctx.get(SPAN_KEY)
        no_span = current is None or current is INVALID_SPAN or not isinstance(current, Span)
    else:
        no_span = trace.get_current_span(ctx) is INVALID_SPAN
    if no_span:
        extractor = setup.extract  # Extractor.__call__, inline for a request without propagation headers
        propagator = _propagate._HTTP_TEXT_FORMAT if _TEXTMAP_GLOBAL else get_global_textmap()
        if propagator is not extractor.propagator:
            extractor.refresh(propagator)
        if extractor.keys is None or not environ.keys().isdisjoint(extractor.keys):
            extracted = extractor(environ, setup.getter)
            if extracted is not None:  # None: no propagation header, the current context stands
                ctx = extracted
        kind = SpanKind.SERVER
    else:
        kind = SpanKind.INTERNAL
    tracer = setup.tracer.tracer or setup.tracer.get()
    span = tracer.start_span(name, ctx, kind, attributes, start_time)
    return span, ctx, kind is SpanKind.SERVER


def _native_open() -> Optional[Any]:
    """The C extension configured for ``open_server_span`` and ``close_server_span``, or None: without
    it, or where the API does not keep the names they read (its context var, span key and global
    propagator).  ``open_server_span(setup.tracer, setup.extract, environ, name, attributes[, key,
    value, start_time])`` is :func:`start_server_span` and ``attach(with_span(span, ctx[, (key,
    value)]))`` in one call for the common request, ``(span, token, is SERVER)``; None when the
    request is not the common one (then those run)."""
    native = accel.load()
    var = getattr(context_ops, "_VAR", None)
    if native is None or not hasattr(native, "open_server_span") or var is None or SPAN_KEY is None:
        return None
    if not _TEXTMAP_GLOBAL:
        return None
    from opentelemetry.context import Context

    from otel_uwsgi.traces.lean.tracer import KNOWN_SPANS

    native.configure_server(var, SPAN_KEY, Context, INVALID_SPAN, _propagate, KNOWN_SPANS, SpanKind.SERVER,
                            SpanKind.INTERNAL, LEAN_SPAN_CLASSES, context_ops.detach_failed)  # fmt: skip
    return native


_native = _native_open()
#: See :func:`_native_open` (None without the C extension).
open_server_span = None if _native is None else _native.open_server_span
#: ``close_server_span(span, token, meta, meta_key, route, status_code)``: C, where built, for the common end of
#: a Django request (a lean span, a 1xx-4xx code: ``http.route`` and ``http.status_code`` set, the
#: ``meta_key`` entry of ``meta`` popped, the context detached, the span ended): True; None, with nothing done, for
#: anything else.
close_server_span = None if _native is None else getattr(_native, "close_server_span", None)


def set_checked(span: Any, attributes: dict[str, Any]) -> None:
    """Attributes made here (str, int, float, bool values) in one call."""
    if type(span) in LEAN_SPAN_CLASSES:
        span.set_checked_attributes(attributes)
    else:
        span.set_attributes(attributes)


def set_status_code(span: Any, code: int, final: dict[str, Any]) -> None:
    """Default mode, recording span: ``http.status_code`` (with the rest of ``final``) and the
    status a server span gets for ``code`` (UNSET for 1xx-4xx: not set)."""
    final["http.status_code"] = code
    set_checked(span, final)
    if not (type(code) is int and 100 <= code < 500):
        set_error_status(span, code)


def set_error_status(span: Any, code: Any) -> None:
    """The status a server span gets for a code outside 1xx-4xx (UNSET: none is set)."""
    status = http_status_to_status_code(code, server_span=True)
    if status is not StatusCode.UNSET:
        span.set_status(Status(status))


def record_error(span: Any, exception: BaseException) -> None:
    """The ``exception`` event and ERROR status ``Type: message``, as ``trace.use_span`` records them."""
    span.record_exception(exception)
    span.set_status(Status(StatusCode.ERROR, f"{type(exception).__name__}: {exception}"))


_warned: list[bool] = []


def warn_once(what: str) -> None:
    """A failing telemetry step, logged with its traceback the first time only."""
    if not _warned:
        _warned.append(True)
        logger.exception("otel-uwsgi: fast instrumentation failed while %s; the request is served untraced", what)
