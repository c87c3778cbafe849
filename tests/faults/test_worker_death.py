"""Workers that die mid-request on real uWSGI (2 workers, batch delay 60 s so that ended spans sit
in the worker): harakiri, graceful harakiri, ``kill -9``, a segfault, ``os._exit`` and
``evil-reload-on-rss``.  Each time, while uWSGI keeps running: the killed request arrives as an
ERROR span with the client's trace id and parent and the cause (and, for harakiri, the Python
stack where it hung), its child span arrives, and so does every span the worker had ended;
nothing arrives twice.  (otel_uwsgi/traces/journal, docs/JOURNAL.md.)
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from otel_uwsgi.semconv.attributes import WORKER_ID

from ..conftest import Server, wait_until
from ._load import SteadyLoad

pytestmark = pytest.mark.integration

APP = "tests.faults.apps.dying:application"
GROUP = "Worker deaths (span journal)"


def _busy_pid(marks: Path, timeout: float = 15) -> int:
    assert wait_until(lambda: any(marks.glob("busy-*")), timeout), "the dying request never started"
    return int(next(marks.glob("busy-*")).name.split("-")[1])


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie is dead, only not reaped yet
    except OSError:
        return False


def _send(server: Server, path: str, trace_id: str, parent: str) -> threading.Thread:
    def call() -> None:
        try:
            server.get(path, headers={"traceparent": f"00-{trace_id}-{parent}-01"}, timeout=60)
        except OSError:
            pass  # the worker died: uWSGI closes the connection

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread


GEVENT = {"gevent": "20", "gevent-monkey-patch": "true"}
CASES = {
    # case: (path, uWSGI options, how the test kills it, expected error.type)
    "harakiri": ("/hang?s=30", {"harakiri": "3"}, None, "harakiri"),
    "harakiri-graceful": ("/hang?s=30", {"harakiri": "3", "harakiri-graceful-timeout": "2"}, None, "harakiri"),
    "kill-9": ("/hang?s=30", {}, signal.SIGKILL, "worker_died"),
    "segfault": ("/segv", {}, None, "worker_died"),
    "os-exit": ("/exit", {}, None, "worker_died"),
    "evil-reload-on-rss": ("/grow?mb=300&s=30", {"evil-reload-on-rss": "200"}, None, "worker_died"),
    "harakiri-gevent": ("/hang?s=30", {"harakiri": "3", **GEVENT}, None, "harakiri"),
    "kill-9-gevent": ("/hang?s=30", GEVENT, signal.SIGKILL, "worker_died"),
    # cheaper: a worker id may not come back for a long time; a living worker ships the dead one's journal
    "kill-9-cheaper": ("/hang?s=30", {"cheaper": "1", "cheaper-initial": "2"}, signal.SIGKILL, "worker_died"),
    # without the C extension (no compiler, OTEL_UWSGI_NO_EXTENSIONS): the journal is pure Python
    "harakiri-no-extensions": ("/hang?s=30", {"harakiri": "3", "env": "OTEL_UWSGI_NO_EXTENSIONS=1"}, None, "harakiri"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_dead_workers_request_and_spans_arrive(start_uwsgi, receiver, outcome, tmp_path, case):
    """The request a worker died in is an ERROR span in the client's trace, with its cause; the
    child it ended and every span it had queued arrive within seconds, each exactly once."""
    path, extra, kill, cause = CASES[case]
    marks = tmp_path / "marks"
    marks.mkdir()
    extra = dict(extra)
    env = dict([extra.pop("env").split("=", 1)]) if "env" in extra else {}
    options = {"module": APP, "otel-bsp-schedule-delay": "60000", "worker-reload-mercy": "10", **extra}
    server = start_uwsgi("minimal.ini", workers=2, extra=options, env={"OTEL_UWSGI_PROBE_DIR": str(marks), **env},
                         ready_path="/")
    server.hammer("/work?n=3", 24, concurrency=4)
    # both workers served /work (uWSGI may hand a batch to one; the ready check's "/" is one request)
    server.until_every_worker_served("/work?n=3", at_least=3)
    # Under load, but for gevent: there the load's requests (greenlets of the same worker) kept the
    # hung request's worker from being harakiri'd within 20 s here (uWSGI's business, not ours).
    load = None if "gevent" in extra else SteadyLoad(server.port, "/work?n=3", rate=30, threads=2, sample_path=None)
    if load is not None:
        load.start()
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    started = time.monotonic()
    _send(server, path, trace_id, parent)
    pid = _busy_pid(marks)
    if kill is not None:
        time.sleep(0.6)  # the request has run a while: its slot holds its attributes and stack
        os.kill(pid, kill)
    assert wait_until(lambda: not _alive(pid), 20), f"pid {pid} still alive"
    queued = server.uwsgi.served().requests.get(pid, 0)  # final: the worker is dead

    def killed() -> list:
        return [s for s in receiver.spans if s.trace_id == trace_id and s.kind == "SERVER"]

    def arrived() -> bool:
        mine = [s for s in receiver.spans if s.pid == pid]
        return bool(killed()) and sum(s.kind == "SERVER" for s in mine) >= queued + 1
    assert wait_until(arrived, 20), (
        f"{case}: after the death of pid {pid}: killed request's span {bool(killed())}, "
        f"{sum(s.kind == 'SERVER' and s.pid == pid for s in receiver.spans)} server spans of {queued} served\n"
        + server.uwsgi.log()[-3000:]
    )
    seconds = time.monotonic() - started
    assert server.uwsgi.wait(0.01) is None, "uWSGI itself stopped"
    if load is not None:
        latencies = load.finish()
        assert latencies.errors == 0 and set(latencies.statuses) == {200}, (latencies.errors, latencies.statuses)
    (span,) = killed()
    assert span.parent_span_id == parent
    assert span.status_code == 2, span
    assert span.attributes.get("error.type") == cause, span.attributes
    assert span.pid == pid and span.resource.get(WORKER_ID) in (1, 2)
    assert "exception" in span.events and span.end_ns >= span.start_ns > 0
    event = span.event_attributes[span.events.index("exception")]
    assert event["exception.type"] == cause and event["exception.message"] == span.status_message
    if cause == "harakiri":
        assert "harakiri = 3 s" in span.status_message
        assert "wait_for_the_lock" in event.get("exception.stacktrace", ""), event
    if case.startswith("kill-9"):
        assert "wait_for_the_lock" in event.get("exception.stacktrace", ""), "the slot was refreshed with the stack"
        assert span.attributes.get("http.method") == "GET" or span.attributes.get("http.request.method") == "GET"
    children = [s for s in receiver.spans if s.trace_id == trace_id and s.kind != "SERVER"]
    assert [c.name for c in children] == ["before-" + path.split("?")[0].strip("/")]
    assert children[0].parent_span_id == span.span_id
    mine = [s for s in receiver.spans if s.pid == pid]
    assert sum(s.kind == "SERVER" for s in mine) == queued + 1
    work = [s for s in mine if s.kind == "SERVER" and "/work?n=3" in str(s.attributes)]
    assert sum(s.name.startswith("step-") for s in mine) == 3 * len(work) > 0
    # the rest arrives at the stop, and nothing twice
    server.stop()
    total = server.uwsgi.served().total
    assert receiver.wait_for(lambda spans: sum(s.kind == "SERVER" for s in spans) >= total + 1, 10)
    assert sum(s.kind == "SERVER" and s.attributes.get("error.type") == cause for s in receiver.spans) == 1
    twice = [k for k, n in Counter((s.trace_id, s.span_id) for s in receiver.spans).items() if n > 1]
    assert not twice, f"shipped twice: {twice[:5]}"
    outcome(
        f"death-{case}",
        group=GROUP,
        expected=f"{case} kills a worker mid-request (2 workers, batch delay 60 s): the killed request is an "
        f"ERROR span ({cause}) in the client's trace, its child and all the worker had ended arrive while "
        "uWSGI runs, nothing twice",
        measured=f"pid {pid}: killed request ({span.status_message!r}) + its child + {queued} queued requests' "
        f"{4 * queued} spans arrived {seconds:.1f} s after the request was sent; 0 lost, 0 duplicates",
        queued=queued,
        seconds=round(seconds, 1),
    )


def test_a_worker_recycled_by_reload_on_rss_loses_nothing(start_uwsgi, receiver, outcome, tmp_path):
    """``reload-on-rss``: the worker finishes the request that grew it, then is recycled gracefully;
    its spans (that request's included, not an ERROR) arrive while uWSGI runs, each once."""
    marks = tmp_path / "marks"
    marks.mkdir()
    options = {"module": APP, "otel-bsp-schedule-delay": "60000", "reload-on-rss": "200", "min-worker-lifetime": "1"}
    server = start_uwsgi("minimal.ini", workers=2, extra=options, env={"OTEL_UWSGI_PROBE_DIR": str(marks)},
                         ready_path="/")
    spawned = time.monotonic()  # the workers were spawned before they answered: they are at least this old
    server.hammer("/work?n=3", 24, concurrency=4)
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    # uWSGI recycles on rss only at the end of a request of a worker that has lived min-worker-lifetime
    # (1 s here; core/utils.c, uwsgi_close_request).  Timed from before the start, the grown request
    # could come from a worker spawned late under load, younger than that: it was never recycled.
    time.sleep(max(0.0, spawned + 1.5 - time.monotonic()))
    status, _ = server.get("/grow?mb=300&s=0&keep=1", headers={"traceparent": f"00-{trace_id}-{parent}-01"})
    assert status == 200
    pid = _busy_pid(marks)
    assert wait_until(lambda: "Respawned uWSGI worker" in server.uwsgi.log(), 20), server.uwsgi.log()[-2000:]
    server.logged()
    queued = server.uwsgi.served().requests.get(pid, 0)
    assert receiver.wait_for(lambda spans: sum(s.kind == "SERVER" and s.pid == pid for s in spans) >= queued, 15)
    (span,) = [s for s in receiver.spans if s.trace_id == trace_id and s.kind == "SERVER"]
    assert span.status_code != 2 and "error.type" not in span.attributes
    server.stop()
    twice = [k for k, n in Counter((s.trace_id, s.span_id) for s in receiver.spans).items() if n > 1]
    assert not twice
    outcome(
        "death-reload-on-rss",
        group=GROUP,
        expected="reload-on-rss recycles a worker after the request that grew it: that request is an ordinary span, "
        "every span of the worker arrives while uWSGI runs, nothing twice",
        measured=f"pid {pid}: {queued} requests served, {queued} server spans while uWSGI ran (the grown request's "
        "status not ERROR), 0 duplicates",
        queued=queued,
    )
