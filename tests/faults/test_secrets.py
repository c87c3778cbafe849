"""Secrets: an exporter header value (the collector token) reaches the collector and nothing
else.  A unique token is planted in ``otel-exporter-otlp-headers`` (ini) and in
``OTEL_EXPORTER_OTLP_HEADERS`` (environment); uWSGI runs at debug log level, healthy, with bad
configuration, against a dead and a refusing collector, and ``otel-uwsgi check`` runs (text,
``--json``, failing); every byte produced is searched for the tokens.  The embedded receiver of
``otel-uwsgi check`` listens on 127.0.0.1 only.  The Docker harness image is searched too, when
a Docker engine and the image exist."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from otel_uwsgi.tools.harness import free_port
from otel_uwsgi.tools.receiver import Fault

from ..conftest import INI, ROOT, wait_until

pytestmark = pytest.mark.integration

GROUP = "Secrets"


def _tokens() -> tuple[str, str]:
    return f"ini-secret-{uuid.uuid4().hex}", f"env-secret-{uuid.uuid4().hex}"


def _files_with(root: Path, needles: tuple[str, ...], skip_inputs: bool = True) -> list[str]:
    """Files under ``root`` that contain a needle; the ini files the test wrote (which hold the
    token because the user's configuration does) are the inputs, not output."""
    hits = []
    for path in root.rglob("*"):
        if not path.is_file() or (skip_inputs and path.name.endswith(".ini")):
            continue
        data = path.read_bytes()
        if any(n.encode() in data for n in needles):
            hits.append(str(path))
    return hits


def test_header_values_reach_the_collector_and_nothing_else(start_uwsgi, receiver, outcome, tmp_path):
    ini_token, env_token = _tokens()
    needles = (ini_token, env_token)
    debug = {"otel-log-level": "debug"}
    logs: dict[str, str] = {}
    env = {"OTEL_EXPORTER_OTLP_HEADERS": f"x-env-token={env_token}"}

    # 1. ini and environment both set: the ini wins (and the environment's header is not merged in).
    server = start_uwsgi(
        "minimal.ini", workers=2, env=env,
        extra={**debug, "otel-exporter-otlp-headers": f"authorization=Bearer%%20{ini_token}"},
    )
    server.hammer("/", 10)
    server.stop()
    assert receiver.wait_for(lambda s: len(s) >= 10, 10)
    assert receiver.last_headers.get("authorization") == f"Bearer {ini_token}"
    assert "x-env-token" not in receiver.last_headers
    logs["ini+env"] = server.uwsgi.log()

    # 2. environment only: its header is used.
    before = receiver.stats.requests
    server = start_uwsgi("minimal.ini", workers=2, env=env, extra=debug)
    server.hammer("/", 10)
    server.stop()
    assert wait_until(lambda: receiver.stats.requests > before, 10)
    assert receiver.last_headers.get("x-env-token") == env_token
    logs["env"] = server.uwsgi.log()

    # 3. bad configuration: an invalid headers value, a misspelled key, and another bad option.
    bad_configs = {
        "bad-headers": {"otel-exporter-otlp-headers": f"authorization=Bearer%%20{ini_token},bad header={ini_token}"},
        "bad-header-newline": {"otel-exporter-otlp-headers": f"authorization={ini_token}%%0A"},
        "misspelled-key": {"otel-exporter-otlp-header": f"authorization={ini_token}"},
        "other-bad-option": {
            "otel-exporter-otlp-headers": f"authorization={ini_token}",
            "otel-exporter-otlp-compression": "brotli",
        },
    }
    for name, extra in bad_configs.items():
        server = start_uwsgi("minimal.ini", workers=2, env=env, extra={**debug, **extra}, wait=False)
        assert server.uwsgi.wait(30) not in (None, 0), f"{name}: uWSGI kept running"
        logs[name] = server.uwsgi.log()
        assert "otel-uwsgi:" in logs[name]
    # ... and an invalid environment value (a warning; tracing goes on with no headers).
    server = start_uwsgi("minimal.ini", workers=2, env={"OTEL_EXPORTER_OTLP_HEADERS": f"bad header={env_token}"},
                         extra=debug)
    server.hammer("/", 5)
    server.stop()
    logs["bad-env"] = server.uwsgi.log()
    assert "ignoring invalid environment variable OTEL_EXPORTER_OTLP_HEADERS" in logs["bad-env"]

    # 4. a dead collector and a refusing one (401), at debug level: the export errors are logged.
    dead = f"http://127.0.0.1:{free_port()}"
    server = start_uwsgi(
        "minimal.ini", workers=2, env=env,
        extra={**debug, "otel-exporter-otlp-endpoint": dead, "otel-exit-flush-timeout": "1500",
               "otel-exporter-otlp-headers": f"authorization={ini_token}"},
    )
    server.hammer("/", 10)
    server.stop()
    logs["dead-collector"] = server.uwsgi.log()
    assert "gave up flushing spans" in logs["dead-collector"] or "not delivered" in logs["dead-collector"]
    receiver.fault = Fault(status=401)
    server = start_uwsgi(
        "minimal.ini", workers=2, env=env,
        extra={**debug, "otel-bsp-schedule-delay": "100", "otel-exporter-otlp-headers": f"authorization={ini_token}"},
    )
    server.hammer("/", 10)
    assert wait_until(lambda: receiver.stats.errors > 0 or "401" in server.uwsgi.log(), 15)
    server.stop()
    receiver.fault = Fault()
    logs["collector-401"] = server.uwsgi.log()

    leaks = {name: [n for n in needles if n in text] for name, text in logs.items()}
    leaks = {k: v for k, v in leaks.items() if v}
    files = _files_with(tmp_path, needles)
    assert not leaks, f"token in uWSGI logs: {leaks}"
    assert not files, f"token in files: {files}"
    outcome(
        "secrets-uwsgi-logs",
        group=GROUP,
        expected="header values from the ini and OTEL_EXPORTER_OTLP_HEADERS reach the collector and appear "
        "in no log (debug level, bad configuration, dead and refusing collector) and no file",
        measured=f"{len(logs)} uWSGI runs at debug level ({sum(len(t) for t in logs.values()) // 1024} KB of log): "
        "no token; the receiver got the ini token (and the environment's when the ini had none)",
        runs=len(logs),
        log_kb=sum(len(t) for t in logs.values()) // 1024,
    )


def _check(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "otel_uwsgi", "check", *args],
        env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=timeout,
    )


