"""The C twins of otel_uwsgi/native/_lifecycle.c (a lean span's start, end, checked attributes and name,
the journal's on_start and on_end) and their Python twins, swapped for a test: the same cases run through either."""

from __future__ import annotations

import sys
import threading

import pytest

from otel_uwsgi.traces.journal import processor as journal_processor
from otel_uwsgi.traces.journal.processor import JournalSpanProcessor
from otel_uwsgi.traces.lean import tracer as lean_tracer
from otel_uwsgi.traces.lean.span import LeanSpan
from otel_uwsgi.traces.lean.tracer import LeanTracer

#: ``c``: the entry points as built (the C twins where the extension is); ``python``: the Python twins.
VARIANTS = ("c", "python")


def c_built() -> bool:
    """Whether the three entry points are the C twins here (not turned off, not an older build)."""
    return lean_tracer._NATIVE is not None and journal_processor._NATIVE is not None


def use_python_twins(monkeypatch: pytest.MonkeyPatch) -> None:
    """``start_span``, ``end``, ``set_checked_attributes``, ``update_name``, ``on_start`` and ``on_end``
    as the Python twins, in place of the C ones."""
    monkeypatch.setattr(LeanTracer, "start_span", LeanTracer._start_py)
    monkeypatch.setattr(LeanSpan, "end", LeanSpan._end_py)
    monkeypatch.setattr(LeanSpan, "set_checked_attributes", LeanSpan._set_checked_py)
    monkeypatch.setattr(LeanSpan, "update_name", LeanSpan._update_name_py)
    monkeypatch.setattr(JournalSpanProcessor, "on_end", JournalSpanProcessor._on_end_py)
    monkeypatch.setattr(JournalSpanProcessor, "on_start", JournalSpanProcessor._on_start_py)


def use(variant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run through ``variant``'s entry points (skipping ``c`` where the C twins are not built)."""
    if variant == "python":
        use_python_twins(monkeypatch)
    elif not c_built():
        pytest.skip("the C twins are not built here (or OTEL_UWSGI_NO_EXTENSIONS is set)")


def running_in(thread: threading.Thread, function: str) -> bool:
    """Whether ``thread`` is running ``function`` now (somewhere in its stack)."""
    frame = sys._current_frames().get(thread.ident)
    while frame is not None:
        if frame.f_code.co_name == function:
            return True
        frame = frame.f_back
    return False
