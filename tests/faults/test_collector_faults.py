"""A sick collector must never hurt the application, and must not lose spans silently.

Each case runs the demo Django site on MariaDB (``/db10``: a server span and ten DB spans per
request) under uWSGI with 4 workers at a steady request rate, exporting to the real receiver
playing a collector that refuses, answers 503 / 429 (Retry-After) / 400, hangs, answers very
slowly, or is down and comes back.  Beside it, at the same time and the same rate, runs a *twin*:
the same site exporting to a healthy receiver.  On a shared 2-core machine latency drifts by
several times within a minute, so the healthy reference is measured in the same seconds as the
case rather than once per session (the `collector-healthy` case is healthy vs healthy twin: the
noise floor).  Then the case's server reloads its workers (SIGHUP) and shuts down (SIGINT).

Checked per case:

* request latency p50 / p99 within a margin of the twin's; worker CPU per request recorded;
* worker memory (VmRSS before and after the load) and the queue bound (``pending`` from
  ``/whoami`` never above ``otel-bsp-max-queue-size`` + one batch in flight);
* old workers gone after SIGHUP, and the shutdown, within ``otel-exit-flush-timeout`` + uWSGI's
  reaping (it looks for dead workers about once a second);
* the books balance per worker pid: spans ended (from uWSGI's request log: the spans each request
  makes) = spans the receiver got from that pid + spans the pid's exit summary reports as not
  delivered; the summary's "of E" agrees; a pid that dropped spans said so in one rate-limited
  warning; the SDK's per-span "Queue full" flood is muted.
"""

from __future__ import annotations

import collections
import re
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pytest

from otel_uwsgi.tools.harness import free_port
from otel_uwsgi.tools.receiver import Fault, Receiver

from ..conftest import Server, wait_until
from ._load import Latencies, SteadyLoad

pytestmark = pytest.mark.integration

INI = "django-mysql.ini"
FLUSH_MS = 2000
QUEUE = 256  # the fault cases overflow it many times over (~1300 spans per server in the load window)
BATCH = 32
LOAD_PATH = "/db10"
RATE = 40.0  # requests per second of LOAD_PATH, to the case's server and to its twin each
SECONDS = 3.0
#: Spans one request makes: the server span plus one per query.
SPANS_PER_REQUEST = {"/db10": 11, "/whoami": 1}
OPTIONS = {
    "otel-bsp-max-queue-size": str(QUEUE),
    "otel-bsp-max-export-batch-size": str(BATCH),
    "otel-bsp-schedule-delay": "200",
    "otel-exporter-otlp-timeout": "2",
    "otel-exit-flush-timeout": str(FLUSH_MS),
    "worker-reload-mercy": "8",
}
#: Latency margins against the twin: wide enough for a noisy shared machine, yet an export in
#: the request path (a 1-2 s stall per request batch) fails them by far.
P50_FACTOR, P50_SLACK_MS = 1.5, 5.0
P99_FACTOR, P99_SLACK_MS = 2.0, 25.0
#: VmRSS growth of one worker during the load: the queue holds at most QUEUE spans (~1 MB).
RSS_GROWTH_LIMIT_KB = 16 * 1024
#: A stop may take the flush timeout longer than the healthy twin's stop at the same moment, plus
#: this: uWSGI looks for dead workers about once a second.
STOP_MARGIN_S = 2.0
#: With a collector known to be down a stop spends no flush timeout: it takes the twin's time, plus
#: at most one of uWSGI's reaping ticks (about a second), well under the twin's + FLUSH_MS.
KNOWN_DEAD_SLACK_S = 1.5

_SUMMARY_RE = re.compile(
    r"otel-uwsgi: WARNING: pid (\d+) exiting: (\d+) of (\d+) span\(s\) were not delivered "
    r"\(queue full: (\d+), export failed: (\d+), still queued at exit: (\d+)\)"
)
_WARNING_RE = re.compile(r"otel-uwsgi: WARNING: pid (\d+) dropped (\d+) span\(s\) since the last report, (\d+) in all")
_REQUEST_RE = re.compile(r"otel-uwsgi-req pid=(\d+) wid=\d+ status=\d+ uri=(\S+)")


