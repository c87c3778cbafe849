"""`otel-uwsgi demo` on whatever is installed (issue 30, item 4): Django, or Flask where Django is
not installed, or a plain WSGI app on SQLite with urllib where nothing else is; it says which at the
top and draws one whole `/trace` trace as a tree (server, DB, cache, HTTP client, and the downstream
server span in the same trace id) before the per-worker table.  `otel-uwsgi check --trace` draws the
same for an app of one's own.  "Not installed" is a sitecustomize that blocks the modules, in the
command and in uWSGI's workers alike (they inherit PYTHONPATH)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass

import pytest

from ..conftest import INI, ROOT

pytestmark = pytest.mark.integration

_BLOCKER = """import os, sys
for name in os.environ.get("OTEL_UWSGI_TEST_BLOCK", "").split(","):
    if name:
        sys.modules[name] = None  # import fails, importlib.util.find_spec finds nothing
"""
_NOTHING_BUT_THE_STANDARD = (
    "django,flask,MySQLdb,psycopg,psycopg2,redis,opentelemetry.instrumentation.requests,"
    "opentelemetry.instrumentation.urllib3"
)
#: stack -> (modules blocked, the demo's first line, the DB system, whether Redis is the cache)
STACKS = {
    "django": ("", "demo: Django + MySQL + Redis + requests", "mysql", True),
    "flask": ("django", "demo: Flask + MySQL + Redis + requests", "mysql", True),
    "plain": (_NOTHING_BUT_THE_STANDARD, "demo: plain WSGI + SQLite + urllib", "sqlite", False),
}


@dataclass
class Row:
    depth: int
    name: str
    kind: str
    pid: int


def _run(args: list[str], tmp_path, block: str = "") -> subprocess.CompletedProcess:
    (tmp_path / "sitecustomize.py").write_text(_BLOCKER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH", str(ROOT))) if p)
    env["OTEL_UWSGI_TEST_BLOCK"] = block
    env["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run([sys.executable, "-m", "otel_uwsgi", *args], capture_output=True, text=True, env=env,
                          cwd="/", timeout=150)


def _trees(stdout: str) -> list[tuple[str, list[Row]]]:
    """Each drawn trace: its trace id and its rows (depth from the tree drawn left of the name)."""
    trees: list[tuple[str, list[Row]]] = []
    lines = stdout.splitlines()
    for i, line in enumerate(lines):
        found = re.match(r"trace ([0-9a-f]{32}): ", line)
        if not found:
            continue
        rows = []
        for row in lines[i + 2 :]:
            if not row.strip():
                break
            label, rest = row[:36], row[36:].split()
            tree = re.match(r"(?:[├└│ ][─ ] )*", label).group(0)
            rows.append(Row(len(tree) // 3, label[len(tree) :].rstrip(), rest[0], int(rest[2])))
        trees.append((found.group(1), rows))
    return trees


@pytest.mark.parametrize("name", STACKS)
def test_the_demo_runs_the_installed_stack_and_draws_a_whole_trace(name, tmp_path, mysql, redis):
    block, first_line, db, cached = STACKS[name]
    out = _run(["demo", "--requests", "40", "--timeout", "90"], tmp_path, block)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines()[0] == first_line, out.stdout  # said by the app uWSGI loaded
    assert "running: 4/4 workers served" in out.stderr and "received" not in out.stderr  # the live line
    (trace_id, rows), *others = _trees(out.stdout)
    assert not others, out.stdout  # one route: /downstream joined /trace's trace
    root, *children = rows
    assert (root.depth, root.kind) == (0, "SERVER") and "trace" in root.name, out.stdout
    calls = [i for i, r in enumerate(rows) if r.depth == 1 and r.kind == "CLIENT" and r.name.endswith("/downstream")]
    assert len(calls) == 1, out.stdout
    downstream = rows[calls[0] + 1]  # the call's child: the server span of the worker that answered it
    assert (downstream.depth, downstream.kind) == (2, "SERVER") and "downstream" in downstream.name, out.stdout
    systems = [r.name.split()[-1] for r in children if r.depth == 1 and r.kind == "CLIENT" and r is not rows[calls[0]]]
    assert db in systems and ("redis" in systems) == cached, out.stdout
    assert all(r.pid == root.pid for r in rows if r.depth == 1)
    table = out.stdout.index("worker      pid")
    assert out.stdout.index(trace_id) < table and "OK: every worker delivered spans" in out.stdout[table:]


def test_check_trace_draws_the_users_app(tmp_path):
    """`otel-uwsgi check flask.ini --trace --path /call`: GET /call calls the app's own /whoami (with
    threads, as a worker waits for the request it calls)."""
    ini = tmp_path / "flask.ini"
    ini.write_text((INI / "flask.ini").read_text() + "threads = 4\n")
    out = _run(["check", str(ini), "--trace", "--no-collector", "--path", "/call", "--requests", "30"], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert not out.stdout.startswith("demo:")
    [(_, rows)] = _trees(out.stdout)
    assert [(r.depth, r.kind) for r in rows] == [(0, "SERVER"), (1, "CLIENT"), (2, "SERVER")], out.stdout
    assert rows[0].name == "GET /call" and rows[2].name == "GET /whoami"
    assert out.stdout.index("GET /whoami") < out.stdout.index("worker      pid")
