"""The fast path emits the stock instrumentations' spans: a real Django site (views, URL
patterns, middleware, SQLite) is driven in a subprocess once with the stock instrumentations and
once with ``fast=True``, through otel-uwsgi's own ``instrument()``, and every span is compared.

Run as a script (``python tests/unit/instrumentation/fast/test_spans_equal_stock.py stock|fast sqlite|mysql``) it is
that subprocess: it prints the spans of every case as JSON.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any, Optional

import pytest
from django.http import Http404, HttpResponse
from django.urls import include, path, re_path

from tests.unit.instrumentation.fast.spans import (
    SHARED_CASES,
    assert_same_spans,
    collect_spans,
    describe,
    run_script_process,
    wsgi_environ,
)

# --------------------------------------------------------------------------- the site (subprocess)


def _query(sql: str, params: Any = None, many: bool = False) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        if many:
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, params)


def index(request, **kwargs):
    return HttpResponse("ok", content_type="text/plain")


def item(request, pk):
    span = request.META.get("opentelemetry-instrumentor-django.span_key")  # as views of stock users read it
    if span is not None:
        span.set_attribute("view.found_span_in_meta", True)
    response = HttpResponse(f"item {pk}")
    response["X-Resp-Secret"] = "s3cret"
    response["X-Resp-Plain"] = "visible"
    return response


def queries(request):
    _query("SELECT %s", [1])
    _query("/* tagged */ select 2")
    _query("  \n SELECT 3")
    _query("CREATE TEMPORARY TABLE IF NOT EXISTS fast_t (n integer)")
    _query("INSERT INTO fast_t (n) VALUES (%s)", [(1,), (2,)], many=True)
    return HttpResponse("queries")


def bad_query(request):
    _query("SELECT * FROM fast_no_such_table")
    return HttpResponse("unreachable")


def missing(request):
    raise Http404("no such thing")


def boom(request):
    raise RuntimeError("demo error")


def alternate(request, **kwargs):
    return HttpResponse("alternate")


urlpatterns = [
    path("", index, name="home"),
    path("items/<int:pk>", item),
    path("api/", include([path("v1/<slug:s>", index, name="api-v1")])),
    re_path(r"^re/(?P<n>[0-9]+)$", index),
    path("queries", queries),
    path("bad-query", bad_query),
    path("missing", missing),
    path("error", boom),
    path("short/<int:n>", index),
    path("health", index),
]
alternate_urlpatterns = [path("alt/<int:n>", alternate)]


class SiteMiddleware:
    """Answers ``/short/...`` itself; switches ``/alt/...`` to another URLconf."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/short/"):
            return HttpResponse("short-circuited", status=403)
        if request.path.startswith("/alt/"):
            request.urlconf = AlternateUrls
        return self.get_response(request)


class AlternateUrls:
    urlpatterns = alternate_urlpatterns


CASES: dict[str, dict[str, Any]] = {
    "trivial": wsgi_environ("/"),
    "route": wsgi_environ("/items/42", query="a=1&b=2"),
    "include": wsgi_environ("/api/v1/hello"),
    "regex": wsgi_environ("/re/7"),
    "queries": wsgi_environ("/queries"),
    "bad-query": wsgi_environ("/bad-query"),
    "404": wsgi_environ("/nope"),
    "http404": wsgi_environ("/missing"),
    "error": wsgi_environ("/error"),
    "short-circuit": wsgi_environ("/short/3"),
    "urlconf": wsgi_environ("/alt/5"),
    "other-method": wsgi_environ("/", method="FOO"),
    "head": wsgi_environ("/items/1", method="HEAD"),
    "post": wsgi_environ("/", method="POST", CONTENT_TYPE="application/json", CONTENT_LENGTH="0"),
    **SHARED_CASES,
    "user-agent": wsgi_environ("/", HTTP_USER_AGENT="curl/8.0"),
    "disallowed-host": wsgi_environ("/", HTTP_HOST="evil.example"),
    "disallowed-again": wsgi_environ("/", HTTP_HOST="evil.example"),  # a refused Host is not remembered
    "excluded": wsgi_environ("/health"),
    "inside-span": wsgi_environ("/queries"),  # served while another span is current: INTERNAL, not SERVER
}


