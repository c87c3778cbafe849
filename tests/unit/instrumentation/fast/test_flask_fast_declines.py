"""The Flask fast path steps aside, in one info line naming why and changing nothing, wherever its
spans were not proven equal to the stock instrumentation's: another Flask or
opentelemetry-instrumentation-flask release, another semantic-convention mode, options."""

from __future__ import annotations

import logging
from importlib.metadata import version

import pytest

flask = pytest.importorskip("flask")

from otel_uwsgi.instrumentation.fast import flask as fast_flask  # noqa: E402


@pytest.fixture
def untouched(caplog):
    """Flask's class as it was; the info lines of the call."""
    caplog.set_level(logging.INFO, logger="otel_uwsgi")
    before = (flask.Flask.wsgi_app, flask.Flask.__init__)
    yield caplog
    assert (flask.Flask.wsgi_app, flask.Flask.__init__) == before


def _reason(caplog) -> str:
    (line,) = [r.getMessage() for r in caplog.records if "not the fast path" in r.getMessage()]
    return line.partition("not the fast path: ")[2]


def test_another_flask_release(untouched, monkeypatch):
    monkeypatch.setattr(fast_flask, "VERIFIED_FLASK", ("2.3",))
    assert fast_flask.instrument_flask_fast() is False
    assert _reason(untouched) == f"Flask {version('flask')} is not a release it was verified with (2.3.x)"


def test_another_instrumentation_release(untouched, monkeypatch):
    monkeypatch.setattr(fast_flask, "VERIFIED_INSTRUMENTATION", ("0.1b0",))
    assert fast_flask.instrument_flask_fast() is False
    assert _reason(untouched).startswith("opentelemetry-instrumentation-flask ")
    assert _reason(untouched).endswith(" is not a release it was verified with (0.1b0)")


def test_another_semantic_convention_mode(untouched, monkeypatch):
    monkeypatch.setattr(fast_flask, "VERIFIED_MODES", ())
    assert fast_flask.instrument_flask_fast() is False
    assert _reason(untouched).startswith("OTEL_SEMCONV_STABILITY_OPT_IN gives the HTTP mode ")


def test_options_for_the_stock_instrumentor(untouched):
    assert fast_flask.instrument_flask_fast({"excluded_urls": "x", "response_hook": print}) is False
    assert _reason(untouched) == (
        "instrumentation_options('flask', excluded_urls, response_hook) are for the stock instrumentor"
    )
