"""Ini preparation and log parsing of the uWSGI harness, and the span verdict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from otel_uwsgi.tools.harness import REQUEST_LOG, parse_log, prepare_ini
from otel_uwsgi.tools.receiver import ReceivedSpan
from otel_uwsgi.tools.verdict import evaluate, render

ROOT = Path(__file__).resolve().parents[3]




def test_importing_outside_uwsgi_has_no_side_effects():
    """`import otel_uwsgi.auto` outside uWSGI does not crash and sets no provider."""
    code = (
        "import otel_uwsgi, otel_uwsgi.auto\n"
        "from opentelemetry import trace\n"
        "assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_prepare_ini_replaces_owned_keys_and_resolves_magic(tmp_path):
    ini = tmp_path / "app.ini"
    ini.write_text(
        "[uwsgi]\nhttp-socket = :80\nmodule = app\nchdir = %d\nheaders = a=b%%20c\n"
        "otel-exporter-otlp-endpoint = http://prod:4318\ndaemonize = /var/log/x\n[other]\nprocesses = 9\n"
    )
    text = prepare_ini(ini, {"http-socket": "127.0.0.1:5", "processes": "2"})
    assert "http-socket = 127.0.0.1:5" in text and ":80" not in text
    assert f"chdir = {tmp_path}/" in text and "a=b%%20c" in text
    assert "prod" not in text and "daemonize" not in text and "processes = 9" not in text


def test_parse_log_counts_requests_per_pid():
    log = (
        "spawned uWSGI worker 1 (pid: 10, cores: 1)\nspawned uWSGI worker 2 (pid: 11, cores: 1)\n"
        + REQUEST_LOG.replace("%(pid)", "10").replace("%(wid)", "1").replace("%(status)", "200").replace("%(uri)", "/")
        + "\nRespawned uWSGI worker 1 (new pid: 12)\n"
        "otel-uwsgi-req pid=12 wid=1 status=500 uri=/x\n"
    )
    served = parse_log(log)
    assert served.spawned == {10: 1, 11: 2, 12: 1}
    assert served.requests == {10: 1, 12: 1} and served.statuses == {200: 1, 500: 1}


def _span(pid, wid, instance):
    return ReceivedSpan("GET /", "SERVER", "t", "s", "", {}, {"process.pid": pid, "uwsgi.worker.id": wid,
                        "service.instance.id": instance}, "x", 0, ())


def test_verdict_ok_when_every_worker_delivers():
    served = parse_log("spawned uWSGI worker 1 (pid: 10, c\nspawned uWSGI worker 2 (pid: 11, c\n"
                       "otel-uwsgi-req pid=10 wid=1 status=200\notel-uwsgi-req pid=11 wid=2 status=200\n")
    report = evaluate(served, [_span(10, 1, "a"), _span(11, 2, "b")], expected_workers=2)
    assert report.ok and report.lost == 0 and "every worker" in render(report)


def test_verdict_names_silent_workers_and_lost_spans():
    served = parse_log("otel-uwsgi-req pid=10 wid=1 status=200\notel-uwsgi-req pid=10 wid=1 status=200\n"
                       "otel-uwsgi-req pid=11 wid=2 status=200\n")
    report = evaluate(served, [_span(10, 1, "a")], expected_workers=2)
    assert not report.ok
    assert report.reason.startswith("1 of 2 workers sent no spans (worker 2)")
    assert report.lost == 2 and any("2 of 3 requests have no server span" in p for p in report.problems)


def test_verdict_flags_shared_instance_ids():
    served = parse_log("otel-uwsgi-req pid=10 wid=1 status=200\notel-uwsgi-req pid=11 wid=2 status=200\n")
    report = evaluate(served, [_span(10, 1, "same"), _span(11, 2, "same")], expected_workers=2)
    assert not report.ok and "share one service.instance.id" in report.reason


def test_otel_uwsgis_own_warning_is_the_headline_of_a_failed_check():
    """A failed check leads with otel-uwsgi's own warning (the likely cause), with the user's ini
    path in place of the check's temporary copy; a passing check lists it as a note."""
    from otel_uwsgi.tools.verdict import explain

    log = (
        "spawned uWSGI worker 1 (pid: 11, cores: 1)\n"
        "otel-uwsgi: instrumented django\n"
        "otel-uwsgi: WARNING: Django was set up before otel_uwsgi.auto was imported "
        "(in /tmp/otel-uwsgi-check-x/uwsgi.ini)\n"
        "otel-uwsgi-req pid=11 wid=1 status=200 uri=/\n"
    )
    failed = evaluate(parse_log(log), [], 1)
    explained = explain(failed, log, renamed={"/tmp/otel-uwsgi-check-x/uwsgi.ini": "/srv/app/uwsgi.ini"})
    assert not explained.ok
    assert explained.reason.startswith("otel-uwsgi: WARNING: Django was set up")
    assert "/srv/app/uwsgi.ini" in explained.reason
    assert len(explained.problems) == len(failed.problems) + 1
    passed = explain(evaluate(parse_log(log), [_span(11, 1, "a")], 1), log)
    assert passed.ok and any("Django was set up" in note for note in passed.notes)


