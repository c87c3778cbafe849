"""Every otel_uwsgi module or name, and every repository path, that the code, comments and docs
mention exists (issue 27): a move or rename that leaves a pointer behind fails here, naming the
file and the pointer."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUFFIXES = {".py", ".md", ".c", ".ini", ".toml", ".sh", ".txt"}
DOTTED = re.compile(r"\botel_uwsgi(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
PATH = re.compile(
    r"(?<![\w/.-])((?:otel_uwsgi|tests|docs|bench|ini|docker|\.ci)/[A-Za-z0-9_./-]*[A-Za-z0-9_])(?![\w.])"
)
#: Dotted names that are telemetry, not modules: metric names, tracer and instrumentation scope names.
TELEMETRY = re.compile(r"otel_uwsgi\.(spans|server|fast|probe|tests)(\.|$)")
#: Files whose paths are made up on purpose (fixtures of the fault table's own test).
FIXTURES = {"tests/unit/faults/test_fault_table_lists_every_case.py"}


def _files() -> list[Path]:
    out = []
    for path in ROOT.rglob("*"):
        parts = path.relative_to(ROOT).parts
        if not path.is_file() or any(p.startswith(".") and p != ".ci" for p in parts):
            continue
        if parts[0] in ("build", "dist") or any(p.endswith(".egg-info") or p == "__pycache__" for p in parts):
            continue
        dockerfile = path.name.startswith("Dockerfile") and not path.name.endswith(".dockerignore")
        if path.suffix in SUFFIXES or dockerfile or path == ROOT / ".ci" / "run":
            out.append(path)
    return out


def _resolves(name: str) -> bool:
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_every_mentioned_module_name_and_path_exists():
    stale = []
    for path in _files():
        text = path.read_text(errors="replace")
        where = str(path.relative_to(ROOT))
        for match in DOTTED.finditer(text):
            name = match.group(0)
            if not TELEMETRY.match(name) and not _resolves(name):
                stale.append(f"{where}: {name}")
        if where in FIXTURES:
            continue
        for match in PATH.finditer(text):
            if not (ROOT / match.group(1)).exists():
                stale.append(f"{where}: {match.group(1)}")
    assert not stale, "pointers to nothing:\n" + "\n".join(sorted(set(stale)))