def run_site(mode: str, db: str) -> dict[str, Any]:
    """Drive every case through Django with ``mode`` instrumentation; spans per case."""
    from django.conf import settings

    if db == "psycopg2":  # Django's PostgreSQL backend takes psycopg (3) when it can: hide it
        sys.modules["psycopg"] = None  # type: ignore[assignment]
    if db in ("psycopg", "psycopg2"):
        database = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "test",
            "USER": "postgres",
            "HOST": "127.0.0.1",
            "PORT": "5432",
        }
    elif db == "mysql":
        database = {
            "ENGINE": "django.db.backends.mysql",
            "NAME": "test",
            "USER": "root",
            "PASSWORD": "",
            "HOST": "127.0.0.1",
            "PORT": "3306",
        }
    else:
        database = {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
    settings.configure(
        DEBUG=False,
        SECRET_KEY="fast-path-test",
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF="__main__",
        MIDDLEWARE=["__main__.SiteMiddleware"],
        INSTALLED_APPS=[],
        DATABASES={"default": database},
        USE_TZ=True,
        LOGGING_CONFIG=None,
    )
    from opentelemetry import trace

    from otel_uwsgi.instrumentation.registry import instrument, on_fast_path, set_options

    if mode == "hooked":  # a hook only the stock instrumentation runs: Django leaves the fast path
        set_options("django", request_hook=lambda span, request: span.set_attribute("hooked", True))
    instrument(("django", {"mysql": "mysqlclient", "sqlite": "sqlite3"}.get(db, db)), fast=mode in ("fast", "hooked"))
    fast_path = on_fast_path()
    exporter = collect_spans(mode)
    from django.core.wsgi import get_wsgi_application

    app = get_wsgi_application()
    python_steps = _count_python_steps()
    out: dict[str, Any] = {}
    for case, environ in CASES.items():
        exporter.clear()
        python_steps.clear()
        started: list[str] = []

        def start_response(status: str, headers: list, exc_info: Any = None, started: list = started) -> None:
            started.append(status)
            started.append(any(name.lower() == "traceresponse" for name, _ in headers))

        with contextlib.ExitStack() as stack:
            if case == "inside-span":
                stack.enter_context(trace.get_tracer("test").start_as_current_span("outer"))
            result = app(dict(environ), start_response)
            body = b"".join(result)
            result.close()  # request_finished: Django closes or recycles the connection here
        spans = exporter.get_finished_spans()
        ids = {s.context.span_id: i for i, s in enumerate(spans)}
        out[case] = {
            "classes": sorted({type(s).__name__ for s in spans}),
            "status": started[0],
            "traceresponse": started[1],
            "length": len(body),
            "spans": [describe(s, ids) for s in spans],
            "fast_path": fast_path,
            "python_steps": sorted(python_steps),
        }
    return out


def _count_python_steps() -> set[str]:
    """The Python twins of the C middleware (``_call``, ``_process_view``) that run, recorded by
    name: with the C extension, the common request runs neither."""
    from otel_uwsgi.instrumentation.fast import middleware

    ran: set[str] = set()
    cls = middleware.ServerSpanMiddleware
    for name in ("_call", "_process_view"):
        original = getattr(cls, name)

        def counted(self: Any, *args: Any, _name: str = name, _original: Any = original) -> Any:
            ran.add(_name)
            return _original(self, *args)

        setattr(cls, name, counted)
    return ran


# --------------------------------------------------------------------------- the tests (pytest)

HERE = Path(__file__).resolve()

CAPTURE_ENV = {
    "OTEL_PYTHON_DJANGO_EXCLUDED_URLS": "health,ping$",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "x-custom-.*, user-agent",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE": "content-type,x-resp-.*",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS": ".*secret.*",
    "OTEL_PYTHON_DJANGO_TRACED_REQUEST_ATTRS": "path,method,content_type,no_such_attr",
    "FAST_TEST_RESPONSE_PROPAGATOR": "1",
}


def spans_of(mode: str, db: str, env: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """Run the site in a subprocess; its spans per case."""
    done = run_script_process(HERE, mode, db, env=env)
    cases = json.loads(done.stdout.strip().splitlines()[-1])
    # Not vacuous: the "fast" run really is on the fast path (Django and the driver), the others not.
    driver = {"mysql": "mysqlclient", "sqlite": "sqlite3"}.get(db, db)
    expected = {"fast": ["django", driver], "hooked": [driver]}.get(mode, [])
    for case in cases.values():
        assert sorted(case.pop("fast_path")) == sorted(expected), (mode, db, done.stderr[-2000:])
    if mode == "fast" and not env and _extension_built():
        # default settings: the C middleware served the common requests (a Host seen before, a known
        # method, a view); with captures, exclusions or extra attributes the twins serve all
        for case in ("route", "include", "regex", "queries", "error", "head", "post", "user-agent"):
            assert cases[case]["python_steps"] == [], (case, cases[case]["python_steps"])
        # and left the rest to the twins: a Host not seen yet, another URLconf, an unknown method
        for case in ("trivial", "urlconf", "other-method"):
            assert cases[case]["python_steps"], case
    for case in cases.values():
        case.pop("python_steps")
    return cases


def _extension_built() -> bool:
    from otel_uwsgi.instrumentation.fast import middleware

    return middleware._Base is not object


@pytest.fixture(scope="module")
def default_mode() -> tuple[dict[str, Any], dict[str, Any]]:
    return spans_of("stock", "sqlite"), spans_of("fast", "sqlite")


def test_same_spans_in_the_default_mode(default_mode):
    """Default settings: every case (routes, includes, 404s, exceptions, queries, failing query,
    short-circuiting middleware, another URLconf, mounted app, odd methods) gives identical spans."""
    stock, fast = default_mode
    assert_same_spans(stock, fast)


def test_same_spans_through_the_python_twins_of_the_c_middleware(default_mode):
    """Without the C extension (``OTEL_UWSGI_NO_EXTENSIONS=1``) the middleware's Python steps serve
    every request: the same spans again."""
    stock, _ = default_mode
    assert_same_spans(stock, spans_of("fast", "sqlite", {"OTEL_UWSGI_NO_EXTENSIONS": "1"}))


def test_the_cases_exercise_what_they_claim(default_mode):
    """The comparison is not vacuous: names, parents, errors and DB spans are what the stock
    instrumentations are known to emit."""
    stock, _ = default_mode
    assert [s["name"] for s in stock["route"]["spans"]] == ["GET items/<int:pk>"]
    assert stock["route"]["spans"][0]["attributes"]["view.found_span_in_meta"] is True
    assert [s["name"] for s in stock["trivial"]["spans"]] == ["GET home"]
    assert stock["404"]["spans"][0]["name"] == "GET" and stock["404"]["spans"][0]["status"][0] == "UNSET"
    error = stock["error"]["spans"][0]
    assert error["status"] == ["ERROR", "RuntimeError: demo error"] and error["attributes"]["http.status_code"] == 500
    assert error["events"][0]["attributes"]["exception.type"] == "RuntimeError"
    names = [s["name"] for s in stock["queries"]["spans"]]
    assert names == ["SELECT", "select", "SELECT", "CREATE", "INSERT", "GET queries"]
    assert all(s["parent"] == 5 for s in stock["queries"]["spans"][:5])
    bad = stock["bad-query"]["spans"][0]
    assert (
        bad["status"][0] == "ERROR" and bad["events"][0]["attributes"]["exception.type"] == "sqlite3.OperationalError"
    )
    assert stock["traceparent"]["spans"][0]["parent"] == "remote:b7ad6b7169203331"
    for refused in ("disallowed-host", "disallowed-again"):
        assert stock[refused]["spans"] == [] and stock[refused]["status"].startswith("400")
    assert stock["short-circuit"]["spans"][0]["name"] == "GET short/<int:n>"
    assert stock["other-method"]["spans"][0]["name"] == "HTTP"
    inside = stock["inside-span"]["spans"]
    assert [(s["name"], s["kind"], s["parent"]) for s in inside[-2:]] == [
        ("GET queries", "INTERNAL", 6),
        ("outer", "INTERNAL", None),
    ]


def test_same_spans_with_capture_exclusion_and_traced_attributes():
    """Excluded URLs, captured and redacted request/response headers, traced request attributes
    and a response propagator give identical spans (and ``traceresponse`` headers)."""
    stock, fast = spans_of("stock", "sqlite", CAPTURE_ENV), spans_of("fast", "sqlite", CAPTURE_ENV)
    assert_same_spans(stock, fast)
    headers = stock["headers"]["spans"][0]["attributes"]
    assert headers["http.request.header.x_custom_secret"] == ["[REDACTED]"]
    assert headers["http.response.header.x_resp_secret"] == ["[REDACTED]"]
    assert headers["http.response.header.x_resp_plain"] == ["visible"] and headers["path"] == "/items/9"
    assert stock["excluded"]["spans"] == [] and not stock["excluded"]["traceresponse"]
    assert stock["trivial"]["traceresponse"]


@pytest.mark.parametrize("opt_in", ["http,database", "http/dup,database/dup"])
def test_same_spans_in_the_new_semantic_conventions(opt_in):
    """OTEL_SEMCONV_STABILITY_OPT_IN=http (and the dup mode) gives identical spans too."""
    env = {"OTEL_SEMCONV_STABILITY_OPT_IN": opt_in}
    stock, fast = spans_of("stock", "sqlite", env), spans_of("fast", "sqlite", env)
    assert_same_spans(stock, fast)
    assert "http.request.method" in stock["trivial"]["spans"][0]["attributes"]


@pytest.mark.parametrize(
    "env",
    [{}, CAPTURE_ENV, {"OTEL_SEMCONV_STABILITY_OPT_IN": "http/dup,database/dup"}],
    ids=["default", "capture", "semconv-dup"],
)
def test_the_stock_instrumentations_spans_are_the_same_with_lean_spans(env):
    """otel-lean-spans (on by default): the stock Django and dbapi instrumentations, started by
    LeanSdkTracer instead of the SDK's Tracer.start_span, emit exactly the SDK's spans."""
    sdk, lean = spans_of("stock", "sqlite", env), spans_of("stock-lean", "sqlite", env)
    assert_same_spans(sdk, lean)
    assert {c for case in sdk.values() for c in case["classes"]} == {"ReadableSpan"}
    from opentelemetry.sdk.version import __version__ as sdk_version

    from otel_uwsgi.instrumentation.fast.verified import _minor

    if _minor(sdk_version) >= (1, 45):  # older SDKs: the lean start steps aside (the same spans, SDK-made)
        assert all(case["classes"] == (["LeanSpan"] if case["spans"] else []) for case in lean.values())


def test_a_hook_for_the_stock_instrumentation_keeps_django_off_the_fast_path():
    """instrumentation_options("django", request_hook=...): the stock Django instrumentation runs
    the hook (the queries stay on the fast path), and one info line says why."""
    done = run_script_process(HERE, "hooked", "sqlite")
    hooked = json.loads(done.stdout.strip().splitlines()[-1])
    server = [s for case in hooked.values() for s in case["spans"] if s["kind"] == "SERVER"]
    assert server and all(s["attributes"].get("hooked") is True for s in server)
    assert {s["scope"] for s in server} == {"opentelemetry.instrumentation.django"}
    reason = "django is traced by its stock instrumentation, not the fast path: instrumentation_options('django'"
    assert reason in done.stderr


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_same_spans_on_postgresql(postgres, driver):
    """Django on PostgreSQL through psycopg (3) and through psycopg2: the fast path's DB spans are
    span for span those of that driver's stock instrumentation."""
    from otel_uwsgi.instrumentation.fast.verified import release_problem

    problem = release_problem(f"opentelemetry-instrumentation-{driver}")
    if problem:  # e.g. the fast path's floor run: this driver stays on its stock instrumentation there
        pytest.skip(f"the fast path is off for {driver} here: {problem}")
    stock, fast = spans_of("stock", driver), spans_of("fast", driver)
    assert_same_spans(stock, fast)
    statements = {s["attributes"].get("db.statement"): s for s in stock["queries"]["spans"]}
    query = statements["SELECT %s"]
    assert query["name"] == "SELECT" and query["attributes"]["db.system"] == "postgresql"
    assert query["scope"] == f"opentelemetry.instrumentation.{driver}"
    (bad,) = [s for s in stock["bad-query"]["spans"] if "fast_no_such_table" in s["attributes"].get("db.statement", "")]
    assert bad["status"][0] == "ERROR" and "UndefinedTable" in bad["events"][0]["attributes"]["exception.type"]


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    print(json.dumps(run_site(sys.argv[1], sys.argv[2])))
