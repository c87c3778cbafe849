"""Worker lifecycle on real uWSGI: no span lost on recycle, reload or shutdown (even under load),
a dead collector cannot hang a stop, and bad configuration stops startup with one line."""

from __future__ import annotations

import re
import signal
import threading
import time

import pytest

from otel_uwsgi.tools.harness import free_port

from ..conftest import wait_until

pytestmark = pytest.mark.integration


def _server_spans_by_pid(receiver):
    out: dict[int, int] = {}
    for s in receiver.server_spans():
        out[s.pid] = out.get(s.pid, 0) + 1
    return out


def _assert_nothing_lost(receiver, served, timeout=10.0):
    """Every pid that served N requests delivered N server spans."""
    assert served.total > 0
    receiver.wait_for(lambda s: sum(x.kind == "SERVER" for x in s) >= served.total, timeout)
    got = _server_spans_by_pid(receiver)
    missing = {pid: (n, got.get(pid, 0)) for pid, n in served.requests.items() if got.get(pid, 0) < n}
    assert not missing, f"pid: (served, spans) {missing}"


def test_max_requests_recycle_loses_nothing(start_uwsgi, receiver):
    """Workers recycled by max-requests flush their queue before exiting."""
    server = start_uwsgi("minimal.ini", workers=2, extra={"max-requests": "10", "min-worker-lifetime": "0"})
    server.hammer("/", 40, concurrency=4)
    assert wait_until(lambda: len(server.uwsgi.served().spawned) > 2, 20), "no worker was recycled"
    server.hammer("/", 10, concurrency=2)
    served = server.uwsgi.served()
    server.stop()
    assert len(served.spawned) > 2
    _assert_nothing_lost(receiver, served)


def test_sighup_reload_loses_nothing(start_uwsgi, receiver):
    """A graceful reload (SIGHUP) replaces every worker; the old workers' spans all arrive."""
    server = start_uwsgi("minimal.ini")
    server.hammer("/", 40)
    before = set(server.uwsgi.served().spawned)
    server.uwsgi.send(signal.SIGHUP)
    assert wait_until(lambda: len(server.uwsgi.served().spawned) >= 8, 30), server.uwsgi.log()[-2000:]
    assert wait_until(lambda: server.get("/", timeout=5)[0] == 200, 20)
    server.hammer("/", 40)
    served = server.uwsgi.served()
    server.stop()
    assert set(served.spawned) > before
    _assert_nothing_lost(receiver, served)


@pytest.mark.parametrize("signum, extra", [(signal.SIGTERM, {"die-on-term": "true"}), (signal.SIGINT, {})])
def test_shutdown_under_load_loses_nothing(start_uwsgi, receiver, mysql, signum, extra):
    """Stopping while requests are in flight (busy workers skip uwsgi.atexit and Python atexit)
    still delivers a span for every request uWSGI logged as served."""
    server = start_uwsgi("django-mysql.ini", extra=extra, ready_path="/whoami")
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                server.get("/slow?s=0.05", timeout=10)
                server.get("/db", timeout=10)
            except OSError:
                return

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        assert wait_until(lambda: server.uwsgi.served().total >= 100, 30)
        started = time.monotonic()
        server.uwsgi.send(signum)
        assert server.uwsgi.wait(20) is not None, "uWSGI did not stop"
        took = time.monotonic() - started
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    served = server.uwsgi.served()
    _assert_nothing_lost(receiver, served)
    assert took < 10, f"stop took {took:.1f}s"


def test_dead_collector_cannot_hang_a_stop_or_slow_requests(start_uwsgi, receiver):
    """With nothing listening at the endpoint, requests stay fast and a stop ends in uWSGI's ~1 s
    reaping: at exit a refused batch is not retried (before: the exporter's retries held it for
    otel-exit-flush-timeout, then the flush gave up), and the summaries count every span lost."""
    dead = f"http://127.0.0.1:{free_port()}"
    server = start_uwsgi("minimal.ini", extra={"otel-exporter-otlp-endpoint": dead, "otel-exit-flush-timeout": "1000"})
    started = time.monotonic()
    server.hammer("/", 200)
    assert time.monotonic() - started < 10
    started = time.monotonic()
    server.uwsgi.send(signal.SIGINT)
    assert server.uwsgi.wait(20) is not None
    took = time.monotonic() - started
    assert took < 3.0, f"stop took {took:.1f}s with a dead collector"
    log = server.uwsgi.log()
    # A worker that exits counts its own losses; one still busy at the stop (its last request's
    # span not yet ended when the client had the answer) is killed, and the master counts what
    # its journal held.
    lost = sum(int(n) for n in re.findall(r"exiting: (\d+) of \d+ span\(s\) were not delivered", log))
    lost += sum(int(n) for n in re.findall(r"shipped 0 span\(s\) that .*? left \((\d+) not delivered\)", log))
    assert lost >= 200, log[-3000:]  # every request's server span, counted
    assert receiver.snapshot() == []


@pytest.mark.parametrize("lazy", [False, True])
def test_invalid_option_stops_startup_with_one_line(start_uwsgi, receiver, lazy):
    """A bad otel-* value stops uWSGI (also with lazy-apps, where workers load the app) with one
    line naming option, value and what is accepted, and no traceback of ours.  (With lazy-apps
    the master's shutdown may interrupt *other* workers mid-import: uWSGI prints their
    KeyboardInterrupt; that is documented.)"""
    extra = {"otel-exporter-otlp-compression": "brotli"}
    if lazy:
        extra["lazy-apps"] = "true"
    server = start_uwsgi("minimal.ini", extra=extra, wait=False)
    assert server.uwsgi.wait(30) is not None, "uWSGI kept running with a bad option"
    log = server.uwsgi.log()
    lines = [line for line in log.splitlines() if "otel-uwsgi:" in line]
    assert lines and set(lines) == {lines[0]}, lines
    assert "otel-exporter-otlp-compression" in lines[0] and "'brotli'" in lines[0] and "gzip, none" in lines[0]
    assert "ConfigError:" not in log  # no traceback of ours (an interrupted import may quote the name)
    if not lazy:
        assert "Traceback" not in log
        assert server.uwsgi.returncode != 0


def test_unknown_option_suggests_the_right_name(start_uwsgi, receiver):
    server = start_uwsgi("minimal.ini", extra={"otel-exporter-otlp-endpiont": "http://x:1"}, wait=False)
    assert server.uwsgi.wait(30) not in (None, 0)
    assert "did you mean otel-exporter-otlp-endpoint?" in server.uwsgi.log()


def test_flush_timeout_must_stay_below_worker_reload_mercy(start_uwsgi, receiver):
    server = start_uwsgi(
        "minimal.ini", extra={"otel-exit-flush-timeout": "10000", "worker-reload-mercy": "5"}, wait=False
    )
    assert server.uwsgi.wait(30) not in (None, 0)
    assert "must be below worker-reload-mercy (5 s)" in server.uwsgi.log()


def test_invalid_environment_variable_warns_and_serves(start_uwsgi, receiver):
    """An invalid OTEL_* variable is one warning; tracing goes on with the default."""
    server = start_uwsgi("minimal.ini", env={"OTEL_BSP_SCHEDULE_DELAY": "soon"})
    server.hammer("/", 5)
    server.stop()
    assert receiver.wait_for(lambda s: len(s) >= 5, 10)
    assert "ignoring invalid environment variable OTEL_BSP_SCHEDULE_DELAY='soon'" in server.uwsgi.log()
