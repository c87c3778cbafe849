"""wrap_wsgi() on an app its framework's instrumentation traces (Flask, Django) returns it unchanged
with one warning, so server spans keep their route names and http.route; an app nothing else
traces is wrapped.  Real Flask and Django apps, instrumented in their own interpreter."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

from otel_uwsgi import wrap_wsgi
from otel_uwsgi.instrumentation import registry

from .test_late_import import DJANGO, DJANGO_SERVE, INSTRUMENT, SERVE, SHOP, TRACE, run

WRAP = """
import otel_uwsgi
wrapped = otel_uwsgi.wrap_wsgi({app})
assert wrapped is {app}, wrapped
"""


def test_a_traced_flask_app_is_returned_unchanged_and_routes_name_its_spans(tmp_path):
    wsgi = TRACE + INSTRUMENT + SHOP + WRAP.format(app="app") + SERVE
    names, warnings = run(tmp_path, {"flask_wsgi.py": wsgi}, "flask_wsgi")
    assert names == ["GET /item/<int:i>"] * 2
    assert len(warnings) == 1, warnings
    assert "wrap_wsgi() returned the Flask app of 'flask_wsgi' unchanged" in warnings[0]
    assert f"remove otel_uwsgi.wrap_wsgi() from {tmp_path / 'flask_wsgi.py'}" in warnings[0]


def test_a_traced_django_handler_is_returned_unchanged_and_routes_name_its_spans(tmp_path):
    wsgi = TRACE + DJANGO + INSTRUMENT.replace('"flask"', '"django"') + "handler = get_wsgi_application()\n"
    names, warnings = run(tmp_path, {"dj_wrap.py": wsgi + WRAP.format(app="handler") + DJANGO_SERVE}, "dj_wrap")
    assert names == ["GET item/<int:i>"] * 2
    assert len(warnings) == 1, warnings
    assert "wrap_wsgi() returned the Django app" in warnings[0] and "remove otel_uwsgi.wrap_wsgi()" in warnings[0]


class Said(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def said():
    """The warnings wrap_wsgi logs (its own handler: the otel_uwsgi logger may not propagate)."""
    handler, logger = Said(), logging.getLogger("otel_uwsgi.instrumentation.wsgi")
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


def test_a_flask_app_nothing_traces_is_wrapped(monkeypatch, said):
    from flask import Flask

    monkeypatch.setattr(registry, "_done", {"flask"})  # instrumented after this app was made
    assert isinstance(wrap_wsgi(Flask("untraced")), OpenTelemetryMiddleware)
    assert said == []


def test_a_bound_wsgi_app_of_a_traced_flask_app_counts_as_the_app(said):
    from flask import Flask

    app = Flask("traced")
    app._is_instrumented_by_opentelemetry = True  # what the stock instrumentation marks an app it traces with
    assert wrap_wsgi(app.wsgi_app) == app.wsgi_app
    assert len(said) == 1 and "the Flask app of 'traced'" in said[0]


def test_on_the_fast_path_every_flask_app_is_traced(monkeypatch, said):
    from flask import Flask

    monkeypatch.setattr(registry, "_fast", {"flask"})
    app = Flask("fast")
    assert wrap_wsgi(app) is app and len(said) == 1


def test_a_plain_callable_is_wrapped_once(monkeypatch):
    monkeypatch.setattr(registry, "_done", {"flask", "django"})

    def app(environ, start_response):
        return []

    wrapped = wrap_wsgi(app)
    assert isinstance(wrapped, OpenTelemetryMiddleware)
    assert wrap_wsgi(wrapped) is wrapped


def test_an_app_made_before_instrumenting_is_wrapped_as_nothing_else_traces_it(tmp_path):
    """The late-import warning says what to fix; meanwhile the wrap is its only tracing."""
    client = "from werkzeug.test import Client\nclient = Client(application)"
    serve = SERVE.replace("client = app.test_client()", client)
    wsgi = TRACE + SHOP + INSTRUMENT + "import otel_uwsgi\napplication = otel_uwsgi.wrap_wsgi(app)\n" + serve
    names, warnings = run(tmp_path, {"late_wrap.py": wsgi}, "late_wrap")
    assert len(names) == 2, names
    assert len(warnings) == 1 and "created before otel_uwsgi.auto" in warnings[0], warnings


def test_a_django_handler_built_before_instrumenting_is_wrapped(tmp_path):
    wsgi = TRACE + DJANGO + "handler = get_wsgi_application()\n" + INSTRUMENT.replace('"flask"', '"django"')
    wrap = "import otel_uwsgi\nhandler = otel_uwsgi.wrap_wsgi(handler)\n"
    names, warnings = run(tmp_path, {"dj_late_wrap.py": wsgi + wrap + DJANGO_SERVE}, "dj_late_wrap")
    assert len(names) == 2, names
    assert len(warnings) == 1 and "Django was set up before otel_uwsgi.auto" in warnings[0], warnings