def test_a_uwsgi_that_did_not_start_is_explained_by_its_last_otel_uwsgi_line():
    from otel_uwsgi.tools.verdict import explain

    log = "otel-uwsgi: unknown option otel-servce-name in /tmp/c/uwsgi.ini; did you mean otel-service-name?\n"
    report = explain(evaluate(parse_log(log), [], 4), log, renamed={"/tmp/c/uwsgi.ini": "app.ini"}, started=False)
    assert not report.ok
    assert report.reason == "otel-uwsgi: unknown option otel-servce-name in app.ini; did you mean otel-service-name?"


def test_the_uwsgi_beside_the_interpreter_comes_first_then_path(tmp_path, monkeypatch):
    """A venv's uwsgi is found by a venv Python that is not activated (systemd units, CI scripts
    call /venv/bin/otel-uwsgi); then PATH; else one line that says what to do."""
    import os
    import sys

    import pytest

    from otel_uwsgi.tools.harness import UwsgiNotFound, find_uwsgi

    venv, elsewhere = tmp_path / "venv" / "bin", tmp_path / "elsewhere"
    venv.mkdir(parents=True)
    elsewhere.mkdir()
    for directory in (venv, elsewhere):
        (directory / "uwsgi").write_text("#!/bin/sh\n")
        (directory / "uwsgi").chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(venv / "python"))
    monkeypatch.setenv("PATH", str(elsewhere))
    assert find_uwsgi() == str(venv / "uwsgi")
    assert find_uwsgi(str(elsewhere / "uwsgi")) == str(elsewhere / "uwsgi")
    os.unlink(venv / "uwsgi")
    assert find_uwsgi() == str(elsewhere / "uwsgi")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(UwsgiNotFound) as raised:
        find_uwsgi()
    assert "--uwsgi PATH" in str(raised.value) and "\n" not in str(raised.value)
    with pytest.raises(UwsgiNotFound, match="no such executable"):
        find_uwsgi(str(tmp_path / "missing"))


def test_the_check_says_what_an_ini_without_die_on_term_does_in_a_container(tmp_path):
    from otel_uwsgi.tools.check import _service_notes
    from otel_uwsgi.tools.harness import SideJobs

    ini = tmp_path / "app.ini"
    ini.write_text("[uwsgi]\nmaster = true\nmodule = app\n")
    notes = _service_notes(str(ini), "http", SideJobs())
    assert any("die-on-term = true" in n and "docker stop" in n for n in notes)
    ini.write_text("[uwsgi]\nmaster = true\ndie-on-term = true\nmodule = app\n")
    assert not any("die-on-term" in n for n in _service_notes(str(ini), "http", SideJobs()))
