"""TracerProvider, batch processor and OTLP/HTTP exporter for one process, and its bounded flush.

Everything here is built from resolved :class:`~otel_uwsgi.options.Settings` and passed to the
SDK as explicit arguments, so the SDK's own environment look-ups cannot override the ini.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any, Optional

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider, sampling
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter

from otel_uwsgi.delivery import CountingBatchSpanProcessor, Ledger, mute_sdk_queue_full_warning
from otel_uwsgi.options import Settings

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


def traces_endpoint(settings: Settings) -> str:
    """The traces URL: a traces-specific endpoint as is, a base endpoint plus ``/v1/traces``."""
    name, value = settings.pick("otel-exporter-otlp-traces-endpoint", "otel-exporter-otlp-endpoint")
    if name == "otel-exporter-otlp-traces-endpoint":
        return value
    return value.rstrip("/") + "/v1/traces"


@contextlib.contextmanager
def _without_otlp_environment() -> Iterator[None]:
    """Hide ``OTEL_EXPORTER_OTLP_*`` while the exporter is built.

    The exporter merges environment headers into explicit ones; every value is passed
    explicitly here, so the environment must not add to (or override) what the ini says.
    Runs in the post-fork hook, before any request thread exists.
    """
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("OTEL_EXPORTER_OTLP_")}
    try:
        yield
    finally:
        os.environ.update(saved)


def preload(settings: Settings) -> None:
    """Import the export path in the master, before fork.

    Building the exporter imports ``requests`` and friends (~100 ms); done after fork, every
    worker pays it again and a signal arriving meanwhile interrupts a half-done import.  Imported
    before fork, the modules are shared copy-on-write and a worker's init takes milliseconds.
    """
    if settings["otel-traces-exporter"] != "otlp":
        return
    import netrc  # noqa: F401 - requests reads it lazily at the first export
    import shlex  # noqa: F401

    import requests  # noqa: F401
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: F401

    import otel_uwsgi.encoder  # noqa: F401
    import otel_uwsgi.exporter  # noqa: F401


def build_exporter(settings: Settings) -> Optional[SpanExporter]:
    """The span exporter named by ``otel-traces-exporter`` (None for ``none``)."""
    kind = settings["otel-traces-exporter"]
    if kind == "none":
        return None
    if kind == "console":
        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    pick = settings.pick
    headers = pick("otel-exporter-otlp-traces-headers", "otel-exporter-otlp-headers")[1] or {}
    compression = pick("otel-exporter-otlp-traces-compression", "otel-exporter-otlp-compression")[1]
    exporter_class, extra = OTLPSpanExporter, {}
    if settings["otel-fast-export"]:  # same bytes, less CPU (otel_uwsgi.encoder), gzip at otel-gzip-level
        from otel_uwsgi.exporter import FastOTLPSpanExporter

        exporter_class, extra = FastOTLPSpanExporter, {"gzip_level": settings["otel-gzip-level"]}
    with _without_otlp_environment():
        return exporter_class(
            endpoint=traces_endpoint(settings),
            certificate_file=pick("otel-exporter-otlp-traces-certificate", "otel-exporter-otlp-certificate")[1],
            client_key_file=pick("otel-exporter-otlp-traces-client-key", "otel-exporter-otlp-client-key")[1],
            client_certificate_file=pick(
                "otel-exporter-otlp-traces-client-certificate", "otel-exporter-otlp-client-certificate"
            )[1],
            headers=dict(headers),
            timeout=pick("otel-exporter-otlp-traces-timeout", "otel-exporter-otlp-timeout")[1],
            compression=Compression.Gzip if compression == "gzip" else Compression.NoCompression,
            **extra,
        )


class LeanTracerProvider(TracerProvider):
    """The SDK's TracerProvider whose tracers start spans the lean way (``otel-lean-spans``).

    Every tracer it hands out (the stock instrumentations' too) is the SDK's, made a
    :class:`~otel_uwsgi.fast.span.LeanSdkTracer` when the sampler, limits and SDK allow it: the
    same spans, with less work to start, fill and end them (README, Performance).
    """

    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        from otel_uwsgi.fast.span import make_lean

        return make_lean(super().get_tracer(*args, **kwargs))


def build_provider(settings: Settings, resource: Resource, ledger: Optional[Ledger] = None) -> TracerProvider:
    """A TracerProvider with one (counting) BatchSpanProcessor; no SDK atexit hook (we flush with a bound)."""
    provider_class = LeanTracerProvider if settings["otel-lean-spans"] else TracerProvider
    provider = provider_class(
        resource=resource,
        sampler=build_sampler(settings),
        span_limits=build_span_limits(settings),
        shutdown_on_exit=False,
    )
    exporter = build_exporter(settings)
    if exporter is not None:
        mute_sdk_queue_full_warning()
        provider.add_span_processor(
            CountingBatchSpanProcessor(
                exporter,
                ledger or Ledger(),
                max_queue_size=settings["otel-bsp-max-queue-size"],
                schedule_delay_millis=settings["otel-bsp-schedule-delay"],
                max_export_batch_size=settings["otel-bsp-max-export-batch-size"],
                export_timeout_millis=settings["otel-bsp-export-timeout"],
            )
        )
    return provider


def shutdown_bounded(provider: TracerProvider, timeout_s: float, ledger: Optional[Ledger] = None) -> bool:
    """Export what is queued and shut down, giving up after ``timeout_s`` seconds.

    The SDK's ``force_flush`` ignores its timeout and one export to a dead collector can block
    for the exporter timeout, so the work runs in a helper thread that is joined with a deadline.
    Spans still queued when the deadline passes are counted as dropped in ``ledger``.  Returns
    True when everything finished in time.  Safe to call from a signal handler's exit path: it
    takes no lock of its own.
    """
    started = time.monotonic()
    done = threading.Event()

    def work() -> None:
        try:
            provider.shutdown()
        except Exception:  # noqa: BLE001 - never raise into uWSGI's exit path
            logger.exception("otel-uwsgi: error while flushing spans at exit")
        finally:
            done.set()

    pending_before = ledger.unfinished() if ledger else 0
    thread = threading.Thread(target=work, name="otel-uwsgi-exit-flush", daemon=True)
    thread.start()
    finished = done.wait(timeout_s)
    elapsed_ms = (time.monotonic() - started) * 1000
    pid = os.getpid()
    if not finished:
        lost = ledger.give_up() if ledger else 0
        logger.warning(
            "otel-uwsgi: pid %d gave up flushing spans after %.1f s (collector slow or unreachable); "
            "%d span(s) still queued were dropped (raise otel-exit-flush-timeout to wait longer)",
            pid,
            elapsed_ms / 1000,
            lost,
        )
    else:
        logger.debug("otel-uwsgi: pid %d flushed %d spans in %.1f ms", pid, pending_before, elapsed_ms)
    if ledger:
        counts = ledger.counts()
        if counts.dropped:
            logger.warning(
                "otel-uwsgi: pid %d exiting: %d of %d span(s) were not delivered (queue full: %d, "
                "export failed: %d, still queued at exit: %d)",
                pid,
                counts.dropped,
                counts.ended,
                counts.queue_full,
                counts.export_failed,
                counts.exit_timeout,
            )
    return finished
