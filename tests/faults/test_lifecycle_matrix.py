"""Worker lifecycle matrix on real uWSGI (Django + MariaDB, 4 workers, worker-reload-mercy 10 s):
every way a worker ends or is replaced, idle and with requests in flight, compared with uWSGI's
own request log.

The invariant: every request uWSGI logged as served has its server span at the receiver, per
worker pid.  A span can also exist for a request uWSGI did *not* log (the worker ended after
Django finished the response and before uWSGI wrote it and its log line); such extras are
at most one per worker.  Only a killed worker (SIGKILL, ``os._exit``,
harakiri) may lose spans, and at most those still queued in that worker.

tests/integration/test_lifecycle.py covers the idle max-requests recycle and SIGHUP reload on the
plain WSGI app; this file does not repeat those two cells.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest

from otel_uwsgi.tools.receiver import Receiver

from ..conftest import Server, wait_until

pytestmark = pytest.mark.integration

INI = "django-mysql.ini"
GROUP = "Worker lifecycle"
SLOW = "/slow?s=0.5"
FAST = ("/", "/db")


# ------------------------------------------------------------------------------- helpers


@dataclass
class Call:
    path: str
    started: float
    ended: Optional[float] = None
    outcome: str = "pending"  # "200", another status, or the exception's class name


@dataclass
class Load:
    """Client threads: some keep a slow request in flight, the others send fast ones (or, with
    ``plans``, each thread loops over its own paths)."""

    server: Server
    slow_threads: int = 2
    fast_threads: int = 2
    plans: Optional[list[tuple[str, ...]]] = None
    calls: list[Call] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)

    def _run(self, paths: tuple[str, ...]) -> None:
        i = 0
        while not self.stop.is_set():
            call = Call(paths[i % len(paths)], time.monotonic())
            i += 1
            with self.lock:
                self.calls.append(call)
            try:
                call.outcome = str(self.server.get(call.path, timeout=20)[0])
            except OSError as exc:
                call.outcome = type(exc).__name__
                self.stop.wait(0.05)  # the server is going away (or reloading): do not spin
            call.ended = time.monotonic()

    def __enter__(self) -> Load:
        plan = self.plans or [(SLOW,)] * self.slow_threads + [FAST] * self.fast_threads
        self.threads = [threading.Thread(target=self._run, args=(p,), daemon=True) for p in plan]
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(25)

    def in_flight(self, path: str = SLOW, older_than: float = 0.1) -> list[Call]:
        now = time.monotonic()
        with self.lock:
            return [c for c in self.calls if c.path == path and c.ended is None and now - c.started > older_than]

    def cut(self) -> int:
        """Requests accepted but never answered (connection reset or closed; a refused connection
        never reached uWSGI)."""
        with self.lock:
            return sum(
                1 for c in self.calls
                if c.ended is not None and not c.outcome.isdigit() and c.outcome != "ConnectionRefusedError"
            )

    def completed(self, path: Optional[str] = SLOW) -> int:
        """Requests answered 200 on ``path`` (on any path with None)."""
        with self.lock:
            return sum(1 for c in self.calls if path in (None, c.path) and c.outcome == "200")


#: error.type of the span a request becomes when its worker died serving it (the span journal).
DIED = ("harakiri", "worker_died")


def spans_by_pid(receiver: Receiver) -> dict[int, int]:
    """Server spans of answered requests per pid (not those of requests a worker died in)."""
    out: dict[int, int] = {}
    for s in receiver.server_spans():
        if s.attributes.get("error.type") in DIED:
            continue
        out[s.pid or 0] = out.get(s.pid or 0, 0) + 1
    return out


CRASH_RE = re.compile(r"uWSGI process (\d+) got Segmentation Fault")
HUNG_RE = re.compile(r"worker \d+ \(pid: (\d+)\) is taking too much time to die\.\.\.NO MERCY")
MERCY = "10"  # worker-reload-mercy in the matrix: a worker stuck in its exit is SIGKILLed after 10 s


@dataclass
class Tally:
    served: int
    spans: int
    pids: int
    lost: dict[int, tuple[int, int]]  # pid: (served, spans) where spans < served
    extra: int  # spans without a logged request
    crashed: set[int]  # pids that segfaulted, or hung until uWSGI killed them (worker-reload-mercy)
    hung: set[int]

    @property
    def unexplained(self) -> dict[int, tuple[int, int]]:
        """Losses from workers that did not crash."""
        return {pid: v for pid, v in self.lost.items() if pid not in self.crashed}

    @property
    def lost_spans(self) -> int:
        return sum(n - got for n, got in self.lost.values())


def tally(server: Server, receiver: Receiver, timeout: float = 15.0) -> Tally:
    served = server.uwsgi.served()
    hung = {int(p) for p in HUNG_RE.findall(server.uwsgi.log())}
    crashed = {int(p) for p in CRASH_RE.findall(server.uwsgi.log())} | hung
    expected = sum(n for pid, n in served.requests.items() if pid not in crashed)
    receiver.wait_for(lambda s: sum(x.kind == "SERVER" and x.pid not in crashed for x in s) >= expected, timeout)
    got = spans_by_pid(receiver)
    lost = {pid: (n, got.get(pid, 0)) for pid, n in served.requests.items() if got.get(pid, 0) < n}
    extra = sum(max(0, n - served.requests.get(pid, 0)) for pid, n in got.items())
    return Tally(served.total, sum(got.values()), len(got), lost, extra, crashed, hung)


def respawned(server: Server) -> int:
    """Workers spawned after the first ``server.workers``."""
    return max(0, len(server.uwsgi.served().spawned) - server.workers)


def fifo_write(path: Path, command: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, command)
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------- triggers
# Each trigger: (uWSGI options, how to fire it, kind).  ``stop`` triggers end uWSGI; ``reload``
# ones replace workers while uWSGI keeps serving.


@dataclass(frozen=True)
class Trigger:
    case: str
    what: str
    kind: str  # "stop" or "reload"
    graceful: bool  # in-flight requests are allowed to finish
    extra: Callable[[Path], dict[str, str]]
    fire: Callable[[Server, Path], None]
    workers: int = 4


def _signal(signum: int) -> Callable[[Server, Path], None]:
    return lambda server, tmp: server.uwsgi.send(signum)


def _group_signal(signum: int) -> Callable[[Server, Path], None]:
    """To master and workers at once, as Ctrl-C in a terminal or systemd's KillMode=control-group."""
    return lambda server, tmp: os.killpg(server.uwsgi.pid, signum)