@dataclass(frozen=True)
class Summary:
    """One pid's exit summary line."""

    dropped: int
    ended: int
    queue_full: int
    export_failed: int
    exit_timeout: int


@dataclass
class Side:
    """One server's measurements: the case's, or its healthy twin's."""

    server: Server
    receiver: Optional[Receiver]
    workers: list[int] = field(default_factory=list)
    rss_kb: dict[int, int] = field(default_factory=dict)  # growth during the load
    cpu_ticks: dict[int, int] = field(default_factory=dict)  # utime + stime during the load
    load: Optional[SteadyLoad] = None
    log: str = ""
    served: dict[int, collections.Counter] = field(default_factory=dict)
    received: dict[int, int] = field(default_factory=dict)
    summaries: dict[int, Summary] = field(default_factory=dict)
    warnings: dict[int, int] = field(default_factory=dict)
    reload_exit_s: float = 0.0  # SIGHUP until every old worker exited
    reload_ready_s: float = 0.0  # SIGHUP until new workers answer
    shutdown_s: float = 0.0  # SIGINT until the master exited

    @property
    def latency(self) -> Latencies:
        assert self.load is not None
        return self.load.result

    @property
    def max_pending(self) -> int:
        samples = self.load.samples if self.load else []
        return max((s["delivery"].get("pending", 0) for s in samples if s.get("delivery")), default=0)

    @property
    def cpu_ms_per_request(self) -> float:
        return sum(self.cpu_ticks.values()) * 1000 / _HZ / max(1, len(self.latency.ms))

    def ended(self, pid: int, init_spans: int) -> int:
        """Spans ``pid`` ended, from the requests it served (plus those of its DB connect)."""
        uris = self.served.get(pid, collections.Counter())
        return sum(SPANS_PER_REQUEST[u] * n for u, n in uris.items()) + (init_spans if uris[LOAD_PATH] else 0)

    @property
    def pids(self) -> list[int]:
        return sorted(self.served)

    def dropped(self, pid: int) -> int:
        s = self.summaries.get(pid)
        return s.dropped if s else 0

    def left(self, pid: int) -> int:
        """Spans ``pid`` left unsent in its span journal at exit (counted in its summary as still queued)."""
        s = self.summaries.get(pid)
        return s.exit_timeout if s else 0

    def total(self, name: str) -> int:
        return sum(getattr(s, name) for s in self.summaries.values())

    def read_books(self) -> None:
        self.log = log = self.server.uwsgi.log()
        self.served = {}
        for pid, uri in _REQUEST_RE.findall(log):
            self.served.setdefault(int(pid), collections.Counter())[uri.split("?")[0]] += 1
        self.summaries = {int(m.group(1)): Summary(*map(int, m.groups()[1:])) for m in _SUMMARY_RE.finditer(log)}
        self.warnings = dict(collections.Counter(int(m.group(1)) for m in _WARNING_RE.finditer(log)))
        self.received = dict(collections.Counter(s.pid for s in self.receiver.snapshot())) if self.receiver else {}


@dataclass
class Run:
    """What one case measured."""

    case: Side
    twin: Side
    init_spans: int = 0


_HZ = 100  # USER_HZ: /proc/PID/stat counts CPU time in these ticks on Linux


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def _gone(pid: int) -> bool:
    """The process exited (reaped, or a zombie waiting for its master)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def _live_workers(server: Server) -> list[int]:
    return [pid for pid in server.uwsgi.served().spawned if not _gone(pid)]


def _answers(server: Server) -> bool:
    try:
        return server.get("/whoami", timeout=5)[0] == 200
    except OSError:
        return False


def _ready(server: Server) -> None:
    assert server.uwsgi.wait_workers(server.workers, 30), server.uwsgi.log()[-3000:]
    assert wait_until(lambda: _answers(server), 30), server.uwsgi.log()[-3000:]


def _logged(server: Server, pids: Optional[set[int]] = None) -> int:
    """Requests in uWSGI's request log (of ``pids`` only, if given)."""
    requests = server.uwsgi.served().requests
    return sum(n for pid, n in requests.items() if pids is None or pid in pids)


