"""Metrics and logs beside traces: built in each process after fork, shut down within the exit deadline.

The tracer provider comes from :mod:`otel_uwsgi.traces.provider`; this module adds, in the same
process and with the same Resource, a MeterProvider (:mod:`otel_uwsgi.metrics.provider`), uWSGI's
server metrics in the one process that owns them (:mod:`otel_uwsgi.metrics.server`) and an OTLP
LoggerProvider (:mod:`otel_uwsgi.logs.export`).  At exit every provider flushes in its own thread,
all joined against the one ``otel-exit-flush-timeout`` deadline, so adding signals never
lengthens a stop.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from opentelemetry.sdk.resources import Resource

from otel_uwsgi.config.settings import Settings

logger = logging.getLogger(__name__)

@dataclass
class Providers:
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


def start(
    settings: Settings,
    resource: Resource,
    *,
    ledger: Any = None,
    instance_resource: Optional[Resource] = None,
) -> Providers:
    """Build this process's meter and logger providers (each only when its exporter is on), and
    uWSGI's server metrics when given the ``instance_resource`` (only the process that owns them is).

    Never raises: a problem with one signal is logged and the others still start.
    """
    import os

    started = Providers(pid=os.getpid())
    if settings["otel-metrics-exporter"] != "none":
        from otel_uwsgi.metrics.provider import build_meter_provider, install_meter_provider

        try:
            provider = build_meter_provider(settings, resource, ledger=ledger)
            install_meter_provider(provider)
            started.providers["metrics"] = provider
        except Exception:  # noqa: BLE001 - never break a worker over telemetry
            logger.exception("otel-uwsgi: could not start metrics in pid %d", started.pid)
        if settings["otel-uwsgi-server-metrics"] and instance_resource is not None:
            from otel_uwsgi.metrics.server import start_server_metrics
            from otel_uwsgi.runtime import uwsgi_api

            try:
                server_provider = build_meter_provider(settings, instance_resource)
                started.providers["server metrics"] = start_server_metrics(settings, server_provider, uwsgi_api)
            except Exception:  # noqa: BLE001
                logger.exception("otel-uwsgi: could not start uWSGI server metrics in pid %d", started.pid)
    if settings["otel-logs-exporter"] != "none":
        try:
            from otel_uwsgi.logs.export import start_log_export

            started.providers["logs"] = start_log_export(settings, resource)
        except Exception:  # noqa: BLE001
            logger.exception("otel-uwsgi: could not start log export in pid %d", started.pid)
    return started
