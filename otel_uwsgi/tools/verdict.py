"""The verdict on spans: per worker pid, requests served against server spans received.

Used by ``otel-uwsgi check`` (:mod:`.check`) and the Docker checker (:mod:`.docker_checker`); the
metrics and logs verdict is :mod:`.metrics_verdict`.  Pure: unit-tested without uWSGI.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from otel_uwsgi.semconv.attributes import WORKER_ID
from otel_uwsgi.tools import causes
from otel_uwsgi.tools.harness import Served
from otel_uwsgi.tools.receiver import ReceivedSpan

#: Kinds of child span the check counts, as :func:`child_kind` names them.
CHILD_KINDS = ("db", "cache", "http", "other")
_CACHES = frozenset({"redis", "memcached"})


def child_kind(span: ReceivedSpan) -> str:
    """``db``, ``cache`` (a DB client span of Redis or Memcached), ``http`` (an HTTP client span)
    or ``other``, from the span's semantic-convention attributes."""
    attributes = span.attributes
    system = attributes.get("db.system.name", attributes.get("db.system"))
    if system is not None:
        return "cache" if str(system).lower() in _CACHES else "db"
    if span.kind == "CLIENT" and ("http.request.method" in attributes or "http.method" in attributes):
        return "http"
    return "other"


@dataclass
class WorkerRow:
    worker_id: int
    pid: int
    requests: int
    spans: int
    instance_ids: list[str]
    children: dict[str, int] = field(default_factory=dict)  # child spans by kind (CHILD_KINDS)

    @property
    def lost(self) -> int:
        return max(0, self.requests - self.spans)


@dataclass
class Report:
    rows: list[WorkerRow]
    expected_workers: int
    requests: int
    spans: int
    lost: int
    ok: bool
    reason: str
    problems: list[str] = field(default_factory=list)
    signals: dict[str, Any] = field(default_factory=dict)  # metrics/logs verdict (metrics_verdict)
    notes: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)  # HTTP status -> responses
    outgoing_calls: int = 0  # HTTP client spans
    continued_calls: int = 0  # of those, whose server span arrived here in the same trace
    target: str = ""  # what the check tested ("testing the uwsgi protocol on ..."), said first
    collector: list[dict[str, Any]] = field(default_factory=list)  # the ini's collector, per signal (.collector)

    def to_json(self) -> str:
        data = asdict(self)
        for row, out in zip(self.rows, data["rows"], strict=True):
            out["lost"] = row.lost
        return json.dumps(data, indent=2, sort_keys=True)


def evaluate(served: Served, spans: list[ReceivedSpan], expected_workers: int) -> Report:
    """The verdict: every worker id has a pid that delivered server spans, and none was lost."""
    server = [s for s in spans if s.kind == "SERVER"]
    by_pid: dict[int, list[ReceivedSpan]] = {}
    for span in server:
        by_pid.setdefault(span.pid or 0, []).append(span)
    children: dict[int, dict[str, int]] = {}
    for span in spans:
        if span.kind != "SERVER":
            kinds = children.setdefault(span.pid or 0, dict.fromkeys(CHILD_KINDS, 0))
            kinds[child_kind(span)] += 1
    calls = [s for s in spans if s.kind == "CLIENT" and child_kind(s) == "http"]
    called = {(s.trace_id, s.parent_span_id) for s in server}
    continued = sum(1 for c in calls if (c.trace_id, c.span_id) in called)
    pids = set(served.requests) | set(by_pid) - {0}
    rows = []
    for pid in sorted(pids, key=lambda p: (served.spawned.get(p, 0), p)):
        got = by_pid.get(pid, [])
        wid = served.spawned.get(pid)
        if wid is None and got:
            wid = got[0].resource.get(WORKER_ID, 0)
        rows.append(
            WorkerRow(
                worker_id=int(wid or 0),
                pid=pid,
                requests=served.requests.get(pid, 0),
                spans=len(got),
                instance_ids=sorted({str(s.resource.get("service.instance.id", "?")) for s in got}),
                children=children.get(pid, dict.fromkeys(CHILD_KINDS, 0)),
            )
        )
    requests = served.total
    lost = sum(r.lost for r in rows)
    problems = _problems(rows, served, expected_workers, unattributed=len(by_pid.get(0, ())))
    return Report(
        rows=rows,
        expected_workers=expected_workers,
        requests=requests,
        spans=len(server),
        lost=lost,
        ok=not problems,
        reason=problems[0] if problems else f"every worker delivered spans ({len(server)} spans, 0 lost)",
        problems=problems,
        statuses=dict(sorted(served.statuses.items())),
        outgoing_calls=len(calls),
        continued_calls=continued,
    )