def _touch(server: Server, tmp: Path) -> None:
    (tmp / "chain-reload").touch()


def _grow(server: Server, tmp: Path) -> None:
    status, body = server.get("/grow?mb=40", timeout=20)
    assert status == 200, body


def _nothing(server: Server, tmp: Path) -> None:
    """max-requests: the traffic itself recycles the workers."""


def _stop_pidfile(server: Server, tmp: Path) -> None:
    subprocess.run(["uwsgi", "--stop", str(tmp / "uwsgi.pid")], check=True, timeout=10, capture_output=True)


def _fifo_q(server: Server, tmp: Path) -> None:
    fifo_write(tmp / "master.fifo", b"q")


def _no_extra(tmp: Path) -> dict[str, str]:
    return {}


TRIGGERS = {
    t.case: t
    for t in (
        Trigger("max-requests", "max-requests = 15 recycle", "reload", True,
                lambda tmp: {"max-requests": "15", "min-worker-lifetime": "0"}, _nothing),
        Trigger("reload-on-rss", "reload-on-rss (a /grow?mb=40 request)", "reload", True,
                lambda tmp: {"reload-on-rss": "70", "min-worker-lifetime": "0"}, _grow),
        Trigger("sighup", "SIGHUP (graceful reload)", "reload", True, _no_extra, _signal(signal.SIGHUP)),
        Trigger("chain-reload", "touch-chain-reload with lazy-apps (2 workers)", "reload", True,
                lambda tmp: {"lazy-apps": "true", "touch-chain-reload": str(tmp / "chain-reload")}, _touch,
                workers=2),
        Trigger("sigterm-no-die-on-term", "SIGTERM without die-on-term (brutal reload on 2.0)", "reload", False,
                lambda tmp: {"die-on-term": "false"}, _signal(signal.SIGTERM)),
        Trigger("sigint", "SIGINT", "stop", False, _no_extra, _signal(signal.SIGINT)),
        Trigger("sigterm-die-on-term", "SIGTERM with die-on-term", "stop", False,
                lambda tmp: {"die-on-term": "true"}, _signal(signal.SIGTERM)),
        Trigger("stop-pidfile", "uwsgi --stop <pidfile>", "stop", False,
                lambda tmp: {"pidfile": str(tmp / "uwsgi.pid")}, _stop_pidfile),
        Trigger("fifo-q", "master FIFO 'q' (graceful shutdown)", "stop", True,
                lambda tmp: {"master-fifo": str(tmp / "master.fifo")}, _fifo_q),
        Trigger("sigint-lazy-apps", "SIGINT with lazy-apps (2 workers)", "stop", False,
                lambda tmp: {"lazy-apps": "true"}, _signal(signal.SIGINT), workers=2),
        Trigger("sigint-process-group", "SIGINT to master and workers (Ctrl-C in a terminal)", "stop", False,
                _no_extra, _group_signal(signal.SIGINT)),
        Trigger("sigterm-process-group", "SIGTERM to master and workers with die-on-term (systemd's "
                "KillMode=control-group)", "stop", False, lambda tmp: {"die-on-term": "true"},
                _group_signal(signal.SIGTERM)),
    )
}

