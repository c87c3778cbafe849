"""``python -m otel_uwsgi.check_remote``: the checker of the Docker harness (``docker/harness``).

``otel-uwsgi check`` runs uWSGI itself; here uWSGI runs in another container (``app``) and this
module only talks to it over the network:

1. an OTLP/HTTP :class:`~otel_uwsgi.receiver.Receiver` listens on ``--listen`` (``0.0.0.0:4318``:
   the collector, or the app directly, sends spans to ``http://checker:4318``);
2. wait until uWSGI's stats server (``--stats``, JSON) lists every worker with a pid and the app
   answers ``--url`` with a 2xx;
3. send concurrent requests until the stats server shows every worker served at least one and
   at least ``--requests`` in total, then stop the load and read the final per-worker counts
   (``workers[].id``, ``workers[].pid``, ``workers[].requests``) as a :class:`Served`;
4. write ``q`` to uWSGI's master FIFO (``--fifo``, on a volume shared with the app): a graceful
   shutdown, during which each worker flushes its spans;
5. wait until the stats port stops answering (uWSGI is gone), then until as many server spans as
   requests served have arrived (or ``--span-timeout`` / no new span for ``--settle`` seconds);
6. print the per-worker table (:func:`otel_uwsgi.check.render`) or ``--json``; exit 0 only when
   the report is ok.

The pure parts (:func:`served_from_stats`, :func:`worker_count`, :func:`extra_problems`) are
unit-tested without Docker.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import socket
import sys
import time
from collections.abc import Mapping
from typing import Any, Callable, Optional, TextIO
from urllib.parse import urlsplit

from otel_uwsgi.check import Report, evaluate, render
from otel_uwsgi.harness import Load, Served, http_get
from otel_uwsgi.receiver import ReceivedSpan, Receiver

DEFAULT_URL = "http://app:8000/"
DEFAULT_STATS = "app:9191"
DEFAULT_FIFO = "/run/otel-uwsgi/master.fifo"
DEFAULT_LISTEN = "0.0.0.0:4318"


class StatsError(RuntimeError):
    """The uWSGI stats server did not answer with JSON."""


# --------------------------------------------------------------------------- pure parts


def served_from_stats(stats: Mapping[str, Any], statuses: Optional[Mapping[int, int]] = None) -> Served:
    """A :class:`Served` from the uWSGI stats server's JSON.

    ``spawned`` maps each running worker's pid to its worker id, ``requests`` each pid to the
    requests uWSGI counted for that worker.  Workers without a pid (not running, e.g. between
    a death and its respawn) are left out.  The stats server knows only the current process of
    each worker id: requests served by an earlier, respawned process are counted under the
    current pid.  ``statuses`` (HTTP status -> count) is what the load generator saw; the
    stats server has no per-status counts.
    """
    served = Served()
    workers = stats.get("workers")
    if not isinstance(workers, list):
        raise StatsError("stats JSON has no 'workers' list (is this the uWSGI stats server?)")
    for worker in workers:
        if not isinstance(worker, Mapping):
            continue
        try:
            pid = int(worker.get("pid") or 0)
            wid = int(worker.get("id") or 0)
            requests = int(worker.get("requests") or 0)
        except (TypeError, ValueError):
            continue
        if pid <= 0 or wid <= 0:
            continue
        served.spawned[pid] = wid
        served.requests[pid] = requests
    served.statuses = dict(statuses or {})
    return served


def worker_count(stats: Mapping[str, Any]) -> int:
    """How many workers uWSGI is configured with (running or not): the stats ``workers`` list."""
    workers = stats.get("workers")
    return len(workers) if isinstance(workers, list) else 0


def covered_workers(served: Served) -> set[int]:
    """Worker ids that served at least one request."""
    return {served.spawned[pid] for pid, n in served.requests.items() if n and pid in served.spawned}


def parse_hostport(text: str, default_port: int) -> tuple[str, int]:
    """``host:port``, ``host`` or ``:port`` (host empty -> ``0.0.0.0``)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        return text or "0.0.0.0", default_port
    if not port.isdigit():
        raise ValueError(f"not host:port: {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def extra_problems(
    served: Served,
    spans: list[ReceivedSpan],
    *,
    load_errors: int = 0,
    stopped: bool = True,
    fifo_error: Optional[str] = None,
    expect_db: Optional[str] = None,
) -> list[str]:
    """What the Docker checker adds to :func:`otel_uwsgi.check.evaluate`'s verdict."""
    problems: list[str] = []
    if fifo_error:
        problems.append(f"could not ask uWSGI for a graceful shutdown through its master FIFO: {fifo_error}")
    elif not stopped:
        problems.append("uWSGI did not stop after 'q' on its master FIFO (its stats port still answers)")
    bad = {code: n for code, n in sorted(served.statuses.items()) if not 200 <= code < 400}
    if bad:
        total = sum(served.statuses.values())
        listing = ", ".join(f"{n} x {code}" for code, n in bad.items())
        problems.append(f"{sum(bad.values())} of {total} responses were errors ({listing}): see the app's log")
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


