"""One run of the Docker checker (the steps in the package docstring)."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable
from typing import Any, Optional, TextIO
from urllib.parse import urlsplit

from otel_uwsgi.metrics.stats_server import StatsError, read_stats_server
from otel_uwsgi.semconv.attributes import WORKER_ID
from otel_uwsgi.tools.docker_check.uwsgi_remote import parse_hostport, send_fifo, served_from_stats, worker_count
from otel_uwsgi.tools.harness import Served
from otel_uwsgi.tools.load import Load, http_get, load_until_covered
from otel_uwsgi.tools.receiver import ReceivedSpan, Receiver
from otel_uwsgi.tools.verdict import Report, db_spans, evaluate, extra_problems, merge

DEFAULT_URL = "http://app:8000/"
DEFAULT_STATS = "app:9191"
DEFAULT_FIFO = "/run/otel-uwsgi/master.fifo"
DEFAULT_LISTEN = "0.0.0.0:4318"


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
    target = Target.from_options(opts)
    listen_host, listen_port = parse_hostport(opts.listen, 4318)

    # -- 1. the OTLP/HTTP receiver (steps 2-6: _Check)
    receiver = Receiver(host=listen_host, port=listen_port).start()
    say(f"OTLP/HTTP receiver listening on {listen_host}:{receiver.port}", force=True)
    info: dict[str, Any] = {"url": opts.url, "stats": target.stats, "fifo": opts.fifo}
    try:
        return _Check(opts, target, receiver, say, info).run()
    finally:
        receiver.stop()


@dataclasses.dataclass(frozen=True)
class Target:
    """The app under check: where the load goes (``--url``) and where uWSGI's stats server answers."""

    url: str
    host: str
    port: int
    path: str  # with the query, as sent on the request line
    stats_host: str
    stats_port: int

    @classmethod
    def from_options(cls, opts: Options) -> Target:
        url = urlsplit(opts.url)
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        stats_host, stats_port = parse_hostport(opts.stats, 9191)
        return cls(opts.url, url.hostname or "app", url.port or 80, path, stats_host, stats_port)

    @property
    def stats(self) -> str:
        return f"{self.stats_host}:{self.stats_port}"