def exercise(
    start_uwsgi: Callable[..., Server],
    endpoint: str,
    receiver: Optional[Receiver],
    twin_receiver: Receiver,
    options: Optional[dict[str, str]] = None,
    after_load: Callable[[], Optional[Receiver]] = lambda: None,
    on_workers: Callable[[list[int]], None] = lambda pids: None,
) -> Run:
    """Steady load on the case's server and its twin at once; then the case's server reloads
    (SIGHUP), serves a few requests with its new workers, and shuts down (SIGINT)."""
    twin_server = start_uwsgi(INI, extra={**OPTIONS, "otel-exporter-otlp-endpoint": twin_receiver.endpoint}, wait=False)
    server = start_uwsgi(INI, extra={**OPTIONS, **(options or {}), "otel-exporter-otlp-endpoint": endpoint}, wait=False)
    case, twin = Side(server, receiver), Side(twin_server, twin_receiver)
    for side in (twin, case):
        _ready(side.server)
        side.server.until_every_worker_served(LOAD_PATH)
        side.workers = _live_workers(side.server)
        assert len(side.workers) == side.server.workers, side.server.uwsgi.log()[-2000:]
    on_workers(case.workers)
    for side in (twin, case):
        side.rss_kb = {pid: _rss_kb(pid) for pid in side.workers}
        side.cpu_ticks = {pid: _cpu_ticks(pid) for pid in side.workers}
        side.load = SteadyLoad(side.server.port, LOAD_PATH, RATE).start()
    time.sleep(SECONDS)  # the load runs meanwhile: this is its duration, not a wait for a result
    for side in (twin, case):
        assert side.load is not None
        side.load.finish()
        side.rss_kb = {pid: _rss_kb(pid) - kb for pid, kb in side.rss_kb.items()}
        side.cpu_ticks = {pid: _cpu_ticks(pid) - t for pid, t in side.cpu_ticks.items()}
    case.receiver = after_load() or case.receiver
    run = Run(case, twin)
    sides = {"case": case, "twin": twin}

    # Both reload at once, so the twin's exit (Python teardown with Django loaded: ~1 s of CPU
    # on this machine) is the reference for the case's exit under the same conditions.
    started = time.monotonic()
    for side in sides.values():
        side.server.uwsgi.send(signal.SIGHUP)
    gone = _clock(started, {k: _all_gone(side.workers) for k, side in sides.items()}, FLUSH_MS / 1000 + 20)
    answered = {k: 0 for k in sides}

    def serving_again(key: str) -> Callable[[], bool]:
        server = sides[key].server

        def check() -> bool:
            if len(_live_workers(server)) < server.workers:
                return False
            ok = _answers(server)
            answered[key] += ok
            return ok

        return check

    ready = _clock(started, {k: serving_again(k) for k in sides}, FLUSH_MS / 1000 + 30)
    answered["case"] += len(server.hammer(LOAD_PATH, 40, concurrency=8))
    # uWSGI logs a request just after answering it; a SIGINT in between would lose the line.
    for key, side in sides.items():
        _wait_logged(side, answered[key])

    started = time.monotonic()
    for side in sides.values():
        side.server.uwsgi.send(signal.SIGINT)
    stopped = _clock(started, {k: _stopped(side.server) for k, side in sides.items()}, FLUSH_MS / 1000 + 20)
    for key, side in sides.items():
        side.reload_exit_s, side.reload_ready_s, side.shutdown_s = gone[key], ready[key], stopped[key]
        side.read_books()
    run.init_spans = _init_spans(twin)
    return run


def _wait_logged(side: Side, answered: int) -> None:
    """Wait until uWSGI logged the ``answered`` requests of the workers started by the reload."""
    new = set(_live_workers(side.server)) - set(side.workers)
    assert wait_until(lambda: _logged(side.server, new) >= answered, 10), (answered, _logged(side.server, new))


