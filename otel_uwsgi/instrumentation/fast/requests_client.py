"""The client span of an outgoing ``requests`` call: opentelemetry-instrumentation-requests's span,
made with less.

The stock instrumentation wraps ``Session.send``.  Per call it also builds the attributes of its
duration histograms (a second method attribute, the URL parsed again, host, port, scheme and
protocol helpers) and filters them for both semantic-convention modes even when no MeterProvider
will ever take them, looks for captured headers it was not asked for, opens two more context
managers (the peer-IP hand-over and the suppression of the HTTP instrumentations below it), each a
generator.  Here ``Session.send`` is wrapped the same way, and the span is made with the stock
module's own helpers (method, URL redaction, user agent, status, the new conventions' host and
port), in the same order, by the same tracer scope; what is left out is only what nothing reads
here: the metrics' attributes (the fast path runs only without ``otel-metrics-exporter``), the
header capture (only with no capture configured) and the peer-IP hand-over (only while
``http.client`` is not instrumented to take it).  Where metrics or header capture are on, or
options (hooks, ``excluded_urls``) are given for the stock instrumentor, it traces instead
(:mod:`.verified`).  ``tests/unit/instrumentation/fast/test_requests_spans_equal_stock.py`` holds the
spans of both equal, call for call, in the three conventions modes.
"""

from __future__ import annotations

import functools
import http.client
from typing import Any
from urllib.parse import urlparse

from opentelemetry import context
from opentelemetry.instrumentation import _semconv as semconv
from opentelemetry.instrumentation.requests import _set_http_status_code_attribute, get_default_span_name
from opentelemetry.instrumentation.requests import version as stock_version
from opentelemetry.instrumentation.utils import _SUPPRESS_HTTP_INSTRUMENTATION_KEY, is_http_instrumentation_enabled
from opentelemetry.propagate import inject
from opentelemetry.trace import SpanKind
from opentelemetry.util.http import (
    detect_synthetic_user_agent,
    get_excluded_urls,
    normalize_user_agent,
    redact_url,
    sanitize_method,
)
from opentelemetry.util.http.httplib import set_ip_on_next_http_connection
from requests.models import Response
from requests.sessions import Session
from requests.structures import CaseInsensitiveDict

from otel_uwsgi.instrumentation.fast.tracer import LazyTracer

#: The stock instrumentation's scope: a backend grouping spans by scope sees no change.
SCOPE = "opentelemetry.instrumentation.requests"
_APPLIED = "opentelemetry_instrumentation_requests_applied"  # the stock module's mark (its uninstrument reads it)
_USER_AGENT_ORIGINAL = "user_agent.original"
_USER_AGENT_SYNTHETIC_TYPE = "user_agent.synthetic.type"
_ERROR_TYPE = "error.type"
_NETWORK_PEER_ADDRESS = "network.peer.address"
_NETWORK_PEER_PORT = "network.peer.port"


def install() -> bool:
    """Trace ``requests`` with the fast client span (False: ``Session.send`` is already wrapped)."""
    if getattr(Session.send, _APPLIED, False):
        return False
    semconv._OpenTelemetrySemanticConventionStability._initialize()
    mode = semconv._OpenTelemetrySemanticConventionStability._get_opentelemetry_stability_opt_in_mode(
        semconv._OpenTelemetryStabilitySignalType.HTTP
    )
    # the worker's own tracer at the first call, not the API's proxy (instrumenting happens in the
    # master, before any provider exists): a proxy wraps each start_as_current_span in one more generator
    tracer = LazyTracer(SCOPE, semconv._get_schema_url(mode), stock_version.__version__)
    # OTEL_PYTHON_REQUESTS_EXCLUDED_URLS / OTEL_PYTHON_EXCLUDED_URLS, read as the stock module reads them
    Session.send = _wrap(Session.send, tracer, mode, get_excluded_urls("REQUESTS"))  # type: ignore[method-assign]
    return True


def _wrap(wrapped: Any, lazy: LazyTracer, mode: Any, excluded: Any) -> Any:
    report_new = semconv._report_new(mode)

    @functools.wraps(wrapped)
    def send(self: Session, request: Any, **kwargs: Any) -> Any:
        if excluded and excluded.url_disabled(request.url):
            return wrapped(self, request, **kwargs)
        if not is_http_instrumentation_enabled():
            return wrapped(self, request, **kwargs)
        method = request.method
        sanitized = sanitize_method(method.strip())
        url = redact_url(request.url)
        attributes: dict[str, Any] = {}
        semconv._set_http_method(attributes, method, sanitized, mode)
        semconv._set_http_url(attributes, url, mode)
        if request.headers is None:
            request.headers = CaseInsensitiveDict()
        headers = request.headers
        user_agent = normalize_user_agent(headers.get("User-Agent"))
        synthetic = detect_synthetic_user_agent(user_agent)
        if synthetic:
            attributes[_USER_AGENT_SYNTHETIC_TYPE] = synthetic
        if user_agent:
            attributes[_USER_AGENT_ORIGINAL] = user_agent
        if report_new:
            _peer_attributes(attributes, url, mode)
        tracer = lazy.provider_tracer or lazy.sdk()
        name = get_default_span_name(sanitized)
        with tracer.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attributes) as span:
            if getattr(http.client.HTTPConnection.send, "__wrapped__", None) is None:
                result, exception = _send(wrapped, self, request, headers, kwargs)
            else:  # http.client is instrumented: it takes the peer IP from the span handed over here
                with set_ip_on_next_http_connection(span):
                    result, exception = _send(wrapped, self, request, headers, kwargs)
            if isinstance(result, Response):
                _response_attributes(span, result, mode, report_new)
            if exception is not None:
                if report_new:
                    span.set_attribute(_ERROR_TYPE, type(exception).__qualname__)
                raise exception.with_traceback(exception.__traceback__)
        return result

    setattr(send, _APPLIED, True)
    return send


def _send(wrapped: Any, session: Session, request: Any, headers: Any, kwargs: dict) -> tuple[Any, Any]:
    """Inject the context, send with the HTTP instrumentations below suppressed: (result, exception)."""
    inject(headers)
    token = context.attach(context.set_value(_SUPPRESS_HTTP_INSTRUMENTATION_KEY, True))
    try:
        return wrapped(session, request, **kwargs), None
    except Exception as exc:  # noqa: BLE001 - raised on by the caller, after the span has it
        return getattr(exc, "response", None), exc
    finally:
        context.detach(token)


def _peer_attributes(attributes: dict[str, Any], url: str, mode: Any) -> None:
    """The new conventions' server and peer address and port, as the stock code reads them."""
    try:
        parsed = urlparse(url)
        if parsed.hostname:
            semconv._set_http_host_client(attributes, parsed.hostname, mode)
            attributes[_NETWORK_PEER_ADDRESS] = parsed.hostname
        if parsed.port:
            semconv._set_http_peer_port_client(attributes, parsed.port, mode)
            attributes[_NETWORK_PEER_PORT] = parsed.port
    except ValueError:
        pass


def _response_attributes(span: Any, result: Response, mode: Any, report_new: bool) -> None:
    """The status code and span status (the stock helper), and the new conventions' protocol version."""
    _set_http_status_code_attribute(span, result.status_code, None, mode)
    if report_new and result.raw is not None:
        version = getattr(result.raw, "version", None)
        if version:
            attributes: dict[str, Any] = {}
            semconv._set_http_network_protocol_version(attributes, "1.1" if version == 11 else "1.0", mode)
            for key, value in attributes.items():
                span.set_attribute(key, value)