# (trigger, load) cells; the two idle cells tests/integration already covers are left out.
# Case ids are literal: docs/faults.json and docs/FAULTS.md key their rows by them.
CELLS = [
    pytest.param("max-requests", "load", id="lifecycle-max-requests-under-load"),
    pytest.param("reload-on-rss", "idle", id="lifecycle-reload-on-rss-idle"),
    pytest.param("reload-on-rss", "load", id="lifecycle-reload-on-rss-under-load"),
    pytest.param("sighup", "load", id="lifecycle-sighup-under-load"),
    pytest.param("chain-reload", "idle", id="lifecycle-chain-reload-idle"),
    pytest.param("chain-reload", "load", id="lifecycle-chain-reload-under-load"),
    pytest.param("sigterm-no-die-on-term", "idle", id="lifecycle-sigterm-no-die-on-term-idle"),
    pytest.param("sigterm-no-die-on-term", "load", id="lifecycle-sigterm-no-die-on-term-under-load"),
    pytest.param("sigint", "idle", id="lifecycle-sigint-idle"),
    pytest.param("sigint", "load", id="lifecycle-sigint-under-load"),
    pytest.param("sigterm-die-on-term", "idle", id="lifecycle-sigterm-die-on-term-idle"),
    pytest.param("sigterm-die-on-term", "load", id="lifecycle-sigterm-die-on-term-under-load"),
    pytest.param("stop-pidfile", "idle", id="lifecycle-stop-pidfile-idle"),
    pytest.param("stop-pidfile", "load", id="lifecycle-stop-pidfile-under-load"),
    pytest.param("fifo-q", "idle", id="lifecycle-fifo-q-idle"),
    pytest.param("fifo-q", "load", id="lifecycle-fifo-q-under-load"),
    pytest.param("sigint-lazy-apps", "idle", id="lifecycle-sigint-lazy-apps-idle"),
    pytest.param("sigint-lazy-apps", "load", id="lifecycle-sigint-lazy-apps-under-load"),
    pytest.param("sigint-process-group", "idle", id="lifecycle-sigint-process-group-idle"),
    pytest.param("sigint-process-group", "load", id="lifecycle-sigint-process-group-under-load"),
    pytest.param("sigterm-process-group", "idle", id="lifecycle-sigterm-process-group-idle"),
    pytest.param("sigterm-process-group", "load", id="lifecycle-sigterm-process-group-under-load"),
]


