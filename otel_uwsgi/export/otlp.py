"""The OTLP/HTTP exporter settings of every signal, resolved once: endpoint, headers, TLS files,
timeout and compression, passed to the SDK's exporters as explicit arguments.

Each value is resolved from the options (signal-specific over generic, ini over environment),
and the exporters are built with ``OTEL_EXPORTER_OTLP_*`` hidden, so their own environment
look-ups add nothing.  Also: the one-line-per-interval limit on the SDK's export-failure logs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import weakref
from collections.abc import Iterator
from typing import Any

from otel_uwsgi.config.settings import Settings

#: The OTLP/HTTP path of each signal under ``otel-exporter-otlp-endpoint``.
PATHS = {"traces": "/v1/traces", "metrics": "/v1/metrics", "logs": "/v1/logs"}


def endpoint(settings: Settings, signal: str) -> str:
    """The signal's URL: its own endpoint option as is, else the base endpoint plus ``/v1/<signal>``."""
    name, value = settings.pick(f"otel-exporter-otlp-{signal}-endpoint", "otel-exporter-otlp-endpoint")
    if name != "otel-exporter-otlp-endpoint":
        return value
    return value.rstrip("/") + PATHS[signal]


def otlp_arguments(settings: Settings, signal: str) -> dict[str, Any]:
    """Keyword arguments for the SDK's OTLP/HTTP exporter of ``signal`` (``traces``, ``metrics``, ``logs``).

    Each value is resolved here (signal-specific option over the generic one, ini over
    environment) and passed explicitly, so the exporter's own environment look-ups add nothing.
    """
    from opentelemetry.exporter.otlp.proto.http import Compression

    def pick(suffix: str) -> Any:
        return settings.pick(f"otel-exporter-otlp-{signal}-{suffix}", f"otel-exporter-otlp-{suffix}")[1]

    return {
        "endpoint": endpoint(settings, signal),
        "certificate_file": pick("certificate"),
        "client_key_file": pick("client-key"),
        "client_certificate_file": pick("client-certificate"),
        "headers": dict(pick("headers") or {}),
        "timeout": pick("timeout"),
        "compression": Compression.Gzip if pick("compression") == "gzip" else Compression.NoCompression,
    }


@contextlib.contextmanager
def without_otlp_environment() -> Iterator[None]:
    """Hide ``OTEL_EXPORTER_OTLP_*`` while an exporter is built.

    The exporter merges environment headers into explicit ones; every value is passed
    explicitly here, so the environment must not add to (or override) what the ini says.
    Runs in the post-fork hook, before any request thread exists.
    """
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("OTEL_EXPORTER_OTLP_")}
    try:
        yield
    finally:
        os.environ.update(saved)


#: Every OTLP exporter this process built (traces, metrics, logs), for :func:`stop_retrying_all`.
_built: weakref.WeakSet[Any] = weakref.WeakSet()


def build_otlp_exporter(exporter_class: Any, settings: Settings, signal: str, **extra: Any) -> Any:
    """``exporter_class`` (an SDK OTLP/HTTP exporter or a subclass) for ``signal``, from the options only."""
    with without_otlp_environment():
        exporter = exporter_class(**{**otlp_arguments(settings, signal), **extra})  # extra wins (a shorter timeout)
    _built.add(exporter)
    return exporter


def stop_retrying_all() -> int:
    """:func:`stop_retrying` for every exporter of every signal this process built; how many took it."""
    return sum(stop_retrying(exporter) for exporter in list(_built))


class ExportErrorLimiter(logging.Filter):
    """One export-failure line per logger per ``interval_s``, not one per export per worker.

    With a collector that lacks a metrics (or logs) pipeline, or none at all, the SDK logs every
    failed export: each worker, every interval.  The first line passes with advice appended;
    later ones are counted and the count is reported with the next line that passes.
    """

    def __init__(self, option: str, interval_s: float = 300.0) -> None:
        super().__init__()
        self.option, self.interval_s = option, interval_s
        self._last = -float("inf")
        self._muted = 0

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if not (message.startswith("Failed to export") or message.startswith("Transient error")):
            return True
        now = time.monotonic()
        if now - self._last < self.interval_s:
            self._muted += 1
            return False
        self._last = now
        note = f" ({self._muted} similar line(s) muted)" if self._muted else ""
        self._muted = 0
        record.msg = (
            f"{message}{note} [otel-uwsgi: is the collector reachable and does it have a pipeline for this "
            f"signal? Otherwise set {self.option} = none; this line repeats at most every "
            f"{self.interval_s:.0f} s per process]"
        )
        return True


def limit_export_errors(logger_name: str, option: str) -> None:
    """Install :class:`ExportErrorLimiter` on an exporter's logger once per process."""
    log = logging.getLogger(logger_name)
    for existing in log.filters:
        if isinstance(existing, ExportErrorLimiter):
            log.removeFilter(existing)  # a fresh one per process: fork copies the old state
    log.addFilter(ExportErrorLimiter(option))


def stop_retrying(exporter: Any) -> bool:
    """From now on, one attempt per batch: a failed export is not retried with backoff.

    At exit the SDK's retries would hold a stop for the whole flush timeout against a collector
    that refuses or answers 503, though the first answer already tells the outcome.  The
    exporter's own shutdown signal for its retry loop does it (private: ``_client._shutdown_event``
    from SDK 1.4x, ``_shutdown_in_progress`` in 1.34-1.3x; it also cuts a backoff under way).
    Where neither exists (1.33 sleeps between retries), nothing changes and the flush timeout
    bounds the stop, as before.  True when set.
    """
    for owner, name in ((getattr(exporter, "_client", None), "_shutdown_event"), (exporter, "_shutdown_in_progress")):
        event = getattr(owner, name, None)
        if callable(getattr(event, "set", None)) and callable(getattr(event, "is_set", None)):
            event.set()
            return True
    return False