def _problems(rows: list[WorkerRow], served: Served, expected_workers: int, *, unattributed: int) -> list[str]:
    """What is wrong with a run whose rows are ``rows`` (``unattributed``: server spans without a pid)."""
    requests = served.total
    lost = sum(r.lost for r in rows)
    problems: list[str] = []
    silent = sorted({r.worker_id for r in rows if r.requests and not r.spans})
    delivering = {r.worker_id for r in rows if r.spans}
    never = sorted(set(range(1, expected_workers + 1)) - delivering)
    if requests == 0:
        problems.append("no request was served: is the app loading? see the uWSGI log")
    elif never:
        problems.append(_no_server_spans(rows, never, expected_workers))
    if unattributed:
        problems.append(f"{unattributed} spans carry no process.pid (not from otel-uwsgi?)")
    shared = [i for r in rows for i in r.instance_ids]
    if len(shared) != len(set(shared)):
        problems.append("several worker pids share one service.instance.id (provider built before fork?)")
    if lost:
        problems.append(f"{lost} of {requests} requests have no server span (spans lost)")
    if silent and not never:
        quiet = ", ".join(str(r.pid) for r in rows if r.requests and not r.spans)
        problems.append(f"worker pids {quiet} sent no spans")
    bad = {code: n for code, n in sorted(served.statuses.items()) if not 200 <= code < 400}
    if bad:
        listing = ", ".join(f"{n} x {code}" for code, n in bad.items())
        total = sum(served.statuses.values())
        problems.append(f"{sum(bad.values())} of {total} responses were errors ({listing}): see the app's log")
    return problems


def _no_server_spans(rows: list[WorkerRow], never: list[int], expected_workers: int) -> str:
    """Why ``never`` (worker ids) delivered no server span: with child spans from them (DB, cache,
    HTTP calls), the export works and only the request is untraced: the framework's app was built
    before ``import otel_uwsgi.auto``."""
    workers = f"worker {', '.join(map(str, never))}"
    children = sum(sum(r.children.values()) for r in rows if r.worker_id in never)
    if children:
        return (
            f"{len(never)} of {expected_workers} workers sent no server span but {children} child spans "
            f"({workers}): their requests are not traced, though export works; likely the framework's app "
            "(get_wsgi_application(), Flask(...)) was created before `import otel_uwsgi.auto`: import it "
            "first in the wsgi file"
        )
    return (
        f"{len(never)} of {expected_workers} workers sent no spans ({workers}): "
        "is otel_uwsgi.auto imported by the app, enable-threads set and the endpoint reachable?"
    )