# --------------------------------------------------------------------------- network parts


def fetch_stats(host: str, port: int, timeout: float = 5.0) -> dict[str, Any]:
    """One read of the uWSGI stats server (it writes JSON and closes)."""
    chunks = []
    with socket.create_connection((host, port), timeout=timeout) as sock:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    raw = b"".join(chunks)
    try:
        data = json.loads(raw.decode("utf-8", "replace"))
    except ValueError as exc:
        raise StatsError(f"stats server at {host}:{port} sent no JSON ({len(raw)} bytes): {exc}") from None
    if not isinstance(data, dict):
        raise StatsError(f"stats server at {host}:{port} sent {type(data).__name__}, not an object")
    return data


def send_fifo(path: str, command: bytes = b"q") -> None:
    """Write ``command`` to uWSGI's master FIFO (fails at once when no master reads it)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise OSError(f"{path}: no uWSGI master has it open (ENXIO)") from None
        raise
    try:
        os.write(fd, command)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- the run


@dataclasses.dataclass
class Options:
    url: str = DEFAULT_URL
    stats: str = DEFAULT_STATS
    fifo: str = DEFAULT_FIFO
    listen: str = DEFAULT_LISTEN
    requests: int = 200
    workers: int = 0  # 0: as many as the stats server lists
    concurrency: int = 0  # 0: twice the workers
    startup_timeout: float = 120.0
    load_timeout: float = 60.0
    stop_timeout: float = 70.0
    span_timeout: float = 30.0
    settle: float = 5.0
    expect_db: Optional[str] = None
    metric_interval: int = 0  # ms; > 0: the app exports metrics at this interval, verify them
    json: bool = False


@dataclasses.dataclass
class Outcome:
    report: Report
    served: Served
    info: dict[str, Any]


class _Progress:
    """One status line per ``every`` seconds (newline-terminated: output is usually not a tty)."""

    def __init__(self, out: Optional[TextIO], every: float = 1.0) -> None:
        self.out, self.every, self.last = out, every, 0.0

    def __call__(self, text: str, force: bool = False) -> None:
        if self.out is None:
            return
        now = time.monotonic()
        if force or now - self.last >= self.every:
            self.last = now
            self.out.write(f"checker: {text}\n")
            self.out.flush()


def _wait(predicate: Callable[[], bool], timeout: float, tick: Callable[[], None], step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        tick()
        time.sleep(step)


def run(opts: Options, progress: Optional[TextIO] = sys.stderr) -> Outcome:
    say = _Progress(progress)
    url = urlsplit(opts.url)
    app_host, app_port = url.hostname or "app", url.port or 80
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    stats_host, stats_port = parse_hostport(opts.stats, 9191)
    listen_host, listen_port = parse_hostport(opts.listen, 4318)

    receiver = Receiver(host=listen_host, port=listen_port).start()
    say(f"OTLP/HTTP receiver listening on {listen_host}:{receiver.port}", force=True)
    info: dict[str, Any] = {"url": opts.url, "stats": f"{stats_host}:{stats_port}", "fifo": opts.fifo}
    try:
        return _run(opts, receiver, say, info, app_host, app_port, path, stats_host, stats_port)
    finally:
        receiver.stop()


def _run(
    opts: Options,
    receiver: Receiver,
    say: _Progress,
    info: dict[str, Any],
    app_host: str,
    app_port: int,
    path: str,
    stats_host: str,
    stats_port: int,
) -> Outcome:
    last_stats: dict[str, Any] = {}
    last_error = ""

    def poll_stats() -> Optional[dict[str, Any]]:
        nonlocal last_stats, last_error
        try:
            last_stats = fetch_stats(stats_host, stats_port)
            return last_stats
        except (OSError, StatsError) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
            return None

    # -- 1. readiness: every worker has a pid, the app answers 2xx/3xx
    def workers_up() -> bool:
        stats = poll_stats()
        if stats is None:
            return False
        want = opts.workers or worker_count(stats)
        return want > 0 and len(served_from_stats(stats).spawned) >= want

    started = time.monotonic()
    ok = _wait(
        workers_up,
        opts.startup_timeout,
        lambda: say(f"waiting for uWSGI stats at {stats_host}:{stats_port} ({last_error or 'workers starting'})"),
    )
    if not ok:
        raise SystemExit(
            f"checker: FAIL: uWSGI's stats server at {stats_host}:{stats_port} did not list the workers "
            f"within {opts.startup_timeout:.0f}s (last: {last_error or json.dumps(last_stats)[:200]})"
        )
    expected = opts.workers or worker_count(last_stats)
    say(f"uWSGI is up: {expected} workers, pids {sorted(served_from_stats(last_stats).spawned)}", force=True)

    warmup: dict[int, int] = {}

    def app_answers() -> bool:
        nonlocal last_error
        try:
            status = http_get(app_host, app_port, path, timeout=10)
        except OSError as exc:
            last_error = f"{type(exc).__name__}: {exc}"
            return False
        warmup[status] = warmup.get(status, 0) + 1
        last_error = f"HTTP {status}"
        return 200 <= status < 400

    remaining = max(5.0, opts.startup_timeout - (time.monotonic() - started))
    if not _wait(app_answers, remaining, lambda: say(f"waiting for {opts.url} ({last_error})"), step=0.5):
        raise SystemExit(
            f"checker: FAIL: {opts.url} did not answer 2xx within the startup timeout (last: {last_error})"
        )
    info["warmup_statuses"] = warmup

    # -- 2. load until every worker served and enough requests
    concurrency = opts.concurrency or max(2, expected * 2)
    say(
        f"sending requests to {opts.url} ({concurrency} concurrent) until all {expected} workers "
        f"served and >= {opts.requests} requests",
        force=True,
    )
    # With metrics, the load lasts at least three intervals, so uWSGI's server metrics are required
    # (check_signals wants them when the load lasted two) and their export rhythm can be judged.
    min_load = 3 * opts.metric_interval / 1000
    t0, load_start_ns = time.monotonic(), time.time_ns()
    with Load(app_host, app_port, path, concurrency) as load:
        done = False
        while not done and time.monotonic() - t0 < opts.load_timeout:
            stats = poll_stats()
            if stats is not None:
                served = served_from_stats(stats)
                covered = covered_workers(served)
                done = (
                    len(covered) >= expected
                    and served.total >= opts.requests
                    and time.monotonic() - t0 >= min_load
                )
                say(
                    f"load: {len(covered)}/{expected} workers served, {served.total} requests, "
                    f"{len(receiver.server_spans())} server spans received",
                    force=done,
                )
            if not done:
                time.sleep(0.2)
    info["load_seconds"] = round(time.monotonic() - t0, 1)
    load_window_ns = (load_start_ns, time.time_ns())  # points carry wall-clock times (same kernel clock)
    if load.errors:
        info["load_last_error"] = load.last_error

    # -- 3. final counts: poll until uWSGI counted every completed response and the numbers hold still
    completed = load.completed + sum(warmup.values())
    final: Optional[dict[str, Any]] = None
    prev = -1
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        stats = poll_stats()
        if stats is not None:
            total = served_from_stats(stats).total
            final = stats
            if total >= completed and total == prev:
                break
            prev = total
        time.sleep(0.2)
    if final is None:
        final = last_stats
    # Statuses of the load only: the readiness probe may have seen the app's first errors.
    statuses = dict(load.statuses)
    served = served_from_stats(final, statuses)
    say(f"load stopped: {served.total} requests served by uWSGI ({completed} responses seen here)", force=True)

    # -- 4. graceful shutdown through the master FIFO
    fifo_error: Optional[str] = None
    try:
        send_fifo(opts.fifo, b"q")
        say(f"wrote 'q' to {opts.fifo}: graceful shutdown, workers flush their spans", force=True)
    except OSError as exc:
        fifo_error = str(exc)
        say(f"could not write to {opts.fifo}: {exc}", force=True)

    # -- 5. wait until uWSGI is gone, then for the spans
    t_stop = time.monotonic()
    stopped = _wait(
        lambda: poll_stats() is None,
        opts.stop_timeout if not fifo_error else 0,
        lambda: say(f"waiting for uWSGI to exit; {len(receiver.server_spans())} server spans received"),
    )
    info["stop_seconds"] = round(time.monotonic() - t_stop, 1)
    if stopped:
        say(f"uWSGI stopped after {info['stop_seconds']}s", force=True)

    want = served.total
    t_spans = time.monotonic()
    last_count, last_change = -1, time.monotonic()

    def enough() -> bool:
        nonlocal last_count, last_change
        count = len(receiver.server_spans())
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        if count >= want:
            return True
        # Once uWSGI is gone nothing new is produced: give up when the stream has been quiet.
        return stopped and time.monotonic() - last_change >= opts.settle

    _wait(
        enough,
        opts.span_timeout,
        lambda: say(f"waiting for spans: {len(receiver.server_spans())}/{want} server spans"),
    )
    info["span_wait_seconds"] = round(time.monotonic() - t_spans, 1)
    spans = receiver.snapshot()
    say(f"{sum(1 for s in spans if s.kind == 'SERVER')}/{want} server spans received", force=True)

    report = evaluate(served, spans, expected)
    report = merge(
        report,
        extra_problems(
            served, spans, load_errors=load.errors, stopped=stopped, fifo_error=fifo_error, expect_db=opts.expect_db
        ),
    )
    if opts.metric_interval:
        report = _with_signals(report, receiver, served, opts, info["load_seconds"], load_window_ns)
    info.update(
        {
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "load_errors": load.errors,
            "db_spans": len(db_spans(spans)),
            "export_requests": receiver.stats.requests,
            "export_encodings": sorted(receiver.stats.encodings),
            "uwsgi_stopped": stopped,
        }
    )
    return Outcome(report=report, served=served, info=info)


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
    gaps = [(b - a) / 1e9 for a, b in zip(times, times[1:])]
    interval_s = interval_ms / 1000
    missed = sum(max(1, round(g / interval_s) - 1) for g in gaps if g > 1.75 * interval_s)
    return missed, round(max(gaps, default=0.0), 2)


def _with_signals(
    report: Report,
    receiver: Receiver,
    served: Served,
    opts: Options,
    window_s: float,
    window_ns: Optional[tuple[int, int]] = None,
) -> Report:
    """Add the metrics verdict (:mod:`otel_uwsgi.check_signals`): every serving pid, server metrics once
    per interval (no duplicate, no interval missed from worker start through the load's end).

    ``window_s`` is how long the load ran: server metrics are required only if it lasted two intervals;
    ``window_ns`` its wall-clock start and end.
    """
    from otel_uwsgi import check_signals
    from otel_uwsgi.options import load

    settings = load({"otel-metrics-exporter": "otlp", "otel-metric-export-interval": str(opts.metric_interval)}, {})
    pids = {pid for pid, n in served.requests.items() if n}
    receiver.wait_until(lambda: {p.pid for p in receiver.points} >= pids, opts.settle)
    points = receiver.metric_points()
    signals = check_signals.evaluate_signals(points, receiver.log_records(), pids, settings=settings, window_s=window_s)
    name, wid = check_signals.REFERENCE
    times = [p.time_ns for p in points if p.name == name and p.attributes.get("uwsgi.worker.id") == wid]
    missed, longest = server_export_gaps(times, opts.metric_interval, window_ns if times else None)
    if missed:
        signals.problems.append(
            f"uWSGI server metrics skipped {missed} interval(s) of {opts.metric_interval} ms while uWSGI ran "
            f"(longest gap {longest}s, load window included): is worker 1 stuck, late or respawning?"
        )
    merged = check_signals.merge_into(report, signals)
    merged.signals.update({"server_missed_intervals": missed, "server_longest_gap_s": longest})
    if merged.ok:
        server = (
            f"uWSGI server metrics once per interval ({signals.server_exports} exports at {opts.metric_interval} ms, "
            f"0 duplicates, 0 missed, longest gap {longest}s)"
            if signals.server_exports
            else "no uWSGI server metrics (the load lasted less than two intervals)"
        )
        reason = f"{report.reason}; metrics from every worker pid ({len(signals.metric_points)} pids); {server}"
        merged = dataclasses.replace(merged, reason=reason)
    return merged


def summary(outcome: Outcome) -> str:
    info = outcome.info
    statuses = ", ".join(f"{n} x {code}" for code, n in info.get("statuses", {}).items()) or "-"
    return (
        f"app {info['url']}: responses {statuses}; {info.get('db_spans', 0)} DB spans; "
        f"{info.get('export_requests', 0)} OTLP export requests "
        f"(Content-Encoding: {', '.join(info.get('export_encodings', [])) or '-'}); "
        f"uWSGI stopped in {info.get('stop_seconds', '?')}s"
    )


def parse_args(argv: Optional[list[str]]) -> Options:
    d = Options()
    p = argparse.ArgumentParser(
        prog="python -m otel_uwsgi.check_remote",
        description="Drive a uWSGI app in another container, stop it through its master FIFO and "
        "verify every worker's server spans arrived (the Docker harness's checker).",
    )
    p.add_argument("--url", default=d.url, help=f"URL to request (default {d.url})")
    p.add_argument("--stats", default=d.stats, help=f"uWSGI stats server host:port (default {d.stats})")
    p.add_argument("--fifo", default=d.fifo, help=f"uWSGI master FIFO, on a shared volume (default {d.fifo})")
    p.add_argument("--listen", default=d.listen, help=f"OTLP/HTTP receiver address (default {d.listen})")
    p.add_argument("--requests", type=int, default=d.requests, help=f"minimum requests (default {d.requests})")
    p.add_argument("--workers", type=int, default=d.workers, help="expected workers (default: the stats server's list)")
    p.add_argument("--concurrency", type=int, default=d.concurrency, help="concurrent requests (default 2 x workers)")
    p.add_argument("--startup-timeout", type=float, default=d.startup_timeout, help="seconds for the app to come up")
    p.add_argument("--load-timeout", type=float, default=d.load_timeout, help="seconds of load at most")
    p.add_argument("--stop-timeout", type=float, default=d.stop_timeout, help="seconds for uWSGI to exit after 'q'")
    p.add_argument("--span-timeout", type=float, default=d.span_timeout, help="seconds to wait for the spans")
    p.add_argument(
        "--settle",
        type=float,
        default=d.settle,
        help="after uWSGI exited, stop waiting once no span arrived for this long",
    )
    p.add_argument(
        "--expect-db",
        metavar="SYSTEM",
        default=None,
        help="also require DB client spans of this db.system (e.g. mysql)",
    )
    p.add_argument(
        "--metric-interval",
        type=int,
        default=d.metric_interval,
        metavar="MS",
        help="the app exports metrics every MS ms (otel-metric-export-interval): also verify them",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON (progress stays on stderr)")
    args = p.parse_args(argv)
    return Options(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Options)})


def main(argv: Optional[list[str]] = None) -> int:
    opts = parse_args(argv)
    as_json = opts.json
    try:
        outcome = run(opts, progress=sys.stderr)
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            if as_json:
                print(json.dumps({"ok": False, "reason": exc.code}, indent=2))
            return 1
        raise
    if as_json:
        data = json.loads(outcome.report.to_json())
        data["checker"] = outcome.info
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(render(outcome.report))
        print(summary(outcome))
    sys.stdout.flush()
    return 0 if outcome.report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
