"""Brutal stops of busy workers (SIGINT, SIGTERM with die-on-term; to the master or the whole
process group) on real uWSGI: no crash, no wait until worker-reload-mercy, the stop ends in
uWSGI's ~1 s reaping, and every request uWSGI logged as answered has its server span.

A busy worker's brutal stop runs no Python: uWSGI's handler calls exit() and the worker is gone.
Every span it had ended is already in its span journal, and the master ships the journals of
dead workers at its exit (otel_uwsgi/runtime/master_exit.py); a request still in flight becomes
an ERROR span (``error.type = worker_died``).  Before the journal, a flush inside uWSGI's handler
crashed about 2 stops in 24, and the stop guard that replaced it lost spans with ``threads = N``.
"""

from __future__ import annotations

import os
import signal
import statistics
import time
from collections import Counter
from dataclasses import dataclass

import pytest

from otel_uwsgi.runtime import master_exit
from otel_uwsgi.tools.harness import free_port
from otel_uwsgi.tools.receiver import Fault, Receiver

from ..conftest import Server, wait_until
from .test_lifecycle_matrix import CRASH_RE, DIED, HUNG_RE, Load, spans_by_pid

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not master_exit.available(), reason="the master's exit handler (C) is not built here"),
]

PROBE = "tests.faults.apps.probe:application"
GROUP = "Busy-worker stops (span journal)"
MERCY = "10"


@dataclass
class Stop:
    seconds: float
    served: int
    spans: int
    lost: dict[int, tuple[int, int]]  # pid: (served, spans) where spans < served
    crashed: set[int]
    hung: set[int]
    busy: int  # workers busy when the signal was sent
    requests: dict[int, int]  # pid: requests uWSGI logged as answered
    died: int  # ERROR spans of the requests the stop cut (error.type worker_died)
    duplicates: int  # spans received more than once


def _busy_workers(marks) -> set[int]:
    return {int(p.name.split("-")[1]) for p in marks.glob("busy-*")}


def stop_busy(start_uwsgi, receiver, tmp_path, *, name: str, how: str, extra: dict[str, str], plans,
              workers: int = 2, wait_spans: float = 15.0, answered: int = 10,
              env: dict[str, str] | None = None) -> Stop:
    """Start uWSGI with the probe app, keep every worker busy, stop it with ``how`` (``int`` /
    ``term``: to the master; ``group-int`` / ``group-term``: to master and workers), and compare
    uWSGI's request log with the spans received, per pid."""
    marks = tmp_path / f"marks-{name}"
    marks.mkdir()
    options = {"module": PROBE, "otel-log-level": "debug", "worker-reload-mercy": MERCY, **extra}
    if how.endswith("term"):
        options["die-on-term"] = "true"
    server: Server = start_uwsgi("minimal.ini", workers=workers, extra=options,
                                 env={"OTEL_UWSGI_PROBE_DIR": str(marks), **(env or {})}, ready_path="/whoami")
    with Load(server, plans=[tuple(p) for p in plans]) as load:
        enough = lambda: load.completed(None) >= answered and len(_busy_workers(marks)) >= workers  # noqa: E731
        assert wait_until(enough, 30), server.uwsgi.log()[-3000:]
        busy = len(_busy_workers(marks))
        signum = signal.SIGTERM if how.endswith("term") else signal.SIGINT
        started = time.monotonic()
        if how.startswith("group"):
            os.killpg(server.uwsgi.pid, signum)
        else:
            server.uwsgi.send(signum)
        assert server.uwsgi.wait(30) is not None, "uWSGI did not stop within 30 s"
        seconds = time.monotonic() - started
    log = server.uwsgi.log()
    served = server.uwsgi.served()
    hung = {int(p) for p in HUNG_RE.findall(log)}
    crashed = {int(p) for p in CRASH_RE.findall(log)} | hung
    pids = set(served.requests)
    receiver.wait_for(lambda s: sum(x.kind == "SERVER" and x.pid in pids for x in s) >= served.total, wait_spans)
    got = spans_by_pid(receiver)
    lost = {pid: (n, got.get(pid, 0)) for pid, n in served.requests.items() if got.get(pid, 0) < n}
    return Stop(
        seconds=seconds,
        served=served.total,
        spans=sum(got.get(pid, 0) for pid in pids),
        lost=lost,
        crashed=crashed,
        hung=hung,
        busy=busy,
        requests=dict(served.requests),
        died=sum(s.kind == "SERVER" and s.attributes.get("error.type") in DIED and s.pid in served.spawned
                 for s in receiver.spans),
        duplicates=sum(n - 1 for n in Counter((s.trace_id, s.span_id) for s in receiver.spans).values()),
    )