def _all_gone(pids: list[int]) -> Callable[[], bool]:
    return lambda: all(_gone(pid) for pid in pids)


def _stopped(server: Server) -> Callable[[], bool]:
    return lambda: not server.uwsgi.alive()


def _clock(started: float, events: dict[str, Callable[[], bool]], timeout: float) -> dict[str, float]:
    """Seconds from ``started`` until each event's predicate first held (polled every 20 ms)."""
    seen: dict[str, float] = {}

    def all_seen() -> bool:
        for key, happened in events.items():
            if key not in seen and happened():
                seen[key] = time.monotonic() - started
        return len(seen) == len(events)

    wait_until(all_seen, started + timeout - time.monotonic(), 0.02)
    assert len(seen) == len(events), f"not within {timeout} s: {sorted(set(events) - set(seen))}"
    return seen


def _init_spans(twin: Side) -> int:
    """DB spans a worker makes once, when Django's MySQL backend opens its connection (measured on
    the healthy twin, where every span arrives: received minus what the requests make)."""
    extra = {pid: twin.received.get(pid, 0) - twin.ended(pid, 0) for pid in twin.served if twin.served[pid][LOAD_PATH]}
    values = set(extra.values())
    assert len(values) == 1, f"healthy twin: spans beyond the requests' own differ between workers: {extra}"
    init = values.pop()
    assert 0 <= init <= 5, f"healthy twin: {init} spans per worker beyond the requests' own"
    return init


def check_books(side: Side, init_spans: int, in_flight_slack: int = 0) -> None:
    """Per pid: ended == received + reported not delivered, i.e. nothing lost silently.

    ``in_flight_slack``: a batch in flight when the exit deadline passes is counted as not
    delivered, yet a slow collector may still accept it, so the books may overstate the loss by
    at most that many spans per pid; never understate it.  Spans left in the span journal at exit
    are counted as not delivered too, and may arrive later (shipped by a successor).
    """

    def off() -> dict[int, tuple[int, int, int]]:
        side.received = dict(collections.Counter(s.pid for s in side.receiver.snapshot())) if side.receiver else {}
        books = {pid: (side.ended(pid, init_spans), side.received.get(pid, 0), side.dropped(pid)) for pid in side.pids}
        # What a worker's exit flush could not send stays in its span journal and is counted as not
        # delivered by it; a successor (after a reload) ships it later: overstated by at most that.
        return {pid: b for pid, b in books.items() if not 0 <= b[1] + b[2] - b[0] <= in_flight_slack + side.left(pid)}

    # A slow collector may still be storing a batch whose worker has already given up on it.
    wait_until(lambda: not off(), 5)
    unbalanced = off()
    assert not unbalanced, (
        f"pid: (ended, received, reported not delivered) do not balance: {unbalanced}\n"
        f"{side.server.uwsgi.log_path}:\n{side.log[-3000:]}"
    )
    for pid, summary in side.summaries.items():
        assert summary.ended == side.ended(pid, init_spans), (pid, summary, side.served.get(pid))
        assert summary.dropped == summary.queue_full + summary.export_failed + summary.exit_timeout
        assert side.warnings.get(pid, 0) >= 1, f"pid {pid} dropped {summary.dropped} span(s) without a warning"
    for pid, n in side.warnings.items():
        assert n <= 1, f"pid {pid}: {n} drop warnings, expected at most one a minute"
    assert "Queue full" not in side.log, "the SDK's per-span queue-full warning is not muted"


