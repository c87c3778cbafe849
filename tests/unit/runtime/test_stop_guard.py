"""The stop guard's C part (otel_uwsgi/runtime/_stop.c) in a real child process, without uWSGI:
libc's ``_exit`` stands in for uWSGI's ``end_me`` as the SIGINT handler (``_exit(2)``, so exit
status 2 says the saved handler ran).  The uWSGI runs are in tests/faults/test_stop_guard.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from otel_uwsgi.runtime import stop_guard

pytestmark = pytest.mark.skipif(not stop_guard.available(), reason="the stop guard's C extension is not built here")

CHILD = textwrap.dedent(
    """
    import ctypes, json, os, signal, sys, time
    from otel_uwsgi.runtime import stop_guard
    from otel_uwsgi.runtime.exit_flush import _Sigaction, exit_signals_blocked

    out, busy, flush_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
    libc = ctypes.CDLL(None)
    action = _Sigaction()
    action.handler = ctypes.cast(libc._exit, ctypes.c_void_p).value  # end_me's stand-in: _exit(signum)
    assert libc.sigaction(int(signal.SIGINT), ctypes.byref(action), None) == 0

    def flush():
        time.sleep(flush_s)
        with open(out, "w") as f:
            json.dump(stop_guard.status(), f)

    with exit_signals_blocked():
        assert stop_guard.start(flush, exit_wait_ms=2000)
    print("guarded", stop_guard.guard(), flush=True)
    if busy == "python":
        while True:
            pass
    elif busy == "c-call":
        sum(range(10**11))
    elif busy == "fork":
        pid = os.fork()
        if pid == 0:
            print("child", os.getpid(), flush=True)
            time.sleep(30)
            os._exit(0)
        time.sleep(30)
    """
)


def _run(tmp_path, busy: str, flush_s: float = 0.0, signals: int = 1):
    out = tmp_path / "status.json"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(out), busy, str(flush_s)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = child.stdout.readline()
        assert line.startswith("guarded"), (line, child.stderr.read() if child.poll() is not None else "")
        assert int(line.split()[1]) == 1  # SIGINT only: SIGTERM has the default action here
        time.sleep(0.05)  # the main thread is in its busy loop by now; the guard works either way
        started = time.monotonic()
        for _ in range(signals):
            child.send_signal(signal.SIGINT)
            time.sleep(0.1)
        status = child.wait(15)
        took = time.monotonic() - started
        return status, took, (json.loads(out.read_text()) if out.exists() else None), child.stderr.read()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(5)


def test_a_stop_signal_flushes_on_the_stop_thread_with_the_main_thread_parked(tmp_path):
    status, took, seen, _ = _run(tmp_path, "python", flush_s=0.2)
    assert status == 2  # uWSGI's handler (here _exit(2)) ran, after the flush
    assert seen is not None, "the flush did not run"
    assert seen["stage"] == "stopping" and seen["parked"] is True and seen["signal"] == signal.SIGINT
    assert 0.2 <= took < 5


def test_a_second_signal_during_the_flush_changes_nothing(tmp_path):
    status, _, seen, _ = _run(tmp_path, "python", flush_s=0.6, signals=3)
    assert status == 2
    assert seen is not None and seen["stage"] == "stopping", "a second signal cut the flush short"


def test_a_main_thread_stuck_in_a_c_call_is_ended_by_the_watchdog(tmp_path):
    status, took, seen, stderr = _run(tmp_path, "c-call")
    assert status == 2
    assert "the exit flush could not run within 2000 ms" in stderr
    assert 1.9 <= took < 6
    assert seen is None  # the stop thread never got the interpreter


def test_a_process_forked_from_the_worker_gets_the_stock_handler(tmp_path):
    out = tmp_path / "status.json"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(out), "fork", "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().startswith("guarded")
        grandchild = int(child.stdout.readline().split()[1])
        os.kill(grandchild, signal.SIGINT)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and os.path.exists(f"/proc/{grandchild}") and _state(grandchild) != "Z":
            time.sleep(0.02)
        assert _state(grandchild) in ("Z", None), "the forked process ignored SIGINT"
        assert not out.exists()
    finally:
        child.kill()
        child.wait(5)


def _state(pid: int):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None