# Each worker alternates between a request in the interpreter, one in a blocking call and a fast one.
MIXED = [("/spin?ms=400", "/slow?s=0.3", "/"), ("/slow?s=0.3", "/spin?ms=400", "/")] * 2


def _measured(rounds: list[Stop], extra: str = "") -> str:
    """The outcome sentence of a few checked stops: requests, spans, cut requests, stop times."""
    return (
        f"{len(rounds)} stops: {sum(r.served for r in rounds)} requests served, {sum(r.spans for r in rounds)} "
        f"server spans, 0 lost, 0 duplicates; {sum(r.died for r in rounds)} cut requests as ERROR spans; {extra}"
        "stop took " + ", ".join(f"{r.seconds:.2f}" for r in rounds) + " s"
    )


def _check(r: Stop) -> None:
    assert not r.crashed, f"crashed or hung: {r.crashed}"
    assert not r.lost, f"pid: (served, spans) {r.lost}"
    assert not r.duplicates, f"{r.duplicates} span(s) received twice"
    assert r.seconds < 3, f"stop took {r.seconds:.1f} s"


@pytest.mark.parametrize(
    "how, extra, case",
    [
        pytest.param("int", {}, "journal-sigint-busy", id="journal-sigint-busy"),
        pytest.param("term", {}, "journal-sigterm-die-on-term-busy", id="journal-sigterm-die-on-term-busy"),
        pytest.param("group-int", {"lazy-apps": "true"}, "journal-group-sigint-lazy-apps-busy",
                     id="journal-group-sigint-lazy-apps-busy"),
    ],
)
def test_busy_workers_stop_without_crash_or_loss(start_uwsgi, receiver, outcome, tmp_path, how, extra, case):
    """Every worker busy (in the interpreter or in a blocking call) when the stop signal comes:
    each exits at once, and every answered request's span arrives (lazy-apps: from the journals,
    shipped by the next start's workers or, here, by the stop of the same service's next run)."""
    rounds = [stop_busy(start_uwsgi, receiver, tmp_path, name=f"{case}-{i}", how=how, extra=extra, plans=MIXED)
              for i in range(3 if not extra else 1)]
    if extra:  # lazy-apps: no otel-uwsgi in the master; the next run of the service ships the journals
        rounds.append(stop_busy(start_uwsgi, receiver, tmp_path, name=f"{case}-next", how="int", extra={},
                                plans=MIXED))
        got = spans_by_pid(receiver)
        first = rounds[0]
        first.lost = {pid: (n, got.get(pid, 0)) for pid, n in first.requests.items() if got.get(pid, 0) < n}
        first.spans = sum(got.get(pid, 0) for pid in first.requests)
    for r in rounds:
        _check(r)
    served = sum(r.served for r in rounds)
    outcome(
        case,
        group=GROUP,
        expected=f"{how.replace('-', ' ').upper()} to uWSGI{' (lazy-apps)' if extra else ''} while every worker "
        "runs a request (Python loop or blocking call): no crash, stop in uWSGI's ~1 s reaping, every "
        "answered request has its span, nothing twice",
        measured=_measured(rounds),
        served=served,
    )