def check_application_unharmed(run: Run) -> None:
    """Latency within the margins of the twin's, memory and queue bounded, stops bounded."""
    lat, ref = run.case.latency, run.twin.latency
    for side in (run.case, run.twin):
        assert side.latency.errors == 0 and set(side.latency.statuses) == {200}, side.latency.statuses
    # Throughput too: on a busy machine neither may keep the rate, but the case keeps up with the twin.
    assert len(lat.ms) >= 0.75 * len(ref.ms), f"{len(lat.ms)} requests served, healthy twin {len(ref.ms)}"
    assert lat.p50 <= ref.p50 * P50_FACTOR + P50_SLACK_MS, f"p50 {lat.p50:.1f} ms vs healthy {ref.p50:.1f} ms"
    assert lat.p99 <= ref.p99 * P99_FACTOR + P99_SLACK_MS, f"p99 {lat.p99:.1f} ms vs healthy {ref.p99:.1f} ms"
    assert max(run.case.rss_kb.values()) <= RSS_GROWTH_LIMIT_KB, run.case.rss_kb
    assert run.case.load is not None and run.case.load.samples, "no /whoami sample during the load"
    assert run.case.max_pending <= QUEUE + BATCH, f"{run.case.max_pending} spans pending, queue is {QUEUE}"
    for what in ("reload_exit_s", "reload_ready_s", "shutdown_s"):
        took, healthy = getattr(run.case, what), getattr(run.twin, what)
        limit = healthy + FLUSH_MS / 1000 + STOP_MARGIN_S
        assert took <= limit, f"{what}: {took:.1f} s, healthy twin {healthy:.1f} s (limit {limit:.1f} s)"


def measured(run: Run, collector_requests: int) -> tuple[str, dict[str, Any]]:
    """One sentence with this run's numbers, and the numbers themselves."""
    case, twin = run.case, run.twin
    lat, ref = case.latency, twin.latency
    n: dict[str, Any] = {
        "requests": len(lat.ms),
        "p50_ms": round(lat.p50, 1),
        "p99_ms": round(lat.p99, 1),
        "healthy_p50_ms": round(ref.p50, 1),
        "healthy_p99_ms": round(ref.p99, 1),
        "p50_ratio": round(lat.p50 / ref.p50, 2),
        "p99_ratio": round(lat.p99 / ref.p99, 2),
        "cpu_ms_per_request": round(case.cpu_ms_per_request, 2),
        "healthy_cpu_ms_per_request": round(twin.cpu_ms_per_request, 2),
        "max_rss_growth_kb": max(case.rss_kb.values()),
        "max_pending": case.max_pending,
        "reload_exit_s": round(case.reload_exit_s, 2),
        "reload_ready_s": round(case.reload_ready_s, 2),
        "shutdown_s": round(case.shutdown_s, 2),
        "healthy_reload_exit_s": round(twin.reload_exit_s, 2),
        "healthy_shutdown_s": round(twin.shutdown_s, 2),
        "ended": sum(case.ended(pid, run.init_spans) for pid in case.served),
        "received": sum(case.received.get(pid, 0) for pid in case.served),
        "not_delivered": case.total("dropped"),
        "queue_full": case.total("queue_full"),
        "export_failed": case.total("export_failed"),
        "exit_timeout": case.total("exit_timeout"),
        "collector_requests": collector_requests,
    }
    text = (
        f"{n['requests']} requests at {RATE:.0f}/s: p50 {lat.p50:.1f} ms, p99 {lat.p99:.1f} ms "
        f"(healthy twin {ref.p50:.1f} / {ref.p99:.1f} ms: x{n['p50_ratio']} / x{n['p99_ratio']}), "
        f"worker CPU {n['cpu_ms_per_request']} ms/request (twin {n['healthy_cpu_ms_per_request']}); "
        f"worker RSS {n['max_rss_growth_kb'] / 1024:+.1f} MB at most, at most {n['max_pending']} spans pending "
        f"(queue {QUEUE} + batch {BATCH}); old workers gone {case.reload_exit_s:.1f} s after SIGHUP "
        f"(twin {twin.reload_exit_s:.1f} s; serving again at {case.reload_ready_s:.1f} s), shutdown "
        f"{case.shutdown_s:.1f} s (twin {twin.shutdown_s:.1f} s; flush timeout {FLUSH_MS / 1000:.0f} s); "
        f"of {n['ended']} spans ended, {n['received']} received and "
        f"{n['not_delivered']} reported not delivered (queue full {n['queue_full']}, export failed "
        f"{n['export_failed']}, at exit {n['exit_timeout']})."
    )
    return text, n


