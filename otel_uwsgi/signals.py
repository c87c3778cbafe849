"""Metrics and logs beside traces: built in each process after fork, shut down within the exit deadline.

The tracer provider stays in :mod:`otel_uwsgi.tracing`; this module adds, in the same process and
with the same Resource, a MeterProvider (:mod:`otel_uwsgi.metrics`), uWSGI's server metrics in
the one process that owns them (:mod:`otel_uwsgi.server_metrics`) and an OTLP LoggerProvider
(:mod:`otel_uwsgi.logs`).  At exit every provider flushes in its own thread, all joined against
the one ``otel-exit-flush-timeout`` deadline, so adding signals never lengthens a stop.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from opentelemetry.sdk.resources import Resource

from otel_uwsgi.options import Settings

logger = logging.getLogger("otel_uwsgi")

#: The OTLP/HTTP path of each signal under ``otel-exporter-otlp-endpoint``.
PATHS = {"traces": "/v1/traces", "metrics": "/v1/metrics", "logs": "/v1/logs"}


def endpoint(settings: Settings, signal: str) -> str:
    """The signal's URL: its own endpoint option as is, else the base endpoint plus ``/v1/<signal>``."""
    name, value = settings.pick(f"otel-exporter-otlp-{signal}-endpoint", "otel-exporter-otlp-endpoint")
    if name != "otel-exporter-otlp-endpoint":
        return value
    return value.rstrip("/") + PATHS[signal]


def otlp_arguments(settings: Settings, signal: str) -> dict[str, Any]:
    """Keyword arguments for the SDK's OTLP/HTTP exporter of ``signal`` (``metrics`` or ``logs``).

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


@dataclass
class Signals:
    """The providers of one process besides its tracer provider, by name."""

    providers: dict[str, Any] = field(default_factory=dict)
    pid: int = 0

    def begin_shutdown(self) -> Pending:
        """Start each provider's shutdown (final export included) in its own daemon thread."""
        pending = Pending()
        for name, provider in self.providers.items():
            done = threading.Event()

            def work(provider: Any = provider, name: str = name, done: threading.Event = done) -> None:
                try:
                    provider.shutdown()
                except Exception:  # noqa: BLE001 - never raise into uWSGI's exit path
                    logger.exception("otel-uwsgi: error while flushing %s at exit", name)
                finally:
                    done.set()

            threading.Thread(target=work, name=f"otel-uwsgi-exit-{name.replace(' ', '-')}", daemon=True).start()
            pending.events[name] = done
        return pending


@dataclass
class Pending:
    """Shutdowns in flight; :meth:`wait` joins them against a deadline."""

    events: dict[str, threading.Event] = field(default_factory=dict)

    def wait(self, deadline: float) -> list[str]:
        """Wait until ``deadline`` (``time.monotonic()``); returns the names still unfinished (and says so)."""
        late = [name for name, done in self.events.items() if not done.wait(max(0.0, deadline - time.monotonic()))]
        if late:
            logger.warning(
                "otel-uwsgi: gave up flushing %s at exit (collector slow or unreachable); raise "
                "otel-exit-flush-timeout to wait longer",
                " and ".join(late),
            )
        return late


def preload(settings: Settings) -> None:
    """Import the metrics/logs export path in the master, before fork (as tracing.preload does)."""
    if settings["otel-metrics-exporter"] == "otlp":
        import opentelemetry.exporter.otlp.proto.http.metric_exporter  # noqa: F401
        import opentelemetry.sdk.metrics  # noqa: F401
    if settings["otel-logs-exporter"] == "otlp":
        import opentelemetry.exporter.otlp.proto.http._log_exporter  # noqa: F401
        import opentelemetry.sdk._logs  # noqa: F401


def start(
    settings: Settings,
    resource: Resource,
    *,
    ledger: Any = None,
    process_type: str = "worker",
    worker_id: Optional[int] = None,
) -> Signals:
    """Build this process's meter and logger providers (each only when its exporter is on).

    Never raises: a problem with one signal is logged and the others still start.
    """
    import os

    signals = Signals(pid=os.getpid())
    if settings["otel-metrics-exporter"] != "none":
        try:
            from otel_uwsgi.metrics import build_meter_provider, install_meter_provider

            provider = build_meter_provider(settings, resource, ledger=ledger)
            install_meter_provider(provider)
            signals.providers["metrics"] = provider
        except Exception:  # noqa: BLE001 - never break a worker over telemetry
            logger.exception("otel-uwsgi: could not start metrics in pid %d", signals.pid)
        if settings["otel-uwsgi-server-metrics"]:
            try:
                from otel_uwsgi.server_metrics import start_server_metrics

                server = start_server_metrics(settings, process_type=process_type, worker_id=worker_id)
                if server is not None:
                    signals.providers["server metrics"] = server
            except Exception:  # noqa: BLE001
                logger.exception("otel-uwsgi: could not start uWSGI server metrics in pid %d", signals.pid)
    if settings["otel-logs-exporter"] != "none":
        try:
            from otel_uwsgi.logs import start_log_export

            signals.providers["logs"] = start_log_export(settings, resource)
        except Exception:  # noqa: BLE001
            logger.exception("otel-uwsgi: could not start log export in pid %d", signals.pid)
    return signals
