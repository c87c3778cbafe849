"""`otel-uwsgi check` as a user runs it: beside a running service started from the same ini it
touches nothing of that service; a configuration error is the headline with the user's ini path;
an ini that serves the uwsgi protocol is tested over the uwsgi protocol and says so first."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from otel_uwsgi.tools.harness import UwsgiServer, free_port

from ..conftest import ROOT, wait_until

pytestmark = pytest.mark.integration


def _check(ini: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    command = [sys.executable, "-m", "otel_uwsgi", "check", str(ini), "--json", "--requests", "20", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)


def _service_ini(tmp_path: Path, sock: Path, pidfile: Path, fifo: Path, stats: Path, spool: Path) -> Path:
    ini = tmp_path / "service.ini"
    ini.write_text(
        "[uwsgi]\n"
        "master = true\nprocesses = 2\nneed-app = true\nvacuum = true\ndie-on-term = true\n"
        f"socket = {sock}\npidfile = {pidfile}\nmaster-fifo = {fifo}\nstats = {stats}\nspooler = {spool}\n"
        "module = otel_uwsgi.demo.plain:application\n"
        f"pythonpath = {ROOT}\n"
        "otel-service-name = service-under-check\n"
        "otel-exporter-otlp-endpoint = http://127.0.0.1:9\n"
    )
    return ini


def test_check_leaves_a_running_service_alone(tmp_path):
    """The service's pidfile, master FIFO, stats socket, uwsgi socket and spool directory are its
    own before, during and after a check of the same ini; the service still stops through its FIFO."""
    run = tmp_path / "run"
    run.mkdir()
    spool = run / "spool"
    spool.mkdir()
    sock, pidfile, fifo, stats = run / "app.sock", run / "app.pid", run / "master.fifo", run / "stats.sock"
    ini = _service_ini(tmp_path, sock, pidfile, fifo, stats, spool)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    service = UwsgiServer(ini.read_text(), env=env, cwd=str(ROOT), workdir=str(tmp_path / "service")).start()
    try:
        assert wait_until(lambda: pidfile.exists() and fifo.exists() and sock.exists() and stats.exists(), 30)
        assert int(pidfile.read_text()) == service.pid
        before = {p: p.stat().st_ino for p in (sock, fifo, stats)}

        out = _check(ini, "--no-collector")
        report = json.loads(out.stdout)
        assert out.returncode == 0, out.stdout + out.stderr
        assert report["target"].startswith("testing the uwsgi protocol on 127.0.0.1:"), report["target"]
        assert any("master-fifo" in note and "pidfile" in note for note in report["notes"]), report["notes"]
        assert any(n.startswith("note: not started by this check") and "spooler" in n for n in report["notes"])

        assert service.alive() and int(pidfile.read_text()) == service.pid
        assert {p: p.stat().st_ino for p in (sock, fifo, stats)} == before, "a service file was replaced"
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(sock))  # still the service's uwsgi socket
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # the service still reads its FIFO
        try:
            os.write(fd, b"q")
        finally:
            os.close(fd)
        assert service.wait(30) is not None, "the service did not stop through its master FIFO"
    finally:
        service.stop()


def test_a_configuration_error_is_the_headline_with_the_users_ini(tmp_path):
    """A misspelt option stops uWSGI; the report's reason is otel-uwsgi's own line, naming the
    user's ini (not the check's temporary copy) and the option it probably meant."""
    ini = tmp_path / "app.ini"
    ini.write_text(
        "[uwsgi]\nmaster = true\nprocesses = 2\nneed-app = true\n"
        f"http-socket = 127.0.0.1:{free_port()}\nmodule = otel_uwsgi.demo.plain:application\n"
        f"pythonpath = {ROOT}\notel-servce-name = typo\n"
    )
    started = time.monotonic()
    out = _check(ini, "--timeout", "20")
    assert out.returncode == 1 and time.monotonic() - started < 20
    report = json.loads(out.stdout)
    assert report["reason"].startswith("otel-uwsgi: unknown option otel-servce-name in ")
    assert str(ini) in report["reason"] and "did you mean otel-service-name?" in report["reason"]
    assert "otel-uwsgi-check-" not in out.stdout  # the temporary copy's path is not shown


def test_check_called_by_path_without_uwsgi_on_path_finds_the_one_beside_it():
    """`/venv/bin/otel-uwsgi check ...` with the venv not activated (PATH without it): the uwsgi
    installed beside that Python runs, no FileNotFoundError."""
    script = Path(sys.executable).parent / "otel-uwsgi"
    if not script.exists():
        pytest.skip(f"no otel-uwsgi script beside {sys.executable}")
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}
    command = [str(script), "check", str(ROOT / "ini" / "minimal.ini"), "--json", "--requests", "20", "--no-collector"]
    out = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["ok"]
