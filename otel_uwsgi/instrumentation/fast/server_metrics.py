"""The HTTP server metrics the stock WSGI-based instrumentations record (Flask's): in-flight requests
and request duration, same instruments, attributes and exemplar context, recorded only once a
MeterProvider is set in this process.

The stock instrumentation records to the global meter's proxy instruments on every request, also
when no MeterProvider was ever set (otel-uwsgi sets one only with ``otel-metrics-exporter``); here
a request with no provider costs one read of the API's global.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from opentelemetry import metrics, trace
from opentelemetry.instrumentation._semconv import (
    HTTP_DURATION_HISTOGRAM_BUCKETS_NEW,
    _report_new,
    _report_old,
    _StabilityMode,
)
from opentelemetry.instrumentation.wsgi import _parse_active_request_count_attrs, _parse_duration_attrs
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.semconv._incubating.metrics.http_metrics import create_http_server_active_requests
from opentelemetry.semconv.metrics import MetricInstruments
from opentelemetry.semconv.metrics.http_metrics import HTTP_SERVER_REQUEST_DURATION

try:  # the API's global, read directly: get_meter_provider() looks at os.environ on every call
    from opentelemetry.metrics import _internal as _api

    _api._METER_PROVIDER  # noqa: B018 - probed once
except (ImportError, AttributeError):  # another API layout: the public getter
    _api = None


class Instruments:
    """One process's instruments (the stock ones, by name, unit, description and buckets)."""

    def __init__(self, meter: Any, mode: Any) -> None:
        self.mode = mode
        self.duration_old = self.duration_new = None
        if _report_old(mode):
            self.duration_old = meter.create_histogram(
                name=MetricInstruments.HTTP_SERVER_DURATION,
                unit="ms",
                description="Measures the duration of inbound HTTP requests.",
            )
        if _report_new(mode):
            self.duration_new = meter.create_histogram(
                name=HTTP_SERVER_REQUEST_DURATION,
                unit="s",
                description="Duration of HTTP server requests.",
                explicit_bucket_boundaries_advisory=HTTP_DURATION_HISTOGRAM_BUCKETS_NEW,
            )
            self.active = create_http_server_active_requests(meter)
        else:
            self.active = meter.create_up_down_counter(
                name=MetricInstruments.HTTP_SERVER_ACTIVE_REQUESTS,
                unit="requests",
                description="Measures the number of concurrent HTTP requests that are currently in-flight.",
            )

    def active_attributes(self, attributes: dict[str, Any]) -> dict[str, Any]:
        """The in-flight counter's attributes, from the request's (``collect_request_attributes``)."""
        return _parse_active_request_count_attrs(attributes, self.mode)

    def record_duration(self, seconds: float, attributes: dict[str, Any], route: Any, span: Any) -> None:
        """The duration histogram(s): ``attributes`` are the request's plus the status the response
        added; ``route`` the matched rule (``http.target`` in the old conventions, ``http.route``
        in the new); the request's span is the exemplars' context."""
        exemplar_context = trace.set_span_in_context(span)
        if self.duration_old is not None:
            old = _parse_duration_attrs(attributes, _StabilityMode.DEFAULT)
            if route:
                old["http.target"] = str(route)
            self.duration_old.record(max(round(seconds * 1000), 0), old, context=exemplar_context)
        if self.duration_new is not None:
            new = _parse_duration_attrs(attributes, _StabilityMode.HTTP)
            if route:
                new["http.route"] = str(route)
            self.duration_new.record(max(seconds, 0), new, context=exemplar_context)


class ServerMetrics:
    """``get()``: this process's :class:`Instruments` once a MeterProvider is set, None before
    (and for good under a ``NoOpMeterProvider``)."""

    def __init__(self, scope: str, version: str, schema_url: str, mode: Any) -> None:
        self._scope, self._version, self._schema_url, self._mode = scope, version, schema_url, mode
        self._instruments: Any = None  # Instruments, False (no-op provider) or None (not yet)
        # OTEL_PYTHON_METER_PROVIDER: the API builds the provider in get_meter_provider() itself.
        self._direct = _api is not None and "OTEL_PYTHON_METER_PROVIDER" not in os.environ

    def get(self) -> Optional[Instruments]:
        instruments = self._instruments
        if instruments is None:
            provider = _api._METER_PROVIDER if self._direct else metrics.get_meter_provider()
            if provider is None or type(provider).__name__ == "_ProxyMeterProvider":
                return None
            if isinstance(provider, NoOpMeterProvider):
                instruments = self._instruments = False
            else:
                meter = provider.get_meter(self._scope, self._version, schema_url=self._schema_url)
                instruments = self._instruments = Instruments(meter, self._mode)
        return instruments or None
