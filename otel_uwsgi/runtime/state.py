"""What otel-uwsgi holds for this process: its settings, and the provider it built with its
ledger and the other providers.  One object, read by the fork and exit hooks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from otel_uwsgi.config.settings import Settings


@dataclass
class State:
    settings: Optional[Settings] = None
    installed: bool = False
    provider: Any = None
    pid: int = 0  # the process that owns ``provider``
    flushed: bool = False
    journal: Any = None  # otel_uwsgi.traces.journal.processor.JournalSpanProcessor of ``provider``
    instance: Any = None  # otel_uwsgi.traces.journal.directory.Instance of this uWSGI instance
    ledger: Any = None  # otel_uwsgi.traces.ledger.Ledger of ``provider``
    others: Any = None  # otel_uwsgi.runtime.metrics_and_logs.Providers: meter/logger providers beside ``provider``


state = State()


def other_tracer_provider() -> Optional[str]:
    """The class of a TracerProvider that someone else set in this process, or None."""
    from opentelemetry import trace

    current = trace.get_tracer_provider()
    if isinstance(current, trace.ProxyTracerProvider):
        return None
    return f"{type(current).__module__}.{type(current).__qualname__}"
