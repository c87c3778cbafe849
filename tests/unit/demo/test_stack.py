"""The demo's stack: what is installed and answers decides, an environment variable pins each part,
and the description says what runs and what would trace what does not."""

from __future__ import annotations

import sys

import pytest

from otel_uwsgi.demo import stack

PINS = ("OTEL_UWSGI_DEMO_APP", "OTEL_UWSGI_DEMO_DB", "OTEL_UWSGI_DEMO_REDIS", "OTEL_UWSGI_DEMO_HTTP")


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    for name in PINS:
        monkeypatch.delenv(name, raising=False)
    stack.current.cache_clear()
    yield
    stack.current.cache_clear()


def block(monkeypatch, *modules: str) -> None:
    """As if ``modules`` were not installed (``import`` fails, ``find_spec`` finds nothing)."""
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


def test_without_django_flask_then_plain_wsgi(monkeypatch):
    block(monkeypatch, "django")
    assert stack.current().app == "flask"
    stack.current.cache_clear()
    block(monkeypatch, "opentelemetry.instrumentation.flask")  # Flask without its instrumentation: untraced
    assert stack.current().app == "wsgi"


def test_no_server_or_driver_is_sqlite_and_no_redis(monkeypatch):
    monkeypatch.setenv("OTEL_UWSGI_DEMO_MYSQL_PORT", "9")
    monkeypatch.setenv("OTEL_UWSGI_DEMO_PG_PORT", "9")
    monkeypatch.setenv("OTEL_UWSGI_DEMO_REDIS", "127.0.0.1:9")
    assert (stack.database(), stack.redis_address()) == ("sqlite", None)
    block(monkeypatch, "redis")
    monkeypatch.setenv("OTEL_UWSGI_DEMO_REDIS", "auto")
    assert stack.redis_address() is None


def test_the_http_client_is_the_first_with_its_instrumentation(monkeypatch):
    block(monkeypatch, "opentelemetry.instrumentation.requests")
    assert stack.current().http == "urllib3"
    stack.current.cache_clear()
    block(monkeypatch, "opentelemetry.instrumentation.urllib3", "opentelemetry.instrumentation.urllib")
    chosen = stack.current()
    assert chosen.http == "urllib"
    assert chosen.untraced()[0] == "urllib (pip install opentelemetry-instrumentation-urllib)"


def test_pinned_parts_and_the_description(monkeypatch):
    for name, value in zip(PINS, ("flask", "sqlite", "off", "urllib"), strict=True):
        monkeypatch.setenv(name, value)
    assert stack.current() == stack.Stack(app="flask", db="sqlite", redis=None, http="urllib")
    assert stack.current().describe() == "Flask + SQLite + urllib"
    described = stack.Stack(app="wsgi", db="postgres", redis=("127.0.0.1", 6379), http="requests").describe()
    assert described == "plain WSGI + PostgreSQL + Redis + requests"
