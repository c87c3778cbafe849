"""The MeterProvider of one process: periodic reader, OTLP/HTTP exporter, span delivery counts.

Built after fork in each worker, like the tracer provider and with the same Resource.  A provider
made in the master would never export from workers: the SDK's ``PeriodicExportingMetricReader``
keeps its timer thread in the master, and uWSGI forks in C, so no fork hook restarts it.  Every
worker therefore reports its own streams (``process.pid``, ``service.instance.id``): sum them by
``service.name`` in the backend.

Instrumentations that created their instruments at import time, in the master (Django's
``http.server.duration`` / ``http.server.active_requests``, WSGI's), hold the API's proxy
instruments; setting the global MeterProvider in the worker binds them to it.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import (
    AlwaysOffExemplarFilter,
    AlwaysOnExemplarFilter,
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    TraceBasedExemplarFilter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ConsoleMetricExporter,
    MetricExporter,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource

from otel_uwsgi.config.settings import Settings
from otel_uwsgi.export import otlp

logger = logging.getLogger(__name__)

SCOPE = "otel_uwsgi"
_EXPORTER_LOGGER = "opentelemetry.exporter.otlp.proto.http.metric_exporter"

_DELTA, _CUMULATIVE = AggregationTemporality.DELTA, AggregationTemporality.CUMULATIVE
#: OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE, as the specification defines each choice.
TEMPORALITY: dict[str, dict[type, AggregationTemporality]] = {
    "cumulative": {},
    "delta": {Counter: _DELTA, ObservableCounter: _DELTA, Histogram: _DELTA},
    "lowmemory": {Counter: _DELTA, Histogram: _DELTA},
}
_INSTRUMENTS = (Counter, UpDownCounter, Histogram, ObservableCounter, ObservableUpDownCounter, ObservableGauge)


def temporality(preference: str) -> dict[type, AggregationTemporality]:
    """Temporality per instrument class for a preference (cumulative unless the preference says delta)."""
    chosen = {kind: _CUMULATIVE for kind in _INSTRUMENTS}
    chosen.update(TEMPORALITY[preference])
    return chosen


def build_metric_exporter(settings: Settings) -> MetricExporter:
    """The metric exporter named by ``otel-metrics-exporter`` (``otlp`` or ``console``)."""
    from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation

    preferred = temporality(settings["otel-exporter-otlp-metrics-temporality-preference"])
    aggregation: dict[type, Any] = {}
    if settings["otel-exporter-otlp-metrics-default-histogram-aggregation"] == "base2_exponential_bucket_histogram":
        aggregation[Histogram] = ExponentialBucketHistogramAggregation()
    if settings["otel-metrics-exporter"] == "console":
        return ConsoleMetricExporter(preferred_temporality=preferred, preferred_aggregation=aggregation)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    otlp.limit_export_errors(_EXPORTER_LOGGER, "otel-metrics-exporter")
    return otlp.build_otlp_exporter(
        OTLPMetricExporter, settings, "metrics", preferred_temporality=preferred, preferred_aggregation=aggregation
    )


def build_reader(settings: Settings) -> PeriodicExportingMetricReader:
    """A reader exporting every ``otel-metric-export-interval`` ms (its timer thread starts now)."""
    return PeriodicExportingMetricReader(
        build_metric_exporter(settings),
        export_interval_millis=settings["otel-metric-export-interval"],
        export_timeout_millis=settings["otel-metric-export-timeout"],
    )


def exemplar_filter(name: str) -> Any:
    return {
        "trace_based": TraceBasedExemplarFilter,
        "always_on": AlwaysOnExemplarFilter,
        "always_off": AlwaysOffExemplarFilter,
    }[name]()


def build_meter_provider(settings: Settings, resource: Resource, *, ledger: Any = None) -> MeterProvider:
    """This process's MeterProvider; with a span ``ledger``, it also reports the span delivery counts.

    ``shutdown_on_exit=False``: the SDK's own atexit hook waits up to 30 s; otel-uwsgi flushes
    within ``otel-exit-flush-timeout`` instead (:mod:`otel_uwsgi.runtime.metrics_and_logs`).
    """
    provider = MeterProvider(
        metric_readers=[build_reader(settings)],
        resource=resource,
        exemplar_filter=exemplar_filter(settings["otel-metrics-exemplar-filter"]),
        shutdown_on_exit=False,
    )
    if ledger is not None:
        observe_span_delivery(provider, ledger)
    return provider


def install_meter_provider(provider: MeterProvider) -> None:
    """Make ``provider`` the global one, which binds the instrumentations' proxy instruments."""
    from opentelemetry import metrics

    metrics.set_meter_provider(provider)
    if metrics.get_meter_provider() is not provider:
        logger.warning(
            "otel-uwsgi: a MeterProvider (%s) was set before otel-uwsgi in this process; the "
            "instrumentations' metrics go to it, not to otel-uwsgi's exporter. Remove the other setup.",
            type(metrics.get_meter_provider()).__name__,
        )


def observe_span_delivery(provider: MeterProvider, ledger: Any) -> None:
    """``otel_uwsgi.spans`` (exported / dropped by reason) and ``otel_uwsgi.spans.pending`` from the ledger.

    Lets dropped spans be graphed and alerted on like any other metric.
    """
    meter = provider.get_meter(SCOPE)

    def spans(options: CallbackOptions) -> list[Observation]:
        counts = ledger.counts()
        return [
            Observation(counts.exported, {"state": "exported"}),
            Observation(counts.queue_full, {"state": "dropped", "reason": "queue_full"}),
            Observation(counts.export_failed, {"state": "dropped", "reason": "export_failed"}),
            Observation(counts.exit_timeout, {"state": "dropped", "reason": "exit_timeout"}),
        ]

    def pending(options: CallbackOptions) -> list[Observation]:
        return [Observation(ledger.counts().pending)]

    meter.create_observable_counter(
        "otel_uwsgi.spans",
        callbacks=[spans],
        unit="{span}",
        description="Sampled spans this process exported, or dropped (reason: queue_full, export_failed, "
        "exit_timeout).",
    )
    meter.create_observable_up_down_counter(
        "otel_uwsgi.spans.pending",
        callbacks=[pending],
        unit="{span}",
        description="Spans queued or in an export that has not answered yet.",
    )

