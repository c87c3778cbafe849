"""`otel-uwsgi check` tells the truth (issue 30): it tests the collector the ini names, leads a
failure with its cause, speaks the uwsgi protocol to a `socket =`, and starts nothing but the app.
Real uWSGI, real receivers, the command as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from otel_uwsgi.tools.harness import free_port
from otel_uwsgi.tools.receiver import Fault, Receiver

from ..conftest import ROOT

pytestmark = pytest.mark.integration

SECRET = "planted-header-5150"


def _ini(tmp_path: Path, endpoint: str, *lines: str, listen: str = "") -> Path:
    ini = tmp_path / "app.ini"
    ini.write_text(
        "[uwsgi]\nmaster = true\nprocesses = 2\nneed-app = true\ndie-on-term = true\n"
        f"{listen or f'http-socket = 127.0.0.1:{free_port()}'}\n"
        f"module = otel_uwsgi.demo.plain:application\npythonpath = {ROOT}\n"
        f"otel-service-name = truth\notel-exporter-otlp-endpoint = {endpoint}\n"
        f"otel-exporter-otlp-headers = x-api-key={SECRET}\n" + "".join(f"{line}\n" for line in lines)
    )
    return ini


def _check(ini: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    command = [sys.executable, "-m", "otel_uwsgi", "check", str(ini), "--json", "--requests", "20",
               "--timeout", "40", *args]
    out = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert SECRET not in out.stdout + out.stderr, "a header value was printed"
    return out, json.loads(out.stdout)


def test_a_dead_collector_fails_the_check_naming_the_endpoint_without_its_credentials(tmp_path):
    port = free_port()
    out, report = _check(_ini(tmp_path, f"http://user:tok-3141@127.0.0.1:{port}"))
    assert out.returncode == 1, out.stdout
    assert report["reason"].startswith(
        f"collector: traces to http://***@127.0.0.1:{port}/v1/traces: nothing listening (connection refused)"
    ), report["reason"]
    assert "--no-collector" in report["reason"] and "tok-3141" not in out.stdout + out.stderr
    assert report["spans"] >= report["requests"] >= 20  # the run itself was fine: only the collector failed


def test_no_collector_skips_the_collector(tmp_path):
    out, report = _check(_ini(tmp_path, f"http://127.0.0.1:{free_port()}"), "--no-collector")
    assert out.returncode == 0, out.stdout
    assert report["ok"] and report["collector"] == []
    assert "note: your collector was not tested (--no-collector)" in report["notes"]


def test_a_healthy_collector_passes_and_got_the_probe_with_the_inis_headers(tmp_path):
    with Receiver() as collector:
        out, report = _check(_ini(tmp_path, collector.endpoint))
        probe_spans = [s for s in collector.snapshot() if s.name == "otel-uwsgi check: collector probe"]
        headers = dict(collector.last_headers)
    assert out.returncode == 0, out.stdout
    assert [(p["signal"], p["ok"], p["answer"]) for p in report["collector"]] == [
        ("traces", True, "accepted (HTTP 200 OK)")
    ]
    assert len(probe_spans) == 1 and probe_spans[0].resource["service.name"] == "truth"
    assert headers["x-api-key"] == SECRET  # sent to the collector, never printed (_check)


def test_a_collector_answering_401_fails_the_check_saying_check_the_headers(tmp_path):
    with Receiver() as collector:
        collector.fault = Fault(status=401)
        endpoint = collector.endpoint
        out, report = _check(_ini(tmp_path, endpoint))
        refused = collector.stats.faulted
    assert out.returncode == 1, out.stdout
    assert report["reason"].startswith(f"collector: traces to {endpoint}/v1/traces: refused: HTTP 401")
    assert "check the headers" in report["reason"] and refused == 1


def test_an_apps_import_error_is_the_headline(tmp_path):
    (tmp_path / "broken_app.py").write_text("import otel_uwsgi.auto  # noqa\nimport flask_is_not_installed_here\n")
    ini = _ini(tmp_path, "http://127.0.0.1:9", f"pythonpath = {tmp_path}")
    ini.write_text(ini.read_text().replace("module = otel_uwsgi.demo.plain:application", "module = broken_app"))
    out, report = _check(ini, "--no-collector")
    assert out.returncode == 1
    assert report["reason"] == (
        f"ModuleNotFoundError: No module named 'flask_is_not_installed_here' (at {tmp_path / 'broken_app.py'}:2)"
    ), report["problems"]


def test_a_uwsgi_socket_is_tested_over_the_uwsgi_protocol_and_nothing_else_is_started(tmp_path):
    """A production-like ini behind nginx: its daemons, cron job, mule, spooler and hooks never run
    (each would touch a file), and the note names them; requests go over the uwsgi protocol."""
    ran = tmp_path / "ran"
    ran.mkdir()
    (tmp_path / "mule.py").write_text(f"open({str(ran / 'mule')!r}, 'w').close()\n")
    (tmp_path / "spool").mkdir()
    ini = _ini(
        tmp_path, "http://127.0.0.1:9",
        f"attach-daemon = touch {ran / 'daemon'}", f"smart-attach-daemon = {tmp_path / 'd.pid'} touch {ran / 'smart'}",
        f"cron = -1 -1 -1 -1 -1 touch {ran / 'cron'}", f"mule = {tmp_path / 'mule.py'}",
        f"exec-asap = touch {ran / 'exec'}", f"hook-asap = exec:touch {ran / 'hook'}",
        f"spooler = {tmp_path / 'spool'}", "cache2 = name=c,items=10,store=" + str(ran / "cache"),
        listen=f"socket = {tmp_path / 'app.sock'}",
    )
    out, report = _check(ini, "--no-collector")
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    target = report["target"]
    assert target.startswith("testing the uwsgi protocol on 127.0.0.1:") and target.endswith("as nginx would")
    assert report["spans"] >= report["requests"] >= 20 and set(report["statuses"]) == {"200"}
    assert sorted(p.name for p in ran.iterdir()) == []
    assert not (tmp_path / "app.sock").exists()
    [note] = [n for n in report["notes"] if n.startswith("note: not started by this check")]
    for key in ("attach-daemon", "smart-attach-daemon", "cron", "mule", "exec-asap", "hook-asap", "spooler", "cache2"):
        assert key in note, note
