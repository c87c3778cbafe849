"""The fast path's pure helpers give what the stock helpers give, for any input: request
attributes, captured headers, excluded URLs and SQL span names are checked against the
installed opentelemetry-instrumentation-wsgi / util-http / dbapi functions themselves."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.instrumentation.dbapi import CursorTracer, DatabaseApiIntegration
from opentelemetry.instrumentation.wsgi import (
    collect_custom_request_headers_attributes,
    collect_custom_response_headers_attributes,
    collect_request_attributes,
)
from opentelemetry.util.http import get_excluded_urls

from otel_uwsgi.instrumentation.fast.http import HeaderCapture, HttpConfig, request_attributes
from otel_uwsgi.instrumentation.fast.sql import operation_name

CAPTURE_VARIABLES = (
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS",
)

maybe_text = st.one_of(st.none(), st.text(max_size=12), st.sampled_from(["", " ", "x", "127.0.0.1", "HTTP/1.1"]))
environs = st.fixed_dictionaries(
    {
        "wsgi.url_scheme": st.sampled_from(["http", "https"]),
        "SERVER_NAME": st.sampled_from(["127.0.0.1", "example.com", ""]),
        "SERVER_PORT": st.sampled_from(["", "80", "443", "8000"]),  # required by WSGI
    },
    optional={
        "REQUEST_METHOD": st.one_of(st.sampled_from(["GET", "post", " PUT ", "QUERY", "FOO", ""]), st.text(max_size=6)),
        "HTTP_HOST": maybe_text,
        "RAW_URI": maybe_text,
        "REQUEST_URI": maybe_text,
        "PATH_INFO": st.sampled_from(["/", "/a b", "/items/1"]),
        "QUERY_STRING": st.sampled_from(["", "a=1", "Signature=s3cret&x=1"]),
        "REMOTE_ADDR": maybe_text,
        "REMOTE_PORT": st.one_of(maybe_text, st.sampled_from(["40000", "x1"])),
        "REMOTE_HOST": maybe_text,
        "HTTP_USER_AGENT": st.one_of(maybe_text, st.sampled_from(["Googlebot/2.1", "AlwaysOn", "curl/8"])),
        "SERVER_PROTOCOL": st.one_of(maybe_text, st.sampled_from(["HTTP/1.0", "http/2", "HTTP/"])),
    },
)

# What a WSGI server sends for a normal request (every key the one-display branch needs), with
# odd values mixed in: the branch must agree with the stock helper wherever it applies.
full_environs = st.fixed_dictionaries(
    {
        "wsgi.url_scheme": st.sampled_from(["http", "https", ""]),
        "SERVER_NAME": st.sampled_from(["127.0.0.1", "example.com", ""]),
        "SERVER_PORT": st.sampled_from(["80", "8000", " 443 ", ""]),  # the stock helper raises on "x"
        "REQUEST_METHOD": st.sampled_from(["GET", "post", "FOO", ""]),
        "HTTP_HOST": st.sampled_from(["127.0.0.1:8000", ""]),
        "REQUEST_URI": st.sampled_from(["/", "/a?b=1", ""]),
        "REMOTE_ADDR": st.sampled_from(["127.0.0.1", ""]),
        "SERVER_PROTOCOL": st.sampled_from(["HTTP/1.1", "http/1.0", "HTTP/", "HTTPS/1", "", "ẖTTP/1"]),
    },
    optional={
        "REMOTE_PORT": st.sampled_from(["40000", "1", "x1", ""]),
        "RAW_URI": st.sampled_from(["/raw", ""]),
        "REMOTE_HOST": st.sampled_from(["127.0.0.1", "peer.example", ""]),
        "HTTP_USER_AGENT": st.sampled_from(["Googlebot/2.1", "AlwaysOn", "curl/8", ""]),
    },
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*CAPTURE_VARIABLES, "OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS"):
        monkeypatch.delenv(name, raising=False)


@settings(max_examples=300, deadline=None)
@given(environs)
def test_request_attributes_match_the_wsgi_helper(environ: dict[str, Any]) -> None:
    """Default semantic conventions: the one-pass builder equals collect_request_attributes, key
    order included (whose explicit ``None`` values the SDK drops anyway)."""
    environ = {k: v for k, v in environ.items() if v is not None}
    stock = {k: v for k, v in collect_request_attributes(environ).items() if v is not None}
    assert list(request_attributes(environ, HttpConfig.from_environ({})).items()) == list(stock.items())


@settings(max_examples=300, deadline=None)
@given(full_environs)
def test_request_attributes_of_complete_requests_match_the_wsgi_helper(environ: dict[str, Any]) -> None:
    """The same, over environs that carry every key a WSGI server sends (the one-display branch)."""
    stock = {k: v for k, v in collect_request_attributes(environ).items() if v is not None}
    assert list(request_attributes(environ, HttpConfig.from_environ({})).items()) == list(stock.items())


def test_a_normal_request_takes_the_one_display_branch(monkeypatch: pytest.MonkeyPatch) -> None:
    """What uWSGI's http-socket sends (no REMOTE_PORT), and a server that adds a peer port and a
    User-Agent, never needs the key-by-key builder."""
    from otel_uwsgi.instrumentation.fast import http as config

    uwsgi_http_socket = {
        "REQUEST_METHOD": "GET", "PATH_INFO": "/db", "REQUEST_URI": "/db?x=1", "QUERY_STRING": "x=1",
        "SERVER_PROTOCOL": "HTTP/1.1", "SCRIPT_NAME": "", "SERVER_NAME": "vm", "SERVER_PORT": "8000",
        "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8000", "wsgi.url_scheme": "http",
    }  # fmt: skip
    environs = [uwsgi_http_socket, {**uwsgi_http_socket, "REMOTE_PORT": "40000", "HTTP_USER_AGENT": "bot"}]
    expected = [list(collect_request_attributes(e).items()) for e in environs]
    monkeypatch.setattr(config, "_request_attributes", lambda *a: pytest.fail("took the key-by-key builder"))
    http = HttpConfig.from_environ({})
    assert [list(request_attributes(e, http).items()) for e in environs] == expected


def test_capture_all_methods_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS keeps unknown methods, as stock does."""
    monkeypatch.setenv("OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS", "1")
    environ = {"REQUEST_METHOD": "PURGE", "wsgi.url_scheme": "http", "REQUEST_URI": "/"}
    config = HttpConfig.from_environ({"OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS": "1"})
    assert request_attributes(environ, config)["http.method"] == collect_request_attributes(environ)["http.method"]
    assert request_attributes(environ, HttpConfig.from_environ({}))["http.method"] == "_OTHER"