@pytest.fixture
def case_receiver() -> Iterator[Receiver]:
    """The case's collector (the ``receiver`` fixture is the twin's healthy one)."""
    with Receiver() as r:
        yield r


@dataclass(frozen=True)
class Collector:
    """How the case's collector behaves (``fault`` None: nothing listens on its port)."""

    fault: Optional[Fault]
    expected: str
    must_drop: tuple[str, ...] = ()  # reasons that must have counted spans
    in_flight_slack: int = 0
    known_dead: bool = False  # it fails every export: a stop must not wait out the flush timeout


def _param(
    *,
    case: str,
    fault: Optional[Fault],
    expected: str,
    must_drop: tuple[str, ...] = (),
    slack: int = 0,
    known_dead: bool = False,
) -> Any:
    return pytest.param(Collector(fault, expected, must_drop, slack, known_dead), id=case)


COLLECTORS = [
    _param(
        case="collector-healthy",
        fault=Fault(),
        expected="Reference (healthy vs healthy twin: the noise floor of the latency ratios): every span delivered.",
    ),
    _param(
        case="collector-refused",
        fault=None,
        expected="Connection refused: each batch retried within otel-exporter-otlp-timeout, then counted as export "
        "failed; a full queue counts what it pushes out; requests unaffected; a stop makes one short flush "
        "attempt (as long as the healthy twin's stop, no flush timeout spent), the queue counted as lost.",
        must_drop=("export_failed",),
        known_dead=True,
    ),
    _param(
        case="collector-503",
        fault=Fault(status=503),
        expected="503: retried with backoff within otel-exporter-otlp-timeout, then counted as export failed; "
        "requests unaffected; a stop makes one short flush attempt (as long as the healthy twin's stop, no "
        "flush timeout spent), the queue counted as lost.",
        must_drop=("export_failed",),
        known_dead=True,
    ),
    _param(
        case="collector-429",
        fault=Fault(status=429, retry_after=1),
        expected="429 with Retry-After: 1: retried after the delay the collector asks for, within "
        "otel-exporter-otlp-timeout, then counted as export failed; requests unaffected.",
        must_drop=("export_failed",),
    ),
    _param(
        case="collector-400",
        fault=Fault(status=400),
        expected="400 (not retryable): each batch dropped at once and counted as export failed; requests unaffected.",
        must_drop=("export_failed",),
    ),
    _param(
        case="collector-hanging",
        fault=Fault(hang=True),
        expected="Accepts, never answers: each export blocks the export thread (not requests) for "
        "otel-exporter-otlp-timeout, then counts as export failed; the full queue counts what it pushes out; "
        "the exit flush gives up at otel-exit-flush-timeout and counts what was left.",
        must_drop=("export_failed", "queue_full"),
    ),
    _param(
        case="collector-very-slow",
        fault=Fault(delay=1.0),
        expected="1 s per answer (below otel-exporter-otlp-timeout): exports succeed slowly, the full queue counts "
        "what it pushes out, the exit flush stops at otel-exit-flush-timeout and counts what it left (a batch in "
        "flight then may still arrive: the count may overstate the loss by one batch, never understate it).",
        must_drop=("queue_full",),
        slack=BATCH,
    ),
]