@pytest.mark.parametrize("case, mode", CELLS)
def test_lifecycle_matrix(start_uwsgi, receiver, mysql, outcome, tmp_path, request, case, mode):
    """Spans received == requests served (per pid) for every recycle, reload and stop, idle and
    with slow requests in flight when it happens; graceful ones let those requests finish."""
    trigger = TRIGGERS[case]
    workers = trigger.workers
    extra = {
        "worker-reload-mercy": MERCY,
        **trigger.extra(tmp_path),
        "otel-log-level": os.environ.get("OTEL_UWSGI_FAULTS_LOG_LEVEL", "info"),
    }
    server = start_uwsgi(INI, workers=workers, extra=extra, ready_path="/whoami")
    # With lazy-apps each worker loads the app itself: wait until all have.
    loaded = workers if "lazy-apps" in extra else 1
    assert wait_until(lambda: server.uwsgi.log().count("WSGI app 0") >= loaded, 60)
    busy = workers // 2 if mode == "load" else 0
    with Load(server, slow_threads=busy, fast_threads=busy) as load:

        def loaded_and_busy() -> bool:
            return server.uwsgi.served().total >= 20 and load.completed() >= busy and bool(load.in_flight())

        if mode == "load":
            assert wait_until(loaded_and_busy, 30), server.uwsgi.log()[-2000:]
            in_flight_calls = load.in_flight()
        else:
            before = server.uwsgi.served().total
            server.hammer("/db", 20, concurrency=4)
            # uWSGI logs a request after answering it: wait for the log before the trigger.
            assert wait_until(lambda: server.uwsgi.served().total >= before + 20, 10)
            in_flight_calls = []
        in_flight = len(in_flight_calls)
        before = server.uwsgi.served().total
        started = time.monotonic()
        trigger.fire(server, tmp_path)
        if trigger.kind == "stop":
            assert server.uwsgi.wait(30) is not None, "uWSGI did not stop"
        else:
            needed = 1 if case in ("max-requests", "reload-on-rss") else workers
            assert wait_until(lambda: respawned(server) >= needed, 60), server.uwsgi.log()[-3000:]
            if case == "chain-reload":
                assert wait_until(lambda: "chain reloading complete" in server.uwsgi.log(), 60)
        took = time.monotonic() - started
        if trigger.kind == "reload":
            # The replacements serve too (and their spans must arrive as well).
            if mode == "idle":
                assert wait_until(lambda: server.get("/", timeout=5)[0] == 200, 20)
                server.hammer("/db", 20, concurrency=4)
            else:
                assert wait_until(lambda: server.uwsgi.served().total >= before + 30, 40)
    if trigger.kind == "reload":
        server.stop()
    next_run = ""
    if "lazy-apps" in extra and trigger.kind == "stop" and mode == "load":
        # No otel-uwsgi in a lazy-apps master: what the busy workers left is shipped by the next
        # start of the same service (docs/JOURNAL.md), not at the stop.
        after = start_uwsgi(INI, workers=workers, extra=extra, ready_path="/whoami")
        assert wait_until(lambda: not tally(server, receiver, timeout=0.5).lost, 15), tally(server, receiver).lost
        after.stop()
        next_run = "; the busy workers' spans shipped by the next start"
    result = tally(server, receiver)
    cut = load.cut()
    finished = sum(1 for c in in_flight_calls if c.outcome == "200")
    assert result.served > 0
    assert not result.unexplained, f"pid: (served, spans) {result.unexplained}"
    # A busy worker's brutal stop runs no Python (its spans are in its journal): no crash, no hang.
    assert not result.crashed, f"crash/hang in a {mode} {case}: {result.crashed}"
    # A worker that ends right after answering may not have logged that request: at most one each.
    if result.extra > result.pids:  # what a failure needs to be read: shipped twice, or requests uWSGI never logged?
        ids = collections.Counter(s.span_id for s in receiver.server_spans())
        twice = sum(n - 1 for n in ids.values() if n > 1)
        pytest.fail(f"{result.extra} spans without a logged request from {result.pids} pids ({twice} span ids "
                    f"received more than once); served per pid {server.uwsgi.served().requests}, "
                    f"received {spans_by_pid(receiver)}")
    if mode == "load":
        assert in_flight >= 1
        if trigger.graceful:
            assert finished == in_flight, f"only {finished} of {in_flight} in-flight requests finished"
    if trigger.kind == "reload":
        assert respawned(server) >= 1
    state = f"{in_flight} slow request(s) in flight, {finished} finished, {cut} cut" if mode == "load" else "idle"
    action = "stop" if trigger.kind == "stop" else "respawn"
    outcome(
        request.node.callspec.id,
        group=GROUP,
        expected=f"{trigger.what}{' with requests in flight' if mode == 'load' else ', idle'}: every logged "
        "request has its server span"
        + ("; in-flight requests finish" if mode == "load" and trigger.graceful else "")
        + (
            " (busy workers exit at once, their spans shipped from their journals: no crash, no hang)"
            if mode == "load" and not trigger.graceful
            else ""
        ),
        measured=f"{result.served} requests served, {result.spans} server spans from {result.pids} pids, "
        + (
            f"{result.lost_spans} lost, all from {len(result.crashed)} worker(s) that crashed or hung "
            f"({len(result.hung)} hung until worker-reload-mercy) in the exit flush "
            if result.crashed
            else "0 lost "
        )
        + f"({state}; {result.extra} span(s) of requests answered but never logged by uWSGI); "
        f"{action} took {took:.1f} s{next_run}",
        served=result.served,
        spans=result.spans,
        lost=result.lost_spans,
        crashed=len(result.crashed) - len(result.hung),
        hung=len(result.hung),
        extra=result.extra,
        in_flight=in_flight,
        finished=finished,
        cut=cut,
        pids=result.pids,
        seconds=round(took, 2),
    )


