"""What ``otel-uwsgi check`` (and the Docker checker) say about metrics and logs.

Beside the spans, a check with metrics on verifies that every worker pid that served requests
exported its own metrics (its final export at exit included), and that uWSGI's server metrics
(``uwsgi.*``) came from one process only: one instance, one point per stream per interval.
Logs are counted per pid but never fail a check: an app may log nothing at the root level.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Optional

from otel_uwsgi.config import uwsgi_ini
from otel_uwsgi.config.settings import ConfigError, Settings, load
from otel_uwsgi.semconv.attributes import PROCESS_TYPE, WORKER_ID
from otel_uwsgi.tools.receiver import ReceivedLog, ReceivedPoint

#: The stream whose exports are counted: worker 1's request counter (present in every export).
REFERENCE = ("uwsgi.worker.requests", 1)
#: The interval ``otel-uwsgi check`` sets, so server metrics arrive several times in a short run.
CHECK_INTERVAL_MS = 1000


def ini_options(text: str) -> dict[str, str]:
    """``otel-*`` options of a prepared ini (``key = value`` and ``set-ph = key=value``; last wins)."""
    opt: dict[str, str] = {}
    for key, value in uwsgi_ini.items(text):
        if key == "set-ph":
            key, _, value = value.partition("=")
            key, value = key.strip(), value.strip()
        if key.startswith("otel-"):
            opt[key] = value
    return opt


def settings_of(ini_text: str, environ: Optional[Mapping[str, str]] = None) -> Optional[Settings]:
    """The settings the workers will resolve from this ini and environment (None if invalid)."""
    try:
        return load(ini_options(ini_text), os.environ if environ is None else environ)
    except ConfigError:
        return None  # uWSGI will refuse to start and say why; the span verdict reports it


@dataclass
class SignalReport:
    """Metrics and logs seen by the check."""

    metrics: bool
    server_metrics: bool
    logs: bool
    interval_ms: int
    metric_points: dict[int, int] = field(default_factory=dict)  # worker pid -> points
    server_exports: int = 0
    server_duplicates: int = 0
    server_instances: int = 0
    server_pids: list[int] = field(default_factory=list)
    log_records: dict[int, int] = field(default_factory=dict)  # pid -> records
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def evaluate_signals(
    points: Iterable[ReceivedPoint],
    logs: Iterable[ReceivedLog],
    serving_pids: Iterable[int],
    *,
    settings: Settings,
    window_s: float,
) -> SignalReport:
    """The verdict on metrics and logs for a run that lasted ``window_s`` seconds."""
    metrics = settings["otel-metrics-exporter"] != "none"
    report = SignalReport(
        metrics=metrics,
        server_metrics=metrics and settings["otel-uwsgi-server-metrics"],
        logs=settings["otel-logs-exporter"] != "none",
        interval_ms=settings["otel-metric-export-interval"],
    )
    points = list(points)
    for p in points:
        if p.resource.get(PROCESS_TYPE) == "worker" and p.pid:
            report.metric_points[p.pid] = report.metric_points.get(p.pid, 0) + 1
    for record in logs:
        if record.pid:
            report.log_records[record.pid] = report.log_records.get(record.pid, 0) + 1
    server = [p for p in points if p.name.startswith("uwsgi.")]
    report.server_instances = len({p.resource.get("service.instance.id") for p in server})
    report.server_pids = sorted({p.pid for p in server if p.pid})
    times = sorted(p.time_ns for p in server if (p.name, p.attributes.get(WORKER_ID)) == REFERENCE)
    report.server_exports = len(times)
    report.server_duplicates = sum(1 for a, b in pairwise(times) if (b - a) / 1e6 < report.interval_ms / 2)
    serving = sorted(set(serving_pids))
    if report.metrics:
        silent = [pid for pid in serving if not report.metric_points.get(pid)]
        if silent:
            report.problems.append(
                f"{len(silent)} of {len(serving)} worker pids sent no metrics ({', '.join(map(str, silent))}): "
                "is the metrics endpoint reachable (otel-exporter-otlp-metrics-endpoint)?"
            )
    if report.server_metrics:
        if report.server_duplicates:
            report.problems.append(
                f"uWSGI server metrics arrived {report.server_duplicates} extra time(s) within one interval: "
                "more than one process exports them"
            )
        if report.server_instances > 1:
            report.problems.append(f"uWSGI server metrics carry {report.server_instances} instance ids, expected 1")
        if not report.server_exports and window_s >= 2 * report.interval_ms / 1000:
            report.problems.append("no uWSGI server metrics arrived (worker 1 exports them every interval)")
    if report.logs and not report.log_records:
        report.notes.append("no log records arrived: does the app log at or above the root logger's level "
                            "(otel-python-log-level)?")
    return report


def render_signals(report: SignalReport) -> str:
    """Lines printed under the span table."""
    lines = []
    if report.metrics:
        pids = ", ".join(f"{pid}: {n}" for pid, n in sorted(report.metric_points.items())) or "none"
        lines.append(f"metrics: data points per worker pid: {pids}")
    if report.server_metrics:
        lines.append(
            f"uWSGI server metrics: {report.server_exports} exports at {report.interval_ms} ms from "
            f"{report.server_instances} instance(s), {report.server_duplicates} duplicate(s)"
        )
    if report.logs:
        pids = ", ".join(f"{pid}: {n}" for pid, n in sorted(report.log_records.items())) or "none"
        lines.append(f"logs: records per pid: {pids}")
    lines.extend(f"  note: {n}" for n in report.notes)
    return "\n".join(lines)


def as_dict(report: SignalReport) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(report)


def merge_into(report: Any, signals: SignalReport) -> Any:
    """The span :class:`~otel_uwsgi.tools.verdict.Report` with the metrics/logs verdict added."""
    import dataclasses

    text = render_signals(signals)
    problems = list(report.problems) + signals.problems
    return dataclasses.replace(
        report,
        ok=not problems,
        problems=problems,
        reason=problems[0] if problems else report.reason,
        signals=as_dict(signals),
        notes=list(report.notes) + ([text] if text else []),
    )


def server_export_gaps(
    times_ns: list[int], interval_ms: int, window_ns: Optional[tuple[int, int]] = None
) -> tuple[int, float]:
    """(intervals without a server-metrics export, longest gap in seconds) between consecutive exports.

    ``window_ns`` (wall-clock start and end of the load) counts as two more instants, so an exporter
    that started late or stopped early in the load shows a gap too.  A gap longer than 1.75
    intervals counts as ``round(gap / interval) - 1`` missed intervals (at least 1): the periodic
    reader waits one interval after each export, so a late export alone stays well below.
    """
    times = sorted(set(times_ns) | set(window_ns or ()))
    gaps = [(b - a) / 1e9 for a, b in pairwise(times)]
    interval_s = interval_ms / 1000
    missed = sum(max(1, round(g / interval_s) - 1) for g in gaps if g > 1.75 * interval_s)
    return missed, round(max(gaps, default=0.0), 2)