@dataclasses.dataclass
class _Check:
    """Steps 2-6 of the package docstring, one method each, and what they share: the last stats read
    and the last error, quoted when a wait gives up; ``info`` collects the checker's numbers."""

    opts: Options
    target: Target
    receiver: Receiver
    say: _Progress
    info: dict[str, Any]
    last_stats: dict[str, Any] = dataclasses.field(default_factory=dict)
    last_error: str = ""

    def run(self) -> Outcome:
        started = time.monotonic()
        expected = self.wait_for_workers()
        warmup = self.wait_for_app(started)
        load, load_window_ns = self.load_every_worker(expected)
        served = self.final_counts(load, warmup)
        fifo_error = self.stop_through_fifo()
        stopped = self.wait_for_exit(fifo_error)
        spans = self.wait_for_spans(served.total, stopped)
        # -- 6. the verdict (__main__ prints it)
        report = evaluate(served, spans, expected)
        report = merge(
            report,
            extra_problems(
                served,
                spans,
                load_errors=load.errors,
                stopped=stopped,
                fifo_error=fifo_error,
                expect_db=self.opts.expect_db,
            ),
        )
        if self.opts.metric_interval:
            report = _with_signals(report, self.receiver, served, self.opts, self.info["load_seconds"], load_window_ns)
        self.info.update(
            {
                "statuses": {str(k): v for k, v in sorted(served.statuses.items())},
                "load_errors": load.errors,
                "db_spans": len(db_spans(spans)),
                "export_requests": self.receiver.stats.requests,
                "export_encodings": sorted(self.receiver.stats.encodings),
                "uwsgi_stopped": stopped,
            }
        )
        return Outcome(report=report, served=served, info=self.info)

    def poll_stats(self) -> Optional[dict[str, Any]]:
        try:
            self.last_stats = read_stats_server(self.target.stats, timeout=5.0)
            return self.last_stats
        except (OSError, StatsError) as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            return None

    # -- 2. readiness: every worker has a pid, the app answers 2xx/3xx
    def wait_for_workers(self) -> int:
        """Wait until the stats server lists every worker with a pid; return how many are expected."""

        def workers_up() -> bool:
            stats = self.poll_stats()
            if stats is None:
                return False
            want = self.opts.workers or worker_count(stats)
            return want > 0 and len(served_from_stats(stats).spawned) >= want

        stats = self.target.stats
        ok = _wait(
            workers_up,
            self.opts.startup_timeout,
            lambda: self.say(f"waiting for uWSGI stats at {stats} ({self.last_error or 'workers starting'})"),
        )
        if not ok:
            last = self.last_error or json.dumps(self.last_stats)[:200]
            raise SystemExit(
                f"checker: FAIL: uWSGI's stats server at {stats} did not list the workers "
                f"within {self.opts.startup_timeout:.0f}s (last: {last})"
            )
        expected = self.opts.workers or worker_count(self.last_stats)
        pids = sorted(served_from_stats(self.last_stats).spawned)
        self.say(f"uWSGI is up: {expected} workers, pids {pids}", force=True)
        return expected

    def wait_for_app(self, started: float) -> dict[int, int]:
        """Wait (within what is left of the startup timeout) until the app answers 2xx/3xx; return the
        statuses seen on the way (the load's responses are counted apart from them)."""
        warmup: dict[int, int] = {}
        target = self.target

        def app_answers() -> bool:
            try:
                status = http_get(target.host, target.port, target.path, timeout=10)
            except OSError as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                return False
            warmup[status] = warmup.get(status, 0) + 1
            self.last_error = f"HTTP {status}"
            return 200 <= status < 400

        remaining = max(5.0, self.opts.startup_timeout - (time.monotonic() - started))
        answered = _wait(app_answers, remaining, lambda: self.say(f"waiting for {target.url} ({self.last_error})"), 0.5)
        if not answered:
            raise SystemExit(
                f"checker: FAIL: {target.url} did not answer 2xx within the startup timeout (last: {self.last_error})"
            )
        self.info["warmup_statuses"] = warmup
        return warmup

    # -- 3. load until every worker served and enough requests
    def load_every_worker(self, expected: int) -> tuple[Load, tuple[int, int]]:
        """Send concurrent requests until every worker served one and ``--requests`` were served; return
        the stopped load and its wall-clock window (metric points carry wall-clock times)."""
        opts, target, receiver, say = self.opts, self.target, self.receiver, self.say
        concurrency = opts.concurrency or max(2, expected * 2)
        say(
            f"sending requests to {opts.url} ({concurrency} concurrent) until all {expected} workers "
            f"served and >= {opts.requests} requests",
            force=True,
        )
        # With metrics, the load lasts at least three intervals, so uWSGI's server metrics are required
        # (metrics_verdict wants them when the load lasted two) and their export rhythm can be judged.
        min_load = 3 * opts.metric_interval / 1000
        t0, load_start_ns = time.monotonic(), time.time_ns()

        def read_served() -> Optional[Served]:
            stats = self.poll_stats()
            return served_from_stats(stats) if stats is not None else None

        with Load(target.host, target.port, target.path, concurrency) as load:
            load_until_covered(
                read_served,
                workers=expected,
                requests=opts.requests,
                deadline=t0 + opts.load_timeout,
                also=lambda: time.monotonic() - t0 >= min_load,
                progress=lambda served, done: say(
                    f"load: {len(served.covered)}/{expected} workers served, {served.total} requests, "
                    f"{len(receiver.server_spans())} server spans received",
                    force=done,
                ),
                step=0.2,
            )
        self.info["load_seconds"] = round(time.monotonic() - t0, 1)
        load_window_ns = (load_start_ns, time.time_ns())  # points carry wall-clock times (same kernel clock)
        if load.errors:
            self.info["load_last_error"] = load.last_error
        return load, load_window_ns

    # -- 3. final counts: poll until uWSGI counted every completed response and the numbers hold still
    def final_counts(self, load: Load, warmup: dict[int, int]) -> Served:
        """uWSGI's per-worker counts once they cover every response seen here and hold still (5 s at
        most), with the load's statuses."""
        completed = load.completed + sum(warmup.values())
        final: Optional[dict[str, Any]] = None
        prev = -1
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            stats = self.poll_stats()
            if stats is not None:
                total = served_from_stats(stats).total
                final = stats
                if total >= completed and total == prev:
                    break
                prev = total
            time.sleep(0.2)
        if final is None:
            final = self.last_stats
        # Statuses of the load only: the readiness probe may have seen the app's first errors.
        served = served_from_stats(final, dict(load.statuses))
        self.say(f"load stopped: {served.total} requests served by uWSGI ({completed} responses seen here)", force=True)
        return served

    # -- 4. graceful shutdown through the master FIFO
    def stop_through_fifo(self) -> Optional[str]:
        """Write ``q`` to the master FIFO; return why it could not be written, or None."""
        try:
            send_fifo(self.opts.fifo, b"q")
            self.say(f"wrote 'q' to {self.opts.fifo}: graceful shutdown, workers flush their spans", force=True)
        except OSError as exc:
            self.say(f"could not write to {self.opts.fifo}: {exc}", force=True)
            return str(exc)
        return None

    # -- 5. wait until uWSGI is gone, then for the spans
    def wait_for_exit(self, fifo_error: Optional[str]) -> bool:
        """Wait until the stats server stops answering (not at all when the FIFO write failed)."""
        t_stop = time.monotonic()
        stopped = _wait(
            lambda: self.poll_stats() is None,
            self.opts.stop_timeout if not fifo_error else 0,
            lambda: self.say(f"waiting for uWSGI to exit; {len(self.receiver.server_spans())} server spans received"),
        )
        self.info["stop_seconds"] = round(time.monotonic() - t_stop, 1)
        if stopped:
            self.say(f"uWSGI stopped after {self.info['stop_seconds']}s", force=True)
        return stopped

    def wait_for_spans(self, want: int, stopped: bool) -> list[ReceivedSpan]:
        """Wait until ``want`` server spans arrived, or (uWSGI gone) none arrived for ``--settle`` seconds;
        return every span received."""
        receiver = self.receiver
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
            return stopped and time.monotonic() - last_change >= self.opts.settle

        _wait(
            enough,
            self.opts.span_timeout,
            lambda: self.say(f"waiting for spans: {len(receiver.server_spans())}/{want} server spans"),
        )
        self.info["span_wait_seconds"] = round(time.monotonic() - t_spans, 1)
        spans = receiver.snapshot()
        self.say(f"{sum(1 for s in spans if s.kind == 'SERVER')}/{want} server spans received", force=True)
        return spans