def test_stop_during_chain_reload_loses_nothing(start_uwsgi, receiver, mysql, outcome, tmp_path):
    """SIGINT while a chain reload replaces workers (lazy-apps): the replacement still loading the
    app has the master's signal handlers and sends SIGINT to every worker again.  A second signal
    used to land in a worker's export thread and end the process during the flush (measured
    before the fix: every span queued in the old workers lost); now only the main thread takes it."""
    trigger = tmp_path / "chain-reload"
    # uWSGI itself then waits worker-reload-mercy for that replacement (it took the master's
    # SIGINT handler and never exits by itself): keep the mercy short.
    extra = {"lazy-apps": "true", "touch-chain-reload": str(trigger), "worker-reload-mercy": "8"}
    server = start_uwsgi(INI, workers=2, extra=extra, ready_path="/whoami")
    assert wait_until(lambda: server.uwsgi.log().count("WSGI app 0") >= 2, 60)
    server.hammer("/db", 20, concurrency=4)
    trigger.touch()
    assert wait_until(lambda: "Respawned uWSGI worker 1" in server.uwsgi.log(), 30)
    server.hammer("/db", 10, concurrency=2)  # the old worker 2 queues these
    started = time.monotonic()
    server.uwsgi.send(signal.SIGINT)
    assert server.uwsgi.wait(30) is not None
    took = time.monotonic() - started
    broadcasts = server.uwsgi.log().count("SIGINT/SIGTERM received...killing workers")
    result = tally(server, receiver)
    assert not result.lost, f"pid: (served, spans) {result.lost}"
    assert broadcasts >= 1
    outcome(
        "lifecycle-sigint-during-chain-reload",
        group=GROUP,
        expected="SIGINT while a lazy-apps chain reload is under way (the loading replacement re-sends "
        "SIGINT to every worker): every logged request has its server span",
        measured=f"{result.served} requests served, {result.spans} server spans from {result.pids} pids, 0 lost; "
        f"SIGINT was sent to the workers {broadcasts} time(s); stop took {took:.1f} s (uWSGI waits "
        "worker-reload-mercy, here 8 s, for the replacement that was loading)",
        served=result.served,
        spans=result.spans,
        broadcasts=broadcasts,
        seconds=round(took, 2),
    )


