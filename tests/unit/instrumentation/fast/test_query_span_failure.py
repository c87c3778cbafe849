"""A query span that cannot be started never fails the query: it runs untraced, logged once."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from otel_uwsgi.instrumentation.fast import db
from otel_uwsgi.instrumentation.fast.tracer import LazyTracer


class _Connection:
    """A driver connection whose host attribute raises, as a broken driver build might."""

    @property
    def host(self) -> str:
        raise RuntimeError("driver cannot say its host")


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> db.QuerySpans:
    monkeypatch.setattr(db, "_failed", [])
    return db.QuerySpans("mysql", {"host": "host"}, LazyTracer("test.scope", "", "1.0"))


def _failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "could not start a query's span" in r.getMessage()]


def test_django_query_runs_when_its_span_cannot_start(spans: db.QuerySpans, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[tuple[Any, ...]] = []

    def execute(sql: str, params: Any, many: bool, context: dict) -> str:
        calls.append((sql, params, many))
        return "rows"

    context = {"connection": SimpleNamespace(connection=_Connection())}
    with caplog.at_level(logging.ERROR, logger=db.__name__):
        assert spans(execute, "SELECT 1", (2,), False, context) == "rows"
        assert spans(execute, "SELECT 3", None, True, context) == "rows"
    assert calls == [("SELECT 1", (2,), False), ("SELECT 3", None, True)]
    failures = _failures(caplog)
    assert len(failures) == 1  # once per process, not once per query
    assert failures[0].exc_info is not None and "cannot say its host" in str(failures[0].exc_info[1])


def test_cursor_query_runs_when_its_span_cannot_start(spans: db.QuerySpans, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger=db.__name__):
        assert spans.traced(_Connection(), "SELECT 1", lambda *a, **k: (a, k), 1, two=2) == ((1,), {"two": 2})
    assert len(_failures(caplog)) == 1


def test_the_query_error_still_reaches_the_app(spans: db.QuerySpans) -> None:
    def execute(sql: str, params: Any, many: bool, context: dict) -> str:
        raise ValueError("the query failed")

    with pytest.raises(ValueError, match="the query failed"):
        spans(execute, "SELECT 1", None, False, {"connection": SimpleNamespace(connection=_Connection())})
