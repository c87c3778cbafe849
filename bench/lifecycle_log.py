"""Per-worker start-up and exit-flush times and undelivered spans, from otel-uwsgi's log lines.

With ``otel-log-level = debug`` otel-uwsgi logs (otel_uwsgi/runtime/process.py, traces/flush.py)::

    otel-uwsgi: tracing started in worker pid 1234 in 3.2 ms
    otel-uwsgi: pid 1234 flushed 2048 spans in 412.0 ms

and at any level, when a worker exits having lost spans::

    otel-uwsgi: pid 1234 exiting: 12 of 3474 span(s) were not delivered (...)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_STARTED_RE = re.compile(r"otel-uwsgi: tracing started in (\w+) pid (\d+) in ([\d.]+) ms")
_FLUSHED_RE = re.compile(r"otel-uwsgi: pid (\d+) flushed (\d+) spans in ([\d.]+) ms")
_LOST_RE = re.compile(r"otel-uwsgi: pid (\d+) exiting: (\d+) of (\d+) span\(s\) were not delivered")
_GAVE_UP_RE = re.compile(r"otel-uwsgi: pid (\d+) gave up flushing spans after ([\d.]+) s")


@dataclass
class Lifecycle:
    init_ms: dict[int, float] = field(default_factory=dict)  # worker pid -> ms
    flushed: dict[int, tuple[int, float]] = field(default_factory=dict)  # pid -> (spans, ms)
    gave_up: dict[int, float] = field(default_factory=dict)  # pid -> seconds
    not_delivered: dict[int, tuple[int, int]] = field(default_factory=dict)  # pid -> (lost, ended)


def parse(text: str) -> Lifecycle:
    found = Lifecycle()
    for kind, pid, ms in _STARTED_RE.findall(text):
        if kind == "worker":
            found.init_ms[int(pid)] = float(ms)
    for pid, spans, ms in _FLUSHED_RE.findall(text):
        found.flushed[int(pid)] = (int(spans), float(ms))
    for pid, seconds in _GAVE_UP_RE.findall(text):
        found.gave_up[int(pid)] = float(seconds)
    for pid, lost, ended in _LOST_RE.findall(text):
        found.not_delivered[int(pid)] = (int(lost), int(ended))
    return found