def test_otel_uwsgi_check_never_prints_the_token(outcome, tmp_path):
    """``otel-uwsgi check`` (report, --json, --show-log, a failing ini) prints no header value and
    leaves no file holding one."""
    ini_token, env_token = _tokens()
    needles = (ini_token, env_token)
    source = (INI / "minimal.ini").read_text()
    good = tmp_path / "good.ini"
    good.write_text(
        source + f"otel-exporter-otlp-headers = authorization=Bearer%%20{ini_token}\notel-log-level = debug\n"
        "processes = 2\n"
    )
    bad = tmp_path / "bad.ini"
    bad.write_text(source + f"otel-exporter-otlp-headers = authorization={ini_token},bad header=x\nprocesses = 2\n")
    checktmp = tmp_path / "checktmp"
    checktmp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({"OTEL_EXPORTER_OTLP_HEADERS": f"x-env-token={env_token}", "TMPDIR": str(checktmp)})
    runs = {
        "report": _check([str(good), "--requests", "20", "--show-log", "--no-collector"], env),
        "json": _check([str(good), "--requests", "20", "--json", "--no-collector"], env),
        "failing": _check([str(bad), "--requests", "20", "--timeout", "20"], env),
    }
    assert runs["report"].returncode == 0, runs["report"].stdout + runs["report"].stderr[-2000:]
    assert json.loads(runs["json"].stdout)["ok"] is True
    assert runs["failing"].returncode != 0
    assert "otel-exporter-otlp-headers" in runs["failing"].stdout + runs["failing"].stderr
    leaks = [name for name, r in runs.items() if any(n in r.stdout + r.stderr for n in needles)]
    files = _files_with(checktmp, needles, skip_inputs=False)
    assert not leaks, f"token printed by check: {leaks}"
    assert not files, f"token left in files by check: {files}"
    left = sorted(str(p.relative_to(checktmp)) for p in checktmp.rglob("*"))
    outcome(
        "secrets-check-output",
        group=GROUP,
        expected="otel-uwsgi check (report with --show-log, --json, a failing ini) prints no header value and "
        "leaves no file holding one",
        measured=f"3 runs, {sum(len(r.stdout) + len(r.stderr) for r in runs.values()) // 1024} KB of output: no "
        f"token; {len(left)} file(s) left in its temporary directory",
        files_left=len(left),
    )