def test_busy_workers_with_threads_stop_without_loss(start_uwsgi, receiver, outcome, tmp_path):
    """threads = 4: every request thread's ended spans are in the journal the moment they end, so
    a brutal stop loses none of them (the stop guard lost some: only the main thread was parked)."""
    plans = [("/spin?ms=300", "/slow?s=0.3", "/")] * 6
    rounds = [stop_busy(start_uwsgi, receiver, tmp_path, name=f"threads-{i}", how=how, extra={"threads": "4"},
                        plans=plans) for i, how in enumerate(["int", "group-int", "term"])]
    for r in rounds:
        _check(r)
    served = sum(r.served for r in rounds)
    outcome(
        "journal-threads-busy",
        group=GROUP,
        expected="SIGINT, SIGINT to the group and SIGTERM with die-on-term, threads = 4, requests in flight: no "
        "crash or hang, 0 lost, nothing twice",
        measured=_measured(rounds),
        served=served,
    )


def test_stop_inside_a_long_c_call(start_uwsgi, receiver, outcome, tmp_path):
    """A worker inside one long C call that holds the GIL (``sum(range(N))``) exits at the signal
    like any other: uWSGI's handler runs no Python, so nothing waits for the interpreter."""
    plans = [("/", "/hold?n=3000000000")] * 2
    r = stop_busy(start_uwsgi, receiver, tmp_path, name="hold", how="int",
                  extra={"otel-exit-flush-timeout": "2000"}, plans=plans, wait_spans=5, answered=0)
    _check(r)
    outcome(
        "journal-long-c-call",
        group=GROUP,
        expected="SIGINT while every worker is inside one long C call holding the GIL: the stop ends in uWSGI's "
        "reaping, no wait until worker-reload-mercy, every answered request's span delivered",
        measured=f"stop took {r.seconds:.1f} s (worker-reload-mercy {MERCY} s); {r.served} requests served, "
        f"{r.spans} spans, 0 lost, {len(r.crashed)} crashed",
        seconds=round(r.seconds, 2),
    )


def test_fifty_brutal_stops_under_load(start_uwsgi, receiver, outcome, tmp_path):
    """52 brutal stops with requests in flight, cycling SIGINT to the master, SIGTERM with
    die-on-term, SIGINT and SIGTERM to the whole process group: 0 crashes, 0 hangs, 0 lost."""
    modes = ["int", "term", "group-int", "group-term"]
    rounds = [stop_busy(start_uwsgi, receiver, tmp_path, name=f"r{i}", how=modes[i % 4], extra={}, plans=MIXED)
              for i in range(52)]
    crashed = [r.crashed for r in rounds if r.crashed]
    lost = [r.lost for r in rounds if r.lost]
    seconds = sorted(r.seconds for r in rounds)
    served = sum(r.served for r in rounds)
    busy = sum(r.busy for r in rounds)
    assert not crashed, f"crashed or hung: {crashed}"
    assert not lost, f"rounds that lost spans, pid: (served, spans): {lost}"
    assert not any(r.duplicates for r in rounds)
    p90 = seconds[int(0.9 * (len(seconds) - 1))]
    outcome(
        "journal-fifty-brutal-stops",
        group=GROUP,
        expected="52 brutal stops under load (SIGINT / SIGTERM with die-on-term, to the master or the process "
        "group, 2 workers each busy in Python or a blocking call): 0 segfaults, 0 waits until "
        "worker-reload-mercy, every answered request's span delivered once",
        measured=f"{served} requests served, {sum(r.spans for r in rounds)} server spans, 0 lost, 0 duplicates; "
        f"{busy} busy worker stops, {sum(r.died for r in rounds)} cut requests as ERROR spans; 0 crashes, 0 hangs; "
        f"stop time min {seconds[0]:.2f} s, median {statistics.median(seconds):.2f} s, p90 {p90:.2f} s, "
        f"max {seconds[-1]:.2f} s",
        served=served,
        stops=len(rounds),
        min_s=round(seconds[0], 2),
        median_s=round(statistics.median(seconds), 2),
        p90_s=round(p90, 2),
        max_s=round(seconds[-1], 2),
    )


