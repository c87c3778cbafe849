"""TracerProvider, sampler, span limits, counting batch processor and span exporter for one process.

Everything here is built from resolved :class:`~otel_uwsgi.config.settings.Settings` and passed to
the SDK as explicit arguments, so the SDK's own environment look-ups cannot override the ini.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider, sampling
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter

from otel_uwsgi.config.settings import Settings
from otel_uwsgi.export import otlp
from otel_uwsgi.traces.ledger import Ledger
from otel_uwsgi.traces.processor import CountingBatchSpanProcessor, mute_sdk_queue_full_warning

logger = logging.getLogger(__name__)


def build_sampler(settings: Settings) -> sampling.Sampler:
    """The sampler named by ``otel-traces-sampler`` with its ratio argument."""
    name = settings["otel-traces-sampler"]
    ratio = settings["otel-traces-sampler-arg"]
    ratio = 1.0 if ratio is None else ratio
    return {
        "always_on": lambda: sampling.ALWAYS_ON,
        "always_off": lambda: sampling.ALWAYS_OFF,
        "traceidratio": lambda: sampling.TraceIdRatioBased(ratio),
        "parentbased_always_on": lambda: sampling.ParentBased(sampling.ALWAYS_ON),
        "parentbased_always_off": lambda: sampling.ParentBased(sampling.ALWAYS_OFF),
        "parentbased_traceidratio": lambda: sampling.ParentBased(sampling.TraceIdRatioBased(ratio)),
    }[name]()


def build_span_limits(settings: Settings) -> SpanLimits:
    """Span limits with the span-specific options winning over the generic ones."""

    def either(specific: str, generic: str, unset: Optional[int]) -> Optional[int]:
        value = settings.pick(specific, generic)[1]
        return unset if value is None else value

    return SpanLimits(
        max_span_attributes=either("otel-span-attribute-count-limit", "otel-attribute-count-limit", 128),
        max_events=settings["otel-span-event-count-limit"],
        max_links=settings["otel-span-link-count-limit"],
        max_event_attributes=either("otel-event-attribute-count-limit", "otel-attribute-count-limit", 128),
        max_link_attributes=either("otel-link-attribute-count-limit", "otel-attribute-count-limit", 128),
        max_span_attribute_length=either(
            "otel-span-attribute-value-length-limit", "otel-attribute-value-length-limit", SpanLimits.UNSET
        ),
        max_attribute_length=settings["otel-attribute-value-length-limit"]
        if settings["otel-attribute-value-length-limit"] is not None
        else SpanLimits.UNSET,
    )


def build_span_exporter(settings: Settings, timeout_s: Optional[float] = None) -> Optional[SpanExporter]:
    """The span exporter named by ``otel-traces-exporter`` (None for ``none``); ``timeout_s``, when
    given, bounds each export request instead of ``otel-exporter-otlp-timeout`` (never above it)."""
    kind = settings["otel-traces-exporter"]
    if kind == "none":
        return None
    if kind == "console":
        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    extra: dict[str, Any] = {}
    if timeout_s is not None:
        configured = otlp.otlp_arguments(settings, "traces").get("timeout")
        extra["timeout"] = timeout_s if configured is None else min(timeout_s, configured)
    if settings["otel-fast-export"]:  # same bytes, less CPU (export.encoder), gzip at otel-gzip-level
        try:
            from otel_uwsgi.export.span_exporter import FastOTLPSpanExporter

            gzip_level = settings["otel-gzip-level"]
            return otlp.build_otlp_exporter(FastOTLPSpanExporter, settings, "traces", gzip_level=gzip_level, **extra)
        except Exception as error:  # noqa: BLE001 - an exporter release it was not built for: the SDK's own
            logger.info(
                "otel-uwsgi: otel-fast-export is unavailable with this opentelemetry-exporter-otlp-proto-http "
                "(%s: %s); spans are exported by the SDK's own exporter",
                type(error).__name__,
                error,
            )
    return otlp.build_otlp_exporter(OTLPSpanExporter, settings, "traces", **extra)


class LeanTracerProvider(TracerProvider):
    """The SDK's TracerProvider whose tracers start spans the lean way (``otel-lean-spans``).

    Every tracer it hands out (the stock instrumentations' too) is the SDK's, made a
    :class:`~otel_uwsgi.traces.lean.tracer.LeanSdkTracer` when the sampler, limits and SDK allow it: the
    same spans, with less work to start, fill and end them (docs/PERFORMANCE.md).
    """

    _lean_broken = False

    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        tracer = super().get_tracer(*args, **kwargs)
        if self._lean_broken:
            return tracer
        try:
            from otel_uwsgi.traces.lean.tracer import make_lean

            return make_lean(tracer)
        except Exception as error:  # noqa: BLE001 - an SDK the lean start cannot even load with
            LeanTracerProvider._lean_broken = True
            logger.info(
                "otel-uwsgi: the lean span start is unavailable with this opentelemetry-sdk (%s: %s); spans "
                "are started by the SDK's own code",
                type(error).__name__,
                error,
            )
            return tracer


@dataclass(frozen=True)
class JournalPlace:
    """Where this process's span journal goes, and who it is (set by the post-fork set-up)."""

    instance: Any  # otel_uwsgi.traces.journal.directory.Instance
    kind: str  # worker, mule, spooler
    owner: Any  # otel_uwsgi.traces.journal.region.Owner


def build_provider(
    settings: Settings, resource: Resource, ledger: Optional[Ledger] = None, journal: Optional[JournalPlace] = None
) -> TracerProvider:
    """A TracerProvider with the span journal's processor (``journal`` given, ``otel-span-journal``
    on, an OTLP exporter) or else one counting BatchSpanProcessor; no SDK atexit hook (the exit
    flush is bounded by otel-uwsgi)."""
    provider_class = LeanTracerProvider if settings["otel-lean-spans"] else TracerProvider
    provider = provider_class(
        resource=resource,
        sampler=build_sampler(settings),
        span_limits=build_span_limits(settings),
        shutdown_on_exit=False,
    )
    exporter = build_span_exporter(settings)
    if exporter is None:
        return provider
    ledger = ledger or Ledger()
    processor: Any = None
    if journal is not None and settings["otel-span-journal"]:
        processor = _journal_processor(settings, resource, exporter, ledger, journal)
    if processor is None:
        processor = CountingBatchSpanProcessor(
            exporter,
            ledger,
            max_queue_size=settings["otel-bsp-max-queue-size"],
            schedule_delay_millis=settings["otel-bsp-schedule-delay"],
            max_export_batch_size=settings["otel-bsp-max-export-batch-size"],
            export_timeout_millis=settings["otel-bsp-export-timeout"],
        )
        if processor.counts_queue_full:
            mute_sdk_queue_full_warning()
    provider.add_span_processor(processor)
    return provider


def journal_processor(provider: TracerProvider) -> Any:
    """The provider's span journal processor, or None (it uses the in-memory batch queue)."""
    chain = getattr(getattr(provider, "_active_span_processor", None), "_span_processors", ())
    return next((p for p in chain if getattr(p, "is_span_journal", False)), None)  # imports nothing


def _journal_processor(
    settings: Settings, resource: Resource, exporter: SpanExporter, ledger: Ledger, place: JournalPlace
) -> Any:
    """The journal's processor, or None with one line saying why the in-memory queue is used."""
    try:
        from otel_uwsgi.traces.journal import ship
        from otel_uwsgi.traces.journal.processor import JournalSpanProcessor
        from otel_uwsgi.traces.journal.region import Region
    except Exception as error:  # noqa: BLE001 - an SDK whose parts the encoder reads have moved
        logger.info(
            "otel-uwsgi: the span journal is unavailable with this opentelemetry-sdk (%s: %s); spans wait in "
            "the SDK's in-memory queue and are lost if the process dies",
            type(error).__name__,
            error,
        )
        return None
    if not ship.can_send(exporter):
        logger.info(
            "otel-uwsgi: the span journal needs otel-uwsgi's OTLP/HTTP exporter (otel-fast-export = true); "
            "spans wait in the SDK's in-memory queue and are lost if the process dies"
        )
        return None
    try:
        place.instance.hold()
        path = place.instance.journal_path(place.kind, place.owner.pid)
        _set_aside(path)
        region = Region.create(
            path,
            capacity=settings["otel-span-journal-size"] * 1024,
            slot_count=JOURNAL_SLOTS,
            owner=place.owner,
            resource=ship.resource_blob(resource),
        )
    except Exception as error:  # noqa: BLE001 - no journal is a smaller safety, never a broken worker
        logger.warning(
            "otel-uwsgi: pid %d: could not create its span journal under %s (%s: %s); spans wait in memory and "
            "are lost if the process dies (check otel-span-journal-dir)",
            place.owner.pid,
            place.instance.path,
            type(error).__name__,
            error,
        )
        return None
    return JournalSpanProcessor(
        region,
        place.instance,
        exporter,
        ledger,
        schedule_delay_millis=settings["otel-bsp-schedule-delay"],
        max_export_batch_size=settings["otel-bsp-max-export-batch-size"],
        max_queue_size=settings["otel-bsp-max-queue-size"],
    )


#: In-flight request slots per journal: more requests at once than this (threads x async cores)
#: are served and traced, but not reported if the process dies mid-request.
JOURNAL_SLOTS = 32


def _set_aside(path: str) -> None:
    """A journal left at this very path by a process of an earlier run with the same pid (in a
    container, pids repeat): renamed so the shipping thread still ships it."""
    import os
    import time

    if os.path.exists(path):
        os.rename(path, f"{path[: -len('.journal')]}-{time.time_ns()}.journal")
