"""The ``twins`` fixture: a journal test run through the C twins and through the Python ones."""

from __future__ import annotations

import pytest

from tests.unit.traces.twins import VARIANTS, use


@pytest.fixture(params=VARIANTS)
def twins(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """``c``: the lean start and end and the journal's on_end in C (where built); ``python``: their
    Python twins."""
    use(request.param, monkeypatch)
    return request.param