def test_a_stop_while_the_app_logs_through_the_root_logger(start_uwsgi, receiver, outcome, tmp_path):
    """Log export on and every request logging through the root logger (the handler the exit's log
    flush uses too): brutal stops of busy workers neither hang nor lose a span, and the logs arrive."""
    logs = {"otel-logs-exporter": "otlp", "otel-blrp-schedule-delay": "200"}
    rounds = [stop_busy(start_uwsgi, receiver, tmp_path, name=f"logging-{how}", how=how, extra=logs, plans=MIXED,
                        env={"OTEL_UWSGI_PROBE_LOG": "1"}) for how in ("int", "group-int", "term")]
    for r in rounds:
        _check(r)
    records = [r for r in receiver.log_records() if "probe request" in str(r.body)]
    assert records, "no log record of the app arrived"
    outcome(
        "journal-stop-while-logging",
        group=GROUP,
        expected="SIGINT, SIGINT to the group and SIGTERM with die-on-term while every request logs through the "
        "root logger with log export on: no hang or crash, stop in uWSGI's reaping, 0 spans lost",
        measured=_measured(rounds, f"{len(records)} log records received; "),
        served=sum(r.served for r in rounds),
    )


@pytest.mark.parametrize("collector", ["refused", "503"])
def test_a_stop_with_a_failing_collector_is_short_for_every_signal(start_uwsgi, receiver, outcome, tmp_path,
                                                                     collector):
    """Traces, metrics and logs all on, the collector refusing (nothing listens) or answering 503:
    every stop (SIGINT, SIGINT to the group, SIGTERM with die-on-term) ends within 2 s, as no
    exporter retries at exit."""
    signals = {"otel-metrics-exporter": "otlp", "otel-logs-exporter": "otlp", "otel-metric-export-interval": "1000",
               "otel-exit-flush-timeout": "5000"}
    with Receiver() as failing:
        if collector == "503":
            failing.fault = Fault(status=503)
            signals["otel-exporter-otlp-endpoint"] = failing.endpoint
        else:
            signals["otel-exporter-otlp-endpoint"] = f"http://127.0.0.1:{free_port()}"
        rounds = [stop_busy(start_uwsgi, receiver, tmp_path, name=f"{collector}-{how}", how=how, extra=signals,
                            plans=MIXED, wait_spans=0.1, env={"OTEL_UWSGI_PROBE_LOG": "1"})
                  for how in ("int", "group-int", "term")]
        # idle workers exit gracefully: each flushes traces, metrics and logs itself
        idle = start_uwsgi("minimal.ini", workers=2, extra={"module": PROBE, **signals},
                           env={"OTEL_UWSGI_PROBE_LOG": "1"}, ready_path="/whoami")
        idle.hammer("/", 20, concurrency=4)
        time.sleep(1.5)  # let a metrics export and a log batch fail first (the exporters then retry)
        started = time.monotonic()
        idle.uwsgi.send(signal.SIGINT)
        assert idle.uwsgi.wait(30) is not None
        idle_s = time.monotonic() - started
    for r in rounds:
        assert not r.crashed, r.crashed
        assert r.seconds < 2.0, f"stop took {r.seconds:.2f} s"
    assert idle_s < 2.0, f"idle stop took {idle_s:.2f} s"
    outcome(
        f"journal-stop-collector-{collector}",
        group=GROUP,
        expected=f"collector {collector} with traces, metrics and logs on (exit flush timeout 5 s): SIGINT, SIGINT to "
        "the group and SIGTERM with die-on-term with busy workers, and SIGINT with idle ones, each stop in under 2 s",
        measured="busy stops took " + ", ".join(f"{r.seconds:.2f}" for r in rounds)
        + f" s, the idle one {idle_s:.2f} s",
    )