def _with_signals(
    report: Report,
    receiver: Receiver,
    served: Served,
    opts: Options,
    window_s: float,
    window_ns: Optional[tuple[int, int]] = None,
) -> Report:
    """Add the metrics verdict (:mod:`otel_uwsgi.tools.metrics_verdict`): every serving pid, server metrics once
    per interval (no duplicate, no interval missed from worker start through the load's end).

    ``window_s`` is how long the load ran: server metrics are required only if it lasted two intervals;
    ``window_ns`` its wall-clock start and end.
    """
    from otel_uwsgi.config.settings import load
    from otel_uwsgi.tools import metrics_verdict

    settings = load({"otel-metrics-exporter": "otlp", "otel-metric-export-interval": str(opts.metric_interval)}, {})
    pids = {pid for pid, n in served.requests.items() if n}
    receiver.wait_until(lambda: {p.pid for p in receiver.points} >= pids, opts.settle)
    points = receiver.metric_points()
    signals = metrics_verdict.evaluate_signals(
        points, receiver.log_records(), pids, settings=settings, window_s=window_s
    )
    name, wid = metrics_verdict.REFERENCE
    times = [p.time_ns for p in points if p.name == name and p.attributes.get(WORKER_ID) == wid]
    missed, longest = metrics_verdict.server_export_gaps(times, opts.metric_interval, window_ns if times else None)
    if missed:
        signals.problems.append(
            f"uWSGI server metrics skipped {missed} interval(s) of {opts.metric_interval} ms while uWSGI ran "
            f"(longest gap {longest}s, load window included): is worker 1 stuck, late or respawning?"
        )
    merged = metrics_verdict.merge_into(report, signals)
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
