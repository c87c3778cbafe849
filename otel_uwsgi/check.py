"""``otel-uwsgi check``: does tracing really work with *this* uwsgi.ini?

Starts an embedded OTLP/HTTP receiver and uWSGI with the user's ini (socket and endpoint
replaced, on loopback), sends requests until every worker has served one, stops uWSGI
gracefully, then compares, per worker pid, the requests uWSGI logged with the server spans that
arrived.  Exit status 0 only when every worker delivered spans and none was lost.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, TextIO

from otel_uwsgi import check_signals
from otel_uwsgi.harness import OWNED_KEYS, Load, Served, UwsgiServer, free_port, owned_overrides, prepare_ini
from otel_uwsgi.receiver import ReceivedSpan, Receiver


@dataclass
class WorkerRow:
    worker_id: int
    pid: int
    requests: int
    spans: int
    instance_ids: list[str]

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
    signals: dict[str, Any] = field(default_factory=dict)  # metrics/logs verdict (check_signals)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        data = asdict(self)
        for row, out in zip(self.rows, data["rows"]):
            out["lost"] = row.lost
        return json.dumps(data, indent=2, sort_keys=True)


def evaluate(served: Served, spans: list[ReceivedSpan], expected_workers: int) -> Report:
    """The verdict: every worker id has a pid that delivered server spans, and none was lost."""
    server = [s for s in spans if s.kind == "SERVER"]
    by_pid: dict[int, list[ReceivedSpan]] = {}
    for span in server:
        by_pid.setdefault(span.pid or 0, []).append(span)
    pids = set(served.requests) | set(by_pid) - {0}
    rows = []
    for pid in sorted(pids, key=lambda p: (served.spawned.get(p, 0), p)):
        got = by_pid.get(pid, [])
        wid = served.spawned.get(pid)
        if wid is None and got:
            wid = got[0].resource.get("uwsgi.worker.id", 0)
        rows.append(
            WorkerRow(
                worker_id=int(wid or 0),
                pid=pid,
                requests=served.requests.get(pid, 0),
                spans=len(got),
                instance_ids=sorted({str(s.resource.get("service.instance.id", "?")) for s in got}),
            )
        )
    requests = served.total
    lost = sum(r.lost for r in rows)
    problems: list[str] = []
    silent = sorted({r.worker_id for r in rows if r.requests and not r.spans})
    delivering = {r.worker_id for r in rows if r.spans}
    never = sorted(set(range(1, expected_workers + 1)) - delivering)
    if requests == 0:
        problems.append("no request was served: is the app loading? see the uWSGI log")
    elif never:
        problems.append(
            f"{len(never)} of {expected_workers} workers sent no spans (worker {', '.join(map(str, never))}): "
            "is otel_uwsgi.auto imported by the app, enable-threads set and the endpoint reachable?"
        )
    if by_pid.get(0):
        problems.append(f"{len(by_pid[0])} spans carry no process.pid (not from otel-uwsgi?)")
    shared = [i for r in rows for i in r.instance_ids]
    if len(shared) != len(set(shared)):
        problems.append("several worker pids share one service.instance.id (provider built before fork?)")
    if lost:
        problems.append(f"{lost} of {requests} requests have no server span (spans lost)")
    if silent and not never:
        quiet = ", ".join(str(r.pid) for r in rows if r.requests and not r.spans)
        problems.append(f"worker pids {quiet} sent no spans")
    return Report(
        rows=rows,
        expected_workers=expected_workers,
        requests=requests,
        spans=len(server),
        lost=lost,
        ok=not problems,
        reason=problems[0] if problems else f"every worker delivered spans ({len(server)} spans, 0 lost)",
        problems=problems,
    )


def render(report: Report) -> str:
    header = f"{'worker':>6} {'pid':>8} {'requests':>9} {'spans':>6} {'lost':>5}  service.instance.id"
    lines = [header, "-" * len(header)]
    for r in report.rows:
        lines.append(
            f"{r.worker_id:>6} {r.pid:>8} {r.requests:>9} {r.spans:>6} {r.lost:>5}  {', '.join(r.instance_ids) or '-'}"
        )
    lines.append("-" * len(header))
    lines.append(f"{'total':>6} {'':>8} {report.requests:>9} {report.spans:>6} {report.lost:>5}")
    lines.extend(report.notes)
    lines.append(("OK: " if report.ok else "FAIL: ") + report.reason)
    lines.extend(f"  also: {p}" for p in report.problems[1:])
    return "\n".join(lines)


def count_workers(ini_text: str) -> int:
    """``processes`` / ``workers`` from the prepared ini (last wins, as on uWSGI 2.0.x)."""
    count = 1
    for line in ini_text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("processes", "workers"):
            try:
                count = int(value.strip())
            except ValueError:
                pass
    return count


def run_check(
    ini: str,
    *,
    path: str = "/",
    requests: int = 200,
    timeout: float = 60.0,
    progress: Optional[TextIO] = None,
    extra: Optional[dict[str, str]] = None,
    receiver: Optional[Receiver] = None,
    endpoint: Optional[str] = None,
    on_server: Optional[Callable[[UwsgiServer], None]] = None,
) -> tuple[Report, str]:
    """Run the check; returns the report and uWSGI's log.

    ``receiver``/``endpoint`` let the Docker checker point uWSGI at a collector that forwards
    to a receiver listening elsewhere.
    """
    own_receiver = receiver is None
    receiver = receiver or Receiver().start()
    deadline = time.monotonic() + timeout
    # uWSGI's copy of the ini (it may hold header values) and its log: removed when done.
    workdir = tempfile.mkdtemp(prefix="otel-uwsgi-check-")
    try:
        port = free_port()
        overrides = owned_overrides(port, endpoint or receiver.endpoint)
        overrides.update(extra or {})
        drop = OWNED_KEYS | {"otel-exporter-otlp-metrics-endpoint", "otel-exporter-otlp-logs-endpoint"}
        settings = check_signals.settings_of(prepare_ini(ini, overrides, drop=drop))
        if settings is not None and settings["otel-metrics-exporter"] != "none":
            overrides.setdefault("otel-metric-export-interval", str(check_signals.CHECK_INTERVAL_MS))
            settings = check_signals.settings_of(prepare_ini(ini, overrides, drop=drop))
        text = prepare_ini(ini, overrides, drop=drop)
        expected = count_workers(text)
        started = time.monotonic()
        server = UwsgiServer(text, workdir=workdir)
        with server:
            if on_server:
                on_server(server)
            server.wait_workers(expected, max(1.0, deadline - time.monotonic()))
            with Load("127.0.0.1", port, path, concurrency=max(2, expected * 2)):
                last = 0.0
                while time.monotonic() < deadline and server.alive():
                    served = server.served()
                    covered = {served.spawned.get(p) for p, n in served.requests.items() if n}
                    done = len(covered) >= expected and served.total >= requests and _server_metrics_seen(
                        receiver, settings
                    )
                    if progress and (time.monotonic() - last > 0.5 or done):
                        last = time.monotonic()
                        progress.write(
                            f"\rwaiting: {len(covered)}/{expected} workers served, {served.total} requests, "
                            f"{len(receiver.server_spans())} server spans received   "
                        )
                        progress.flush()
                    if done:
                        break
                    time.sleep(0.1)
            server.stop(signal.SIGINT, kill_after=max(5.0, deadline - time.monotonic() + 5))
            if progress:
                progress.write("\n")
        served = server.served()
        # Graceful exit flushed each worker's queue; allow the last requests to land.
        receiver.wait_for(lambda s: sum(1 for x in s if x.kind == "SERVER") >= served.total, 5.0)
        report = evaluate(served, receiver.snapshot(), expected)
        if settings is not None:
            pids = [pid for pid, n in served.requests.items() if n]
            if settings["otel-metrics-exporter"] != "none":  # each worker's final export arrives after it exits
                receiver.wait_until(lambda: pids and {p.pid for p in receiver.points} >= set(pids), 5.0)
            report = check_signals.merge_into(report, check_signals.evaluate_signals(
                receiver.metric_points(), receiver.log_records(), pids, settings=settings,
                window_s=time.monotonic() - started,
            ))
        return report, server.log()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if own_receiver:
            receiver.stop()


def _server_metrics_seen(receiver: Receiver, settings: Any, exports: int = 3) -> bool:
    """With server metrics on, keep the load up until worker 1 exported them a few times."""
    if settings is None or settings["otel-metrics-exporter"] == "none" or not settings["otel-uwsgi-server-metrics"]:
        return True
    name, wid = check_signals.REFERENCE
    return sum(1 for p in receiver.metric_points(name) if p.attributes.get("uwsgi.worker.id") == wid) >= exports


def main(argv: Optional[list[str]] = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="otel-uwsgi check",
        description="Start uWSGI with your ini and an embedded OTLP receiver; verify every worker sends spans.",
    )
    parser.add_argument("ini", help="path to your uwsgi.ini")
    parser.add_argument("--requests", type=int, default=200, help="minimum requests to send (default 200)")
    parser.add_argument("--path", default="/", help="URL path to request (default /)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before giving up (default 60)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--show-log", action="store_true", help="print uWSGI's log after the report")
    parser.add_argument("--metrics", action="store_true",
                        help="turn metrics on for this run (otel-metrics-exporter = otlp) and verify them")
    parser.add_argument("--logs", action="store_true", help="turn OTLP log export on for this run and count records")
    args = parser.parse_args(argv)
    if not Path(args.ini).is_file():
        print(f"otel-uwsgi check: no such ini file: {args.ini}", file=sys.stderr)
        return 2
    report, log = run_check(
        args.ini,
        path=args.path,
        requests=args.requests,
        timeout=args.timeout,
        progress=None if args.json else sys.stderr,
        extra={**({"otel-metrics-exporter": "otlp"} if args.metrics else {}),
               **({"otel-logs-exporter": "otlp"} if args.logs else {})},
    )
    print(report.to_json() if args.json else render(report))
    if args.show_log or (not report.ok and not args.json):
        tail = "\n".join(log.splitlines()[-40:])
        print("\n--- last lines of the uWSGI log ---\n" + tail, file=sys.stderr)
    return 0 if report.ok else 1