# ------------------------------------------------------------------------------- killed workers

DIED_RE = re.compile(r"DAMN ! worker \d+ \(pid: (\d+)\) died")
HARAKIRI_RE = re.compile(r"HARAKIRI ON WORKER \d+ \(pid: (\d+)")


def _ledgers(server: Server) -> dict[int, dict[str, int]]:
    """The last /whoami answer (delivery counts) from every worker."""
    seen: dict[int, dict[str, int]] = {}

    def every_worker_answered() -> bool:
        answer = server.get_json("/whoami")
        seen[answer["pid"]] = answer["delivery"]
        return len(seen) >= server.workers

    wait_until(every_worker_answered, 30, interval=0)
    assert len(seen) == server.workers, seen
    return seen


@pytest.mark.parametrize(
    "how, case",
    [
        pytest.param("sigkill", "lifecycle-worker-sigkill", id="lifecycle-worker-sigkill"),
        pytest.param("os-exit", "lifecycle-worker-os-exit", id="lifecycle-worker-os-exit"),
        pytest.param("harakiri", "lifecycle-worker-harakiri", id="lifecycle-worker-harakiri"),
    ],
)
def test_killed_worker_loses_at_most_its_queue(start_uwsgi, receiver, mysql, outcome, how, case):
    """A worker killed outright loses at most the spans it had queued (here, with a 60 s batch
    delay, all of them); every other worker's spans arrive."""
    extra = {"otel-bsp-schedule-delay": "60000"}
    if how == "harakiri":
        extra["harakiri"] = "2"
    server = start_uwsgi(INI, extra=extra, ready_path="/whoami")
    server.until_every_worker_served("/db")
    ledgers = _ledgers(server)
    if how == "sigkill":
        victim = next(iter(ledgers))
        os.kill(victim, signal.SIGKILL)
        pattern = DIED_RE
    else:
        with pytest.raises(OSError):  # the connection ends without an answer
            server.get("/exit" if how == "os-exit" else "/slow?s=10", timeout=30)
        pattern = DIED_RE if how == "os-exit" else HARAKIRI_RE
    assert wait_until(lambda: pattern.search(server.uwsgi.log()), 15), server.uwsgi.log()[-2000:]
    victim = int(pattern.search(server.uwsgi.log()).group(1))
    assert wait_until(lambda: respawned(server) >= 1, 15)
    server.hammer("/db", 20, concurrency=4)  # the replacement and the others keep serving
    server.stop()
    served = server.uwsgi.served()
    receiver.wait_for(lambda s: sum(x.kind == "SERVER" for x in s) >= served.total - served.requests[victim], 15)
    got = spans_by_pid(receiver)
    others = {pid: (n, got.get(pid, 0)) for pid, n in served.requests.items() if pid != victim and got.get(pid, 0) < n}
    assert not others, f"other workers lost spans: pid: (served, spans) {others}"
    lost = served.requests[victim] - got.get(victim, 0)
    # Queued in the victim at its last /whoami (whose own span ended after the answer: + 1).
    bound = ledgers[victim]["pending"] + 1
    assert 0 <= lost <= bound, (lost, bound, ledgers[victim])
    arrived = sum(1 for x in receiver.snapshot() if x.pid == victim)  # spans of every kind
    assert arrived >= ledgers[victim]["exported"], "spans the victim had exported went missing"
    what = {"sigkill": "a worker SIGKILLed", "os-exit": "a worker ending with os._exit(1) (/exit)",
            "harakiri": "harakiri = 2 on a /slow?s=10"}[how]
    outcome(
        case,
        group=GROUP,
        expected=f"{what}: it loses at most the spans still queued in it; other workers lose none",
        measured=f"victim served {served.requests[victim]} requests with {bound - 1} spans queued at its last "
        f"/whoami (batch delay 60 s): {arrived} of its spans arrived, {lost} server spans lost; the other "
        f"{len(served.requests) - 1} pids: {served.total - served.requests[victim]} requests, 0 lost",
        victim_served=served.requests[victim],
        victim_spans=got.get(victim, 0),
        victim_queued=bound - 1,
        lost=lost,
        bound=bound,
        others_served=served.total - served.requests[victim],
    )


