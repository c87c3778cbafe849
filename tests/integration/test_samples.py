"""Every sample ini is loaded and run by `otel-uwsgi check` (the README's first command)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ..conftest import INI, ROOT

pytestmark = pytest.mark.integration

SAMPLES = sorted(p.name for p in INI.glob("*.ini"))
NEEDS = {"django-mysql.ini": ["mysql"], "production.ini": ["mysql"], "django-postgres.ini": ["postgres", "redis"]}


def test_there_are_samples():
    expected = {"minimal.ini", "django-mysql.ini", "django-postgres.ini", "flask.ini", "production.ini", "strict.ini"}
    assert expected <= set(SAMPLES)


@pytest.mark.parametrize("name", SAMPLES)
def test_check_passes_on_sample(name, request):
    """`otel-uwsgi check ini/<name> --json` exits 0 with spans from every configured worker."""
    for service in NEEDS.get(name, []):
        request.getfixturevalue(service)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["COLLECTOR_TOKEN"] = "planted-secret-7777"
    if name == "strict.ini":
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:9"  # check's set-ph must win over it
    args = [sys.executable, "-m", "otel_uwsgi", "check", str(INI / name), "--json", "--requests", "60",
            "--timeout", "60", "--no-collector"]  # no collector at the samples' localhost:4318
    out = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert "planted-secret-7777" not in out.stdout + out.stderr
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["ok"] and report["lost"] == 0 and report["requests"] >= 60
    assert len({r["worker_id"] for r in report["rows"] if r["spans"]}) == report["expected_workers"] >= 4


def test_the_demo_shows_a_whole_trace(mysql, redis):
    """`otel-uwsgi demo` (the README's main command): /trace makes a DB span, a Redis span and an
    HTTP call to the demo's /downstream whose server span continues the same trace, from every
    worker; every answer is a 200."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    args = [sys.executable, "-m", "otel_uwsgi", "demo", "--json", "--requests", "80", "--timeout", "60"]
    out = subprocess.run(args, capture_output=True, text=True, env=env, cwd="/", timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["ok"] and report["lost"] == 0 and set(report["statuses"]) == {"200"}
    calls = report["outgoing_calls"]
    assert calls * 2 >= report["requests"] - 1 and report["continued_calls"] == calls
    totals = {kind: sum(row["children"][kind] for row in report["rows"]) for kind in ("db", "cache", "http")}
    assert totals["http"] == calls and totals["db"] >= calls and totals["cache"] >= calls, totals
    assert all(row["children"]["db"] for row in report["rows"] if row["requests"])