@pytest.mark.parametrize("collector", COLLECTORS)
def test_collector(start_uwsgi, receiver, case_receiver, mysql, outcome, request, collector):
    """Requests stay as fast as the healthy twin's, memory and queue stay bounded, reload and
    shutdown stay within the flush timeout, and every span not delivered is counted and reported."""
    if collector.fault is None:
        endpoint, sink = f"http://127.0.0.1:{free_port()}", None
    else:
        case_receiver.fault = collector.fault
        endpoint, sink = case_receiver.endpoint, case_receiver
    run = exercise(start_uwsgi, endpoint, sink, receiver)
    check_books(run.twin, run.init_spans)
    check_books(run.case, run.init_spans, collector.in_flight_slack)
    check_application_unharmed(run)
    if collector.known_dead:
        # The old workers' last exports failed: their exit flush makes one short attempt.  At the
        # final stop the new workers' exports are still being retried: the exit flush stops the
        # retries, so each batch gets one more answer (refused, 503) and the stop ends.  So both
        # stops take what the healthy twin's take at the same moment, give or take one of uWSGI's
        # reaping ticks; spending the flush timeout would add FLUSH_MS to them.
        for what in ("reload_exit_s", "shutdown_s"):
            took, healthy = getattr(run.case, what), getattr(run.twin, what)
            assert took < healthy + KNOWN_DEAD_SLACK_S, f"{what}: {took:.2f} s, healthy twin {healthy:.2f} s"
    for reason in collector.must_drop:
        assert run.case.total(reason) > 0, f"nothing counted as {reason}: fault not exercised? {run.case.summaries}"
    if collector.fault is not None and collector.fault.status != 200:
        assert not run.case.received, "the receiver stored spans while failing every request"
    if collector.fault == Fault():
        assert not run.case.summaries and not run.case.warnings, run.case.summaries
    text, numbers = measured(run, case_receiver.stats.requests + case_receiver.stats.faulted)
    outcome(request.node.callspec.id, group="Collector faults", expected=collector.expected, measured=text, **numbers)


def test_collector_recovering(start_uwsgi, receiver, mysql, outcome):
    """Collector down while requests run, then a receiver starts on the same port: what was
    still queued (and the batch being retried) is delivered; only what the full queue pushed out
    is lost, and that is counted."""
    port = free_port()
    outage_workers: list[int] = []  # the case's workers before the reload: all their spans ended in the outage
    revived: list[Receiver] = []
    recovery: dict[str, float] = {}

    def recover() -> Receiver:
        collector = Receiver(port=port).start()
        revived.append(collector)
        started = time.monotonic()
        loaded = set(outage_workers)
        assert collector.wait_for(lambda spans: loaded <= {s.pid for s in spans}, 25), (
            f"no spans after recovery from {loaded - {s.pid for s in collector.snapshot()}}"
        )
        recovery["all_workers_delivering_s"] = round(time.monotonic() - started, 2)
        return collector

    try:
        run = exercise(
            start_uwsgi,
            f"http://127.0.0.1:{port}",
            None,
            receiver,
            # long enough that the batch being retried outlives the outage (backoff 1, 2, 4, 8 s)
            options={"otel-exporter-otlp-timeout": "20"},
            after_load=recover,
            on_workers=outage_workers.extend,
        )
        check_books(run.twin, run.init_spans)
        check_books(run.case, run.init_spans)
        check_application_unharmed(run)
        text, numbers = measured(run, revived[0].stats.requests)
    finally:
        for collector in revived:
            collector.stop()
    case = run.case
    assert case.total("export_failed") == 0 and case.total("exit_timeout") == 0, case.summaries
    ended = sum(case.ended(pid, run.init_spans) for pid in outage_workers)
    delivered = sum(case.received.get(pid, 0) for pid in outage_workers)
    pushed_out = sum(case.summaries[pid].queue_full for pid in outage_workers if pid in case.summaries)
    assert delivered > 0 and delivered + pushed_out == ended, (ended, delivered, pushed_out)
    numbers.update(recovery, outage_ended=ended, outage_delivered=delivered, outage_queue_full=pushed_out)
    text += (
        f" Of the {ended} spans ended during the outage, {delivered} were delivered after the collector came back "
        f"(every worker delivering within {recovery['all_workers_delivering_s']:.1f} s) and {pushed_out} "
        f"were pushed out of the full queue (counted)."
    )
    outcome(
        "collector-recovering",
        group="Collector faults",
        expected="Down while requests run, then back on the same port: the batch being retried and all still "
        "queued spans are delivered (export failed 0); only spans a full queue pushed out are lost, counted.",
        measured=text,
        **numbers,
    )