CAPTURE_SETTINGS = [
    {},
    {"OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "x-custom-.*,user-agent"},
    {
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": " X-A , x_b,.*secret.* ",
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS": "secret,AUTH",
    },
    {
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": ".*",
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS": ".*",
    },
    {
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE": "content-.*,x-a,set-cookie",
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS": "x-a",
    },
]
header_names = st.text(alphabet=string.ascii_letters + "-_", min_size=1, max_size=8).map(lambda s: s.lower())
header_names = st.one_of(header_names, st.sampled_from(["x-a", "x-b", "x-custom-1", "user-agent", "secret-x", "auth"]))


@pytest.mark.parametrize("env", CAPTURE_SETTINGS)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(headers=st.lists(st.tuples(header_names, st.text(max_size=5)), max_size=6))
def test_captured_headers_match_the_wsgi_helpers(monkeypatch: pytest.MonkeyPatch, env, headers) -> None:
    """Captured request headers (from the environ) and response headers (repeated names joined),
    with redaction, equal the stock helpers' for the same settings."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = HttpConfig.from_environ(env)
    request = HeaderCapture(config.request_headers, config.sanitize, "http.request.header.")
    response = HeaderCapture(config.response_headers, config.sanitize, "http.response.header.")
    environ = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers}
    environ["CONTENT_TYPE"] = "text/plain"
    for _ in range(2):  # the second round answers from the caches
        assert request.from_environ(environ) == collect_custom_request_headers_attributes(environ)
        assert response.from_items(headers) == collect_custom_response_headers_attributes(headers)


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"OTEL_PYTHON_EXCLUDED_URLS": "health"},
        {"OTEL_PYTHON_EXCLUDED_URLS": "health", "OTEL_PYTHON_DJANGO_EXCLUDED_URLS": "ping$, /admin/"},
        {"OTEL_PYTHON_DJANGO_EXCLUDED_URLS": ""},
        {"OTEL_PYTHON_DJANGO_EXCLUDED_URLS": "a,,b"},
    ],
)
def test_excluded_urls_read_as_the_stock_instrumentation_reads_them(monkeypatch: pytest.MonkeyPatch, env) -> None:
    """The Django-specific variable wins over the generic one, and the same URLs are excluded."""
    for name in ("OTEL_PYTHON_EXCLUDED_URLS", "OTEL_PYTHON_DJANGO_EXCLUDED_URLS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    stock = get_excluded_urls("DJANGO")
    ours = HttpConfig.from_environ(env).excluded
    for url in ["http://h/health", "http://h/ping", "http://h/ping/x", "http://h/admin/x", "http://h/db"]:
        assert (ours is not None and ours.url_disabled(url)) == stock.url_disabled(url), url


def test_traced_request_attributes_are_split_and_stripped() -> None:
    assert HttpConfig.from_environ(
        {"OTEL_PYTHON_DJANGO_TRACED_REQUEST_ATTRS": "path, method"}
    ).traced_request_attrs == (
        "path",
        "method",
    )


statements = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["SELECT 1", "/* c */ select 2", "/* a */ /* b */ INSERT", "  \n\tUPDATE x", "/*\n*/ SELECT"]),
    st.builds(lambda a, b: f"/* {a} */{b}", st.text(max_size=5), st.text(max_size=10)),
)


@settings(max_examples=500, deadline=None)
@given(statements)
def test_operation_name_matches_the_dbapi_integration(statement: str) -> None:
    """The span name of a query is the dbapi integration's (which raises IndexError where the
    statement is only a comment and blanks; the fast path names such spans from the database)."""
    tracer = CursorTracer(DatabaseApiIntegration("test", "sqlite"))
    try:
        expected = tracer.get_operation_name(None, (statement,))
    except IndexError:
        expected = ""
    assert operation_name(statement) == expected
    assert operation_name(statement) == expected  # cached


def test_operation_name_of_non_text_is_empty() -> None:
    assert operation_name(b"SELECT 1") == "" and operation_name(None) == "" and operation_name("") == ""


def test_the_server_status_range_the_middleware_skips_is_unset_in_the_sdk():
    """The fast middleware does not call http_status_to_status_code for 100-499 (UNSET for a
    server span); if the SDK's rule changes, this fails."""
    from opentelemetry.instrumentation.utils import http_status_to_status_code
    from opentelemetry.trace import StatusCode

    for code in range(0, 700):
        unset = http_status_to_status_code(code, server_span=True) is StatusCode.UNSET
        assert unset is (100 <= code < 500), code