def _listening(pids: set[int]) -> set[str]:
    """``host:port`` of the TCP sockets in LISTEN state owned by ``pids``."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:
                continue
            host_hex, port_hex = fields[1].split(":")
            if width == 8:
                host = ".".join(str(int(host_hex[i : i + 2], 16)) for i in (6, 4, 2, 0))
            else:
                host = "::1" if host_hex == "0" * 24 + "01000000" else ("::" if set(host_hex) == {"0"} else host_hex)
            found.add(f"{host}:{int(port_hex, 16)}")
    return found


def _descendants(pid: int) -> set[int]:
    out = {pid}
    for child in Path(f"/proc/{pid}/task").glob("*/children"):
        for c in child.read_text().split():
            out |= _descendants(int(c))
    return out


def test_check_receiver_listens_on_loopback_only(outcome, tmp_path):
    """While ``otel-uwsgi check`` runs, every listening socket of it and of the uWSGI it started
    is bound to 127.0.0.1."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["TMPDIR"] = str(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_uwsgi", "check", str(INI / "minimal.ini"), "--requests", "300", "--no-collector"],
        env=env, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    seen: set[str] = set()

    def both_listening() -> bool:  # the receiver and uWSGI's socket
        seen.update(_listening(_descendants(process.pid)))
        return len({s.rsplit(":", 1)[1] for s in seen}) >= 2

    try:
        wait_until(both_listening, 60, alive=lambda: process.poll() is None)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    assert process.returncode == 0, out + err[-2000:]
    assert len(seen) >= 2, seen
    assert all(s.rsplit(":", 1)[0] == "127.0.0.1" for s in seen), seen
    outcome(
        "secrets-check-receiver-loopback",
        group=GROUP,
        expected="otel-uwsgi check's embedded receiver (and the uWSGI it starts) listen on 127.0.0.1 only",
        measured=f"{len(seen)} listening sockets seen during the run (the receiver's, uWSGI's): all on "
        f"{', '.join(sorted({s.rsplit(':', 1)[0] for s in seen}))}",
    )


def _docker() -> str:
    for client in ("/usr/bin/docker", shutil.which("docker") or ""):
        if client and os.access(client, os.X_OK):
            return client
    return ""


def test_harness_image_layers_hold_no_token(outcome, tmp_path):
    """``docker save`` of the harness image (every layer, config and history) holds no header
    token of this suite, no exporter header value from this environment, and no header-like
    variable in its config.  Skipped without a Docker engine or without the image (nothing is
    built here: docker/harness builds it)."""
    expected = "the Docker harness image holds no header token and no header-like variable"
    client = _docker()
    image = os.environ.get("OTEL_UWSGI_APP_IMAGE", "otel-uwsgi-harness:latest")
    reason = ""
    if not client or subprocess.run([client, "info"], capture_output=True, timeout=30).returncode != 0:
        reason = "no Docker engine answers `docker info` (start one with docker/dockerd.sh start)"
    elif subprocess.run([client, "image", "inspect", image], capture_output=True, timeout=30).returncode != 0:
        reason = f"the harness image {image} does not exist (docker/harness builds it)"
    if reason:
        outcome("secrets-harness-image", group=GROUP, expected=expected, measured=f"not measured: {reason}")
        pytest.skip(reason)
    needles = [*_tokens()]
    for key, value in os.environ.items():
        if key.startswith("OTEL_EXPORTER_OTLP") and key.endswith("HEADERS"):
            needles += [v.split("=", 1)[1] for v in value.split(",") if "=" in v and len(v.split("=", 1)[1]) >= 8]
    tar = tmp_path / "image.tar"
    subprocess.run([client, "save", "-o", str(tar), image], check=True, timeout=600)
    data = tar.read_bytes()
    hits = [n for n in needles if n.encode() in data]
    config = json.loads(subprocess.run([client, "image", "inspect", image], capture_output=True, text=True,
                                       check=True).stdout)[0]["Config"]
    risky = [e.split("=", 1)[0] for e in config.get("Env") or [] if re.search(r"HEADERS|TOKEN|SECRET|PASSWORD", e)]
    assert not hits, f"token found in {image}"
    assert not risky, f"header-like variables baked into {image}: {risky}"
    outcome(
        "secrets-harness-image",
        group=GROUP,
        expected=expected,
        measured=f"docker save of {image}: {len(data) >> 20} MB searched for {len(needles)} value(s): none found; "
        "no header-like variable in its config",
    )