# ------------------------------------------------------------------------------- exit hooks (fact check)

PROBE = "tests.faults.apps.probe:application"


def test_busy_worker_skips_atexit_hooks_but_loses_nothing(start_uwsgi, receiver, outcome, tmp_path):
    """uWSGI skips uwsgi.atexit and Python atexit in a worker stopped while busy (checked in
    python_plugin.c: uwsgi_python_atexit returns when uwsgi_worker_is_busy): such a worker runs no
    Python at all, and the master ships what its journal holds, the cut request as an ERROR span."""
    marks = tmp_path / "marks"
    marks.mkdir()
    server = start_uwsgi(
        "minimal.ini",
        extra={"module": PROBE, "otel-log-level": "debug", "die-on-term": "true"},
        env={"OTEL_UWSGI_PROBE_DIR": str(marks)},
    )
    server.hammer("/", 20, concurrency=4)
    threads = [threading.Thread(target=lambda: _ignore_errors(server.get, "/slow?s=3", timeout=10)) for _ in range(2)]
    for t in threads:
        t.start()
    assert wait_until(lambda: len(list(marks.glob("busy-*"))) == 2, 10)
    busy = {int(p.name.split("-")[1]) for p in marks.glob("busy-*")}
    server.uwsgi.send(signal.SIGTERM)
    assert server.uwsgi.wait(20) is not None
    for t in threads:
        t.join(15)
    served = server.uwsgi.served()
    workers = set(served.spawned)
    idle = workers - busy
    hooks = {p.name for p in marks.iterdir()}
    log = server.uwsgi.log()
    flushed = {int(m) for m in re.findall(r"otel-uwsgi: pid (\d+) flushed \d+ spans", log)}
    shipped = {int(m) for m in re.findall(r"otel-uwsgi: shipped \d+ span\(s\) that worker \d+ \(pid (\d+)\) left", log)}
    for pid in busy:
        assert f"uwsgi-atexit-{pid}" not in hooks and f"python-atexit-{pid}" not in hooks, (pid, hooks)
    idle_with_hooks = {pid for pid in idle if f"uwsgi-atexit-{pid}" in hooks}
    assert idle_with_hooks, f"no idle worker ran uwsgi.atexit: {hooks}"
    assert idle <= flushed and not busy & flushed, (idle, busy, flushed)
    assert busy <= shipped, f"the master did not ship the journals of {busy - shipped}"
    result = tally(server, receiver)
    assert not result.lost, result.lost
    died = [s for s in receiver.server_spans() if s.attributes.get("error.type") == "worker_died"]
    assert {s.pid for s in died} == busy, died
    outcome(
        "uwsgi-busy-worker-skips-atexit",
        group=GROUP,
        expected="uWSGI skips uwsgi.atexit and Python atexit in a busy worker (UWSGI_FACTS.md): it runs no "
        "Python; the master ships its journal at exit, the cut request as an ERROR span",
        measured=f"SIGTERM (die-on-term) with {len(busy)} workers busy: none of them ran uwsgi.atexit or "
        f"Python atexit, {len(idle_with_hooks)} of {len(idle)} idle workers did and flushed themselves; the "
        f"master shipped the {len(busy)} busy workers' journals with {len(died)} cut requests as ERROR spans; "
        f"{result.served} requests, {result.spans} spans, 0 lost",
        busy=len(busy),
        idle=len(idle),
        idle_with_hooks=len(idle_with_hooks),
        served=result.served,
        spans=result.spans,
    )


def _ignore_errors(fn: Callable[..., object], *args: object, **kwargs: object) -> None:
    try:
        fn(*args, **kwargs)
    except OSError:
        pass


# ------------------------------------------------------------------------------- mules and the spooler