def render(report: Report) -> str:
    kinds = "".join(f" {k:>6}" for k in CHILD_KINDS)
    header = f"{'worker':>6} {'pid':>8} {'requests':>9} {'spans':>6} {'lost':>5}{kinds}  service.instance.id"
    lines = [report.target] if report.target else []
    lines += [header, "-" * len(header)]
    for r in report.rows:
        counts = "".join(f" {r.children.get(k, 0):>6}" for k in CHILD_KINDS)
        lines.append(
            f"{r.worker_id:>6} {r.pid:>8} {r.requests:>9} {r.spans:>6} {r.lost:>5}{counts}  "
            f"{', '.join(r.instance_ids) or '-'}"
        )
    lines.append("-" * len(header))
    totals = "".join(f" {sum(r.children.get(k, 0) for r in report.rows):>6}" for k in CHILD_KINDS)
    lines.append(f"{'total':>6} {'':>8} {report.requests:>9} {report.spans:>6} {report.lost:>5}{totals}")
    lines.append(
        "child spans by kind: db, cache (Redis, Memcached), http (outgoing calls), other; responses: "
        + (", ".join(f"{n} x {code}" for code, n in report.statuses.items()) or "-")
    )
    if report.outgoing_calls:
        lines.append(
            f"outgoing HTTP calls: {report.outgoing_calls}, {report.continued_calls} of them continued the trace "
            "in a server span that arrived here (calls to services exporting elsewhere cannot be seen)"
        )
    lines.extend(f"collector: {probe['line']}" for probe in report.collector)
    lines.extend(report.notes)
    lines.append(("OK: " if report.ok else "FAIL: ") + report.reason)
    lines.extend(f"  also: {p}" for p in report.problems[1:])
    return "\n".join(lines)


def extra_problems(
    served: Served,
    spans: list[ReceivedSpan],
    *,
    load_errors: int = 0,
    stopped: bool = True,
    fifo_error: Optional[str] = None,
    expect_db: Optional[str] = None,
) -> list[str]:
    """What the Docker checker adds to :func:`evaluate`'s verdict."""
    problems: list[str] = []
    if fifo_error:
        problems.append(f"could not ask uWSGI for a graceful shutdown through its master FIFO: {fifo_error}")
    elif not stopped:
        problems.append("uWSGI did not stop after 'q' on its master FIFO (its stats port still answers)")
    if load_errors:
        problems.append(f"{load_errors} requests failed at the connection level")
    if expect_db and served.total:
        db = db_spans(spans, expect_db)
        if not db:
            problems.append(f"no {expect_db} DB spans arrived (is the demo on {expect_db}, the driver instrumented?)")
    return problems


def db_spans(spans: list[ReceivedSpan], system: Optional[str] = None) -> list[ReceivedSpan]:
    """CLIENT spans of a database call (``db.system`` / ``db.system.name``), optionally of one system."""
    out = []
    for span in spans:
        if span.kind != "CLIENT":
            continue
        value = span.attributes.get("db.system.name", span.attributes.get("db.system"))
        if value is None:
            continue
        if system is None or str(value).lower() == system.lower():
            out.append(span)
    return out


def merge(report: Report, problems: list[str]) -> Report:
    """``report`` with ``problems`` appended (the first one becomes the reason if it was ok)."""
    if not problems:
        return report
    merged = list(report.problems) + problems
    return dataclasses.replace(report, ok=False, problems=merged, reason=merged[0])


def explain(report: Report, log: str, *, renamed: Optional[dict[str, str]] = None, started: bool = True) -> Report:
    """Lead a failed check with its cause in uWSGI's log (:mod:`.causes`: uWSGI's fatal line, the
    app's exception, otel-uwsgi's line that stopped the start or its most consequential warning),
    before the verdict's own problems; advisory warnings come last.  A passing check lists
    otel-uwsgi's warnings as notes.  ``renamed`` maps the check's copy of the ini to the user's;
    ``started`` False: uWSGI exited before serving anything."""
    found = causes.causes(log, renamed=renamed)
    if report.ok and started:
        own = [c.line for c in found if c.rank >= causes.OWN]
        return dataclasses.replace(report, notes=[*report.notes, *own]) if own else report
    leading = [c.line for c in found if not c.advisory]
    advisory = [c.line for c in found if c.advisory]
    merged = list(dict.fromkeys([*leading, *report.problems, *advisory]))
    if not merged:
        return report
    return dataclasses.replace(report, ok=False, reason=merged[0], problems=merged)
