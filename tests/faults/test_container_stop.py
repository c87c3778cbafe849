"""``docker stop`` on real uWSGI: the master as PID 1 of its own PID namespace (what a container's
main process is), SIGTERM to it under load, and a SIGKILL after the grace period, as Docker and
Kubernetes do.  (The Docker harness needs images this machine cannot pull; ``unshare --pid`` gives
the same PID 1 semantics without them.)

With ``die-on-term = true`` the container stops within its grace period and nothing is lost.
Without it, uWSGI 2.0 takes SIGTERM as a brutal reload: the container outlives its grace period
and is SIGKILLed, and otel-uwsgi warned once at startup.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_uwsgi.runtime.preflight import CONTAINER_STOP
from otel_uwsgi.tools.harness import UwsgiServer, free_port, owned_overrides, prepare_ini

from ..conftest import INI, ROOT, Server, wait_until
from .test_brutal_stops import MIXED, PROBE, _busy_workers
from .test_lifecycle_matrix import CRASH_RE, HUNG_RE, Load, spans_by_pid

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("unshare") is None, reason="util-linux's unshare is not installed"),
]

GROUP = "Container stop"
#: The warning as logged (the log format puts its own "otel-uwsgi: WARNING: " first).
WARNING = CONTAINER_STOP.split(": ", 1)[1]
GRACE = 3.0  # seconds between SIGTERM and SIGKILL (docker stop -t 3)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


@pytest.fixture
def container(receiver, tmp_path) -> Iterator:
    """Start uWSGI as PID 1 of a new PID namespace; returns (server, host pid of its master)."""
    started: list[UwsgiServer] = []

    def start(extra: dict[str, str], marks: Path) -> tuple[Server, int]:
        port = free_port()
        overrides = owned_overrides(port, receiver.endpoint, str(tmp_path / "journal"))
        overrides.update({"processes": "2", "module": PROBE, "otel-log-level": "debug", **extra})
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env["OTEL_UWSGI_PROBE_DIR"] = str(marks)
        uwsgi = UwsgiServer(prepare_ini(INI / "minimal.ini", overrides), env=env, cwd=str(ROOT),
                            workdir=str(tmp_path / f"uwsgi-{len(started)}"))
        uwsgi.command = ["unshare", "--pid", "--fork", "--kill-child=SIGKILL", uwsgi.uwsgi]
        started.append(uwsgi.start())
        server = Server(uwsgi, port, 2)
        assert uwsgi.wait_workers(2, 30), uwsgi.log()[-3000:]
        assert wait_until(lambda: _children(uwsgi.pid), 10)
        master = _children(uwsgi.pid)[0]
        assert "spawned uWSGI master process (pid: 1)" in uwsgi.log(), uwsgi.log()[-2000:]

        def ready() -> bool:
            try:
                return server.get("/whoami", timeout=5)[0] == 200
            except OSError:
                return False

        assert wait_until(ready, 30), uwsgi.log()[-3000:]
        return server, master

    yield start
    for uwsgi in started:  # unshare's --kill-child takes the namespace down with it
        uwsgi.stop(signal.SIGKILL, kill_after=10)


def _docker_stop(server: Server, master: int) -> tuple[float, bool]:
    """SIGTERM to PID 1; SIGKILL after GRACE.  Returns (seconds, killed)."""
    started = time.monotonic()
    os.kill(master, signal.SIGTERM)
    if server.uwsgi.wait(GRACE) is not None:
        return time.monotonic() - started, False
    os.kill(master, signal.SIGKILL)
    assert server.uwsgi.wait(10) is not None
    return time.monotonic() - started, True


def test_container_stop_with_die_on_term_loses_nothing(container, receiver, outcome, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    server, master = container({"die-on-term": "true"}, marks)
    with Load(server, plans=MIXED) as load:
        assert wait_until(lambda: load.completed(None) >= 4 and len(_busy_workers(marks)) >= 2, 30)
        seconds, killed = _docker_stop(server, master)
    log = server.uwsgi.log()
    assert not killed, f"still running {GRACE} s after SIGTERM: {log[-2000:]}"
    assert WARNING not in log
    assert not CRASH_RE.search(log) and not HUNG_RE.search(log)
    served = server.uwsgi.served()
    pids = set(served.requests)
    receiver.wait_for(lambda s: sum(x.kind == "SERVER" and x.pid in pids for x in s) >= served.total, 15)
    got = spans_by_pid(receiver)
    lost = {pid: (n, got.get(pid, 0)) for pid, n in served.requests.items() if got.get(pid, 0) < n}
    assert not lost, f"pid: (served, spans) {lost}"
    outcome(
        "container-stop-die-on-term",
        group=GROUP,
        expected="docker stop (SIGTERM to uWSGI as PID 1, SIGKILL after a 3 s grace) with die-on-term and both "
        "workers busy: the container stops in time, no warning, every answered request's span arrives",
        measured=f"stopped {seconds:.2f} s after SIGTERM (no SIGKILL); {served.total} requests served, "
        f"{sum(got.get(p, 0) for p in pids)} server spans, 0 lost; no container warning",
        seconds=round(seconds, 2),
        served=served.total,
    )


def test_container_stop_without_die_on_term_warns(container, receiver, outcome, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    server, master = container({"die-on-term": "false"}, marks)
    log = server.uwsgi.log()
    assert log.count(WARNING) == 1, log[-3000:]
    with Load(server, plans=MIXED) as load:
        assert wait_until(lambda: load.completed(None) >= 4 and len(_busy_workers(marks)) >= 2, 30)
        before = set(server.uwsgi.served().spawned)
        seconds, killed = _docker_stop(server, master)
    log = server.uwsgi.log()
    assert killed, "uWSGI 2.0 without die-on-term stopped on SIGTERM: the warning would be wrong"
    assert not CRASH_RE.search(log) and not HUNG_RE.search(log)
    served = server.uwsgi.served()
    old = {pid: n for pid, n in served.requests.items() if pid in before}
    receiver.wait_for(lambda s: sum(x.kind == "SERVER" and x.pid in old for x in s) >= sum(old.values()), 15)
    got = spans_by_pid(receiver)
    lost_old = {pid: (n, got.get(pid, 0)) for pid, n in old.items() if got.get(pid, 0) < n}
    # The workers that SIGTERM replaced flushed (the stop guard); their replacements' queue died
    # with the SIGKILL: what the warning says.
    assert not lost_old, f"the reloaded workers lost spans: pid: (served, spans) {lost_old}"
    replacements = sum(n for pid, n in served.requests.items() if pid not in before)
    lost_new = replacements - sum(got.get(pid, 0) for pid in served.requests if pid not in before)
    outcome(
        "container-stop-without-die-on-term",
        group=GROUP,
        expected="docker stop without die-on-term on uWSGI 2.0: one startup warning naming die-on-term = true; "
        "SIGTERM reloads the workers instead of stopping, the container is SIGKILLed after its grace period",
        measured=f"warning logged once at startup; still running {GRACE:.0f} s after SIGTERM, SIGKILLed; the "
        f"{len(old)} reloaded workers lost 0 of {sum(old.values())} spans, their replacements lost {lost_new} "
        f"of {replacements} at the SIGKILL",
        old_served=sum(old.values()),
        replacements_served=replacements,
        replacements_lost=lost_new,
    )
