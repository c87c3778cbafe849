"""The Flask fast path steps aside, in one info line naming why and changing nothing, wherever its
spans were not proven equal to the stock instrumentation's: another Flask or
opentelemetry-instrumentation-flask release, another semantic-convention mode, options (the one
gate of every fast path, :mod:`otel_uwsgi.instrumentation.fast.verified`)."""

from __future__ import annotations

import logging
from importlib.metadata import version

import pytest

flask = pytest.importorskip("flask")

from tests.unit.instrumentation.fast.spans import flask_fast_problem  # noqa: E402

pytestmark = pytest.mark.skipif(
    flask_fast_problem() is not None, reason=f"the Flask fast path is off here: {flask_fast_problem()}"
)

from otel_uwsgi.instrumentation import registry  # noqa: E402
from otel_uwsgi.instrumentation.fast import verified  # noqa: E402


@pytest.fixture
def untouched(caplog):
    """Flask's class as it was; the info lines of the call."""
    caplog.set_level(logging.INFO, logger="otel_uwsgi")
    before = (flask.Flask.wsgi_app, flask.Flask.__init__)
    yield caplog
    assert (flask.Flask.wsgi_app, flask.Flask.__init__) == before


def _scope(options: dict | None = None):
    return registry._fast_scope("flask", registry.entry_points.installed()["flask"], options or {})


def _reason(caplog) -> str:
    (line,) = [r.getMessage() for r in caplog.records if "not the fast path" in r.getMessage()]
    assert line.startswith("otel-uwsgi: flask is traced by its stock instrumentation, not the fast path: ")
    return line.partition("not the fast path: ")[2]


def test_another_flask_release(untouched, monkeypatch):
    monkeypatch.setitem(verified.VERIFIED, "flask", ("2.3", "2.3"))
    assert _scope() is None
    assert _reason(untouched) == f"flask {version('flask')} is newer than the fast path was verified with (2.3 to 2.3)"


def test_another_instrumentation_release(untouched, monkeypatch):
    monkeypatch.setitem(verified.VERIFIED, "opentelemetry-instrumentation-flask", ("0.1", "0.1"))
    assert _scope() is None
    assert _reason(untouched).startswith("opentelemetry-instrumentation-flask ")
    assert _reason(untouched).endswith(" is newer than the fast path was verified with (0.1 to 0.1)")


def test_another_semantic_convention_mode(untouched, monkeypatch):
    monkeypatch.setattr(verified, "VERIFIED_MODES", ())
    assert _scope() is None
    assert _reason(untouched).startswith("OTEL_SEMCONV_STABILITY_OPT_IN gives http mode ")


def test_options_for_the_stock_instrumentor(untouched):
    assert _scope({"excluded_urls": "x", "response_hook": print}) is None
    assert _reason(untouched) == (
        "instrumentation_options('flask', ...) gives excluded_urls, response_hook, which only the stock one runs"
    )


def test_where_verified_the_scope_is_the_stock_one(untouched):
    assert _scope() == ("opentelemetry.instrumentation.flask", version("opentelemetry-instrumentation-flask"))
