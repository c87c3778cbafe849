"""The docs' fault table lists every case the fault suite measures."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_fault_case_has_a_row_in_the_docs():
    """A case added to tests/faults without a run that measured it fails here, naming the case."""
    cases = set()
    for path in (ROOT / "tests" / "faults").glob("test_*.py"):
        cases |= set(re.findall(r"""outcome\(\s*["']([a-z0-9][a-z0-9_.-]*)["']""", path.read_text()))
        cases |= set(re.findall(r"""\b(?:case|id)=["']([a-z0-9][a-z0-9_.-]*)["']""", path.read_text()))
    table = (ROOT / "docs" / "FAULTS.md").read_text() if (ROOT / "docs" / "FAULTS.md").exists() else ""
    missing = sorted(c for c in cases if f"`{c}`" not in table)
    assert not missing, f"run `python -m pytest tests/faults` to measure and document: {missing}"
