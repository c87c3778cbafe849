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
NEEDS_MYSQL = {"django-mysql.ini", "production.ini"}


def test_there_are_samples():
    assert {"minimal.ini", "django-mysql.ini", "production.ini", "demo.ini", "strict.ini"} <= set(SAMPLES)


@pytest.mark.parametrize("name", SAMPLES)
def test_check_passes_on_sample(name, request):
    """`otel-uwsgi check ini/<name> --json` exits 0 with spans from every configured worker."""
    if name in NEEDS_MYSQL:
        request.getfixturevalue("mysql")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["COLLECTOR_TOKEN"] = "planted-secret-7777"
    if name == "strict.ini":
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:9"  # check's set-ph must win over it
    args = [sys.executable, "-m", "otel_uwsgi", "check", str(INI / name), "--json", "--requests", "60",
            "--timeout", "60"]
    out = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert "planted-secret-7777" not in out.stdout + out.stderr
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["ok"] and report["lost"] == 0 and report["requests"] >= 60
    assert len({r["worker_id"] for r in report["rows"] if r["spans"]}) == report["expected_workers"] >= 4
