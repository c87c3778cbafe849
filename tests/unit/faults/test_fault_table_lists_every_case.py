"""The docs' fault table lists every case the fault suite measures."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_every_fault_case_has_a_row_in_the_docs():
    """A case added to tests/faults without a run that measured it fails here, naming the case."""
    cases = set()
    for path in (ROOT / "tests" / "faults").glob("test_*.py"):
        cases |= set(re.findall(r"""outcome\(\s*["']([a-z0-9][a-z0-9_.-]*)["']""", path.read_text()))
        cases |= set(re.findall(r"""\b(?:case|id)=["']([a-z0-9][a-z0-9_.-]*)["']""", path.read_text()))
    table = (ROOT / "docs" / "FAULTS.md").read_text() if (ROOT / "docs" / "FAULTS.md").exists() else ""
    missing = sorted(c for c in cases if f"`{c}`" not in table)
    assert not missing, f"run `python -m pytest tests/faults` to measure and document: {missing}"


def test_a_failing_case_does_not_keep_its_old_passing_row(tmp_path, monkeypatch):
    """A case whose test fails (whether or not it recorded an outcome first) is shown as failed, with
    the date, instead of the outcome an earlier run measured; other cases keep their rows, but for
    those whose test was removed."""
    from tests.faults import conftest as table

    old = {"group": "G", "expected": "e", "measured": "worked", "numbers": {"n": 1}, "date": "2026-01-01"}
    rows = [
        {**old, "case": "recorded-then-failed", "test": "tests/faults/test_x.py::test_a"},
        {**old, "case": "failed-before-recording", "test": "tests/faults/test_x.py::test_b"},
        {**old, "case": "not-run", "test": "tests/faults/test_x.py::test_c"},
    ]
    json_path, markdown = tmp_path / "faults.json", tmp_path / "FAULTS.md"
    json_path.write_text(json.dumps(rows))
    monkeypatch.setattr(table, "JSON", json_path)
    monkeypatch.setattr(table, "MARKDOWN", markdown)
    monkeypatch.setattr(table, "_measured", {"recorded-then-failed": {**rows[0], "measured": "new numbers"}})
    monkeypatch.setattr(table, "_failed", {"tests/faults/test_x.py::test_a", "tests/faults/test_x.py::test_b"})
    monkeypatch.setattr(table, "_test_exists", lambda node_id: node_id.startswith("tests/faults/test_x.py"))
    json_path.write_text(json.dumps([*rows, {**old, "case": "removed", "test": "tests/faults/test_gone.py::test_d"}]))
    table.pytest_sessionfinish(None)  # type: ignore[arg-type]
    written = {row["case"]: row for row in json.loads(json_path.read_text())}
    for case in ("recorded-then-failed", "failed-before-recording"):
        assert written[case]["failed"] is True and written[case]["measured"].startswith("FAILED")
        assert written[case]["date"] != "2026-01-01"
    assert written["not-run"]["measured"] == "worked" and "failed" not in written["not-run"]
    assert "removed" not in written  # the row of a test that no longer exists goes
    text = markdown.read_text()
    assert "worked (2026-01-01)" in text and text.count("FAILED") == 2 and "new numbers" not in text