def test_mule_and_spooler_spans_carry_their_own_identity(start_uwsgi, receiver, outcome, tmp_path):
    """A mule (``mule = file.py``) and the spooler get their own provider from the post-fork hook:
    their spans carry uwsgi.process.type mule / spooler, their own pid, and join the trace of
    the request that handed them the task.  At a stop the mule flushes its queue (uWSGI sends it
    SIGINT, it exits through exit()); the spooler is SIGKILLed by uWSGI on every stop and reload
    (core/master_utils.c, uwsgi_destroy_processes), so its spans are exported after each task:
    with a 60 s batch delay too, the SIGKILL finds none left."""
    spool = tmp_path / "spool"
    spool.mkdir()
    mule = Path(__file__).parent / "apps" / "mule.py"
    base = {"module": PROBE, "spooler": str(spool), "spooler-frequency": "1", "mule": str(mule)}

    # 1) short batch delay: both arrive while uWSGI runs.
    server = start_uwsgi("minimal.ini", extra={**base, "otel-bsp-schedule-delay": "200"})
    assert server.get("/spool?task=s1")[0] == 200 and server.get("/mule?task=m1")[0] == 200

    def tasks_and_their_requests(received: list) -> bool:
        """Both task spans, and the server spans of the requests that handed them over (a worker's
        batch may arrive after the spooler's or mule's)."""
        tasks = [x for x in received if x.name in ("spooler-task", "mule-task")]
        servers = {x.trace_id for x in received if x.kind == "SERVER"}
        return {x.name for x in tasks} == {"spooler-task", "mule-task"} and all(t.trace_id in servers for t in tasks)

    assert receiver.wait_for(tasks_and_their_requests, 15), [x.name for x in receiver.snapshot()]
    spans = {x.name: x for x in receiver.snapshot()}
    requests = {x.trace_id: x for x in receiver.server_spans()}
    worker_pids = set(server.uwsgi.served().spawned)
    master = server.uwsgi.pid
    for name, kind in (("spooler-task", "spooler"), ("mule-task", "mule")):
        span = spans[name]
        assert span.resource["uwsgi.process.type"] == kind
        assert span.pid not in worker_pids and span.pid != master
        assert span.resource["process.parent_pid"] == master
        parent = requests.get(span.trace_id)
        assert parent is not None and span.parent_span_id == parent.span_id, f"{name} not in its request's trace"
    assert spans["mule-task"].resource["uwsgi.mule.id"] == 1
    worker_ids = {x.resource["service.instance.id"] for x in receiver.server_spans()}
    own = {spans[n].resource["service.instance.id"] for n in ("spooler-task", "mule-task")}
    assert len(own) == 2 and not own & worker_ids
    server.stop()

    # 2) 60 s batch delay: only the exit flush can deliver.
    receiver.spans.clear()
    shutil.rmtree(spool)
    spool.mkdir()
    server = start_uwsgi("minimal.ini", extra={**base, "otel-bsp-schedule-delay": "60000"})
    assert server.get("/spool?task=s2")[0] == 200 and server.get("/mule?task=m2")[0] == 200
    assert wait_until(lambda: "done with task" in server.uwsgi.log() and "mule-task m2 ended" in server.uwsgi.log(), 15)
    server.stop()
    assert receiver.wait_for(lambda s: {"mule-task", "spooler-task"} <= {x.name for x in s}, 10)
    names = [x.name for x in receiver.snapshot()]
    assert "killing the spooler with pid" in server.uwsgi.log()  # SIGKILL: exported after the task already
    outcome(
        "lifecycle-mule-and-spooler",
        group=GROUP,
        expected="mule and spooler spans carry uwsgi.process.type mule/spooler, their own pid and the "
        "request's trace; the mule flushes at stop; the spooler, SIGKILLed by uWSGI at every stop and "
        "reload, exports its spans after each task, so none is lost",
        measured="batch delay 200 ms: spooler-task and mule-task arrived as children of their requests, "
        "from pids other than the master's and the workers'; batch delay 60 s: at SIGINT the mule's "
        "span arrived (exit flush), and the spooler's (exported after its task, before uWSGI's SIGKILL)",
        spooler_span_at_stop=int("spooler-task" in names),
        mule_span_at_stop=int("mule-task" in names),
    )
