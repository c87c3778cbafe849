"""The Flask fast path emits opentelemetry-instrumentation-flask's spans and metrics: one Flask app
(converters, a blueprint, hooks, errors, 404/405/redirects, streaming, a copied request
context, a mounted app ...) is driven in a subprocess once with the stock FlaskInstrumentor and
once with ``fast=True``, both through otel-uwsgi's own ``instrument()``, and every span, every
response and every metric point is compared, the scope (name and version) included.

Run as a script (``python tests/unit/instrumentation/fast/test_flask_spans_equal_stock.py
stock|fast|stock-lean|early|declined|both``) it is that subprocess: it prints what it saw as JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

flask = pytest.importorskip("flask")

from tests.unit.instrumentation.fast.spans import flask_fast_problem  # noqa: E402

pytestmark = pytest.mark.skipif(
    flask_fast_problem() is not None, reason=f"the Flask fast path is off here: {flask_fast_problem()}"
)

from tests.unit.instrumentation.fast.flask_site import CASES, make_app  # noqa: E402
from tests.unit.instrumentation.fast.spans import (  # noqa: E402
    assert_same_spans,
    collect_spans,
    describe,
    otel_uwsgi_log_lines,
    run_script,
    wsgi_environ,
)

# --------------------------------------------------------------------------- the run (subprocess)


def _serve(app: Any, environ: dict[str, Any], outer: Any) -> dict[str, Any]:
    """One request through ``app``; what the client saw."""
    started: list[Any] = []

    def start_response(status: str, headers: list, exc_info: Any = None) -> None:
        started.extend([status, any(name.lower() == "traceresponse" for name, _ in headers)])

    with contextlib.ExitStack() as stack:
        if outer is not None:
            stack.enter_context(outer.start_as_current_span("outer"))
        result = app(dict(environ), start_response)
        body = b"".join(result)
        getattr(result, "close", lambda: None)()
    return {"status": started[0], "traceresponse": started[1], "length": len(body), "body": body.decode()}


def _metrics(reader: Any) -> list[dict[str, Any]]:
    """Every metric point, durations left out (counts, attributes, units, buckets kept)."""
    out = []
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            scope = scope_metrics.scope
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    out.append(
                        {
                            "scope": [scope.name, scope.version, scope.schema_url],
                            "name": metric.name,
                            "unit": metric.unit,
                            "description": metric.description,
                            "attributes": dict(point.attributes),
                            "count": getattr(point, "count", None),
                            "value": getattr(point, "value", None),
                            "bounds": list(getattr(point, "explicit_bounds", ()) or ()),
                        }
                    )
    return sorted(out, key=lambda p: json.dumps(p, sort_keys=True))


def _described(span: Any, ids: dict[int, int]) -> dict[str, Any]:
    """:func:`describe`, a captured ``traceresponse`` header checked to name this very span."""
    described = describe(span, ids)
    attributes = described["attributes"]
    if "http.response.header.traceresponse" in attributes:
        (value,) = attributes["http.response.header.traceresponse"]
        own = f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-"
        attributes["http.response.header.traceresponse"] = ["<this span>" if value.startswith(own) else value]
    return described


def run_app(mode: str) -> dict[str, Any]:
    """Drive every case through the app with ``mode`` instrumentation; spans per case, metrics."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from otel_uwsgi.instrumentation import registry

    early = flask.Flask("early") if mode == "early" else None  # an app that exists before instrumenting
    if mode == "declined":  # an option for the stock instrumentor: the fast path steps aside

        def request_hook(span: Any, environ: dict) -> None:
            span.set_attribute("hooked", True)

        registry.set_options("flask", request_hook=request_hook)
    logs = otel_uwsgi_log_lines()
    registry.instrument(("flask",), fast=mode in ("fast", "early", "declined", "both"))
    if mode == "both":  # the app's own code instruments with the stock instrumentor after all
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        FlaskInstrumentor().instrument()
    exporter = collect_spans(mode)
    reader = None
    if os.environ.get("FAST_TEST_METRICS"):
        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    if early is not None:
        early.add_url_rule("/items/<int:n>", "item", lambda n: str(n))
        cases = {"early": wsgi_environ("/items/7")}
        app = early
    else:
        cases, app = CASES, make_app()
    out: dict[str, Any] = {}
    for case, environ in cases.items():
        exporter.clear()
        seen = _serve(app, environ, trace.get_tracer("test") if case == "inside-span" else None)
        spans = exporter.get_finished_spans()
        ids = {s.context.span_id: i for i, s in enumerate(spans)}
        classes = sorted({type(s).__name__ for s in spans})
        out[case] = {**seen, "classes": classes, "spans": [_described(s, ids) for s in spans]}
    untrusted = None
    if early is None:  # a Host outside TRUSTED_HOSTS: the stock instrumentation's exclusion check re-raises it
        exporter.clear()
        try:
            untrusted = _serve(app, wsgi_environ("/", HTTP_HOST="evil.example"), None)["status"]
        except Exception as error:  # noqa: BLE001 - what the WSGI server would turn into a 500
            untrusted = f"raised {type(error).__name__}"
        untrusted = [untrusted, [s.name for s in exporter.get_finished_spans()]]
    return {
        "cases": out,
        "metrics": _metrics(reader) if reader else [],
        "fast": sorted(registry._fast),
        "logs": logs,
        "untrusted": untrusted,
    }


# --------------------------------------------------------------------------- the tests (pytest)

HERE = Path(__file__).resolve()

CAPTURE_ENV = {
    "OTEL_PYTHON_FLASK_EXCLUDED_URLS": "health,ping$",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "x-custom-.*, user-agent",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE": "content-type,x-resp-.*,traceresponse",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS": ".*secret.*",
    "FAST_TEST_RESPONSE_PROPAGATOR": "1",
}


def run(mode: str, env: dict[str, str]) -> dict[str, Any]:
    """The app in a subprocess; what it saw."""
    seen = run_script(HERE, mode, env=env)
    assert seen["fast"] == (["flask"] if mode in ("fast", "early", "both") else []), seen["fast"]
    assert "otel-uwsgi: instrumented flask" + (" (fast path: flask)" if seen["fast"] else "") in seen["logs"]
    return seen


def assert_same(stock: dict[str, Any], fast: dict[str, Any]) -> None:
    """Same responses (bodies included), spans (scopes included) and metric points."""
    assert_same_spans(stock["cases"], fast["cases"])
    for case in stock["cases"]:
        assert stock["cases"][case]["body"] == fast["cases"][case]["body"], case
    assert stock["metrics"] == fast["metrics"]


@pytest.fixture(scope="module")
def default_mode() -> tuple[dict[str, Any], dict[str, Any]]:
    return run("stock", {}), run("fast", {})


def test_same_spans_in_the_default_mode(default_mode):
    """Default settings: every case gives identical responses and spans, and the spans carry the
    stock instrumentation's scope name and version."""
    stock, fast = default_mode
    assert_same(stock, fast)
    from opentelemetry.instrumentation.flask.version import __version__

    scopes = {(s["scope"], s["scope_version"]) for c in fast["cases"].values() for s in c["spans"]}
    assert scopes == {("opentelemetry.instrumentation.flask", __version__), ("test", "")}


def test_a_host_outside_trusted_hosts_gets_no_span_and_its_400(default_mode):
    """No request span either way; where the stock instrumentation's URL check raises the Host's
    SecurityError out of the app (the server answers 500), the fast path lets Flask answer 400."""
    stock, fast = (m["untrusted"] for m in default_mode)
    if version("flask").startswith("3.0."):  # no TRUSTED_HOSTS before Flask 3.1
        assert stock == fast == ["200 OK", ["app-teardown", "GET /"]]
        return
    assert stock == ["raised SecurityError", ["app-teardown"]]
    assert fast == ["400 BAD REQUEST", ["app-teardown"]]


def test_the_cases_exercise_what_they_claim(default_mode):
    """The comparison is not vacuous: names, routes, parents, errors are what the stock
    instrumentation is known to emit, and the fast run used the fast path's spans."""
    stock, fast = (m["cases"] for m in default_mode)
    assert all("LeanSpan" in case["classes"] for case in fast.values())  # the request spans (the test's are SDK ones)
    assert {c for case in stock.values() for c in case["classes"]} == {"ReadableSpan"}

    def server(case: str) -> dict[str, Any]:
        (span,) = [s for s in stock[case]["spans"] if s["scope"] != "test"]
        return span

    route = server("route")
    assert route["name"] == "GET /items/<int:item_id>" and route["attributes"]["http.route"] == "/items/<int:item_id>"
    assert server("blueprint")["name"] == "GET /api/v1/<slug>"
    assert server("mounted")["name"] == "GET /items/<int:item_id>"
    assert server("mounted")["attributes"]["http.target"] == "/mount/items/4"
    not_found = server("404")
    assert not_found["name"] == "GET /nope" and "http.route" not in not_found["attributes"]
    assert not_found["status"] == ["UNSET", None] and not_found["attributes"]["http.status_code"] == 404
    assert server("405")["name"] == "POST /items/1" and server("405")["attributes"]["http.status_code"] == 405
    assert server("redirect")["attributes"]["http.status_code"] == 308
    assert server("other-method")["name"] == "HTTP"
    error = server("error")
    assert error["status"] == ["ERROR", "RuntimeError: demo error"] and error["attributes"]["http.status_code"] == 500
    assert [e["attributes"]["exception.type"] for e in error["events"]] == ["RuntimeError"]
    assert server("handled-error")["events"] == [] and server("handled-error")["status"][0] == "UNSET"
    assert server("abort-503")["status"] == ["ERROR", None] and server("abort-503")["events"] == []
    assert server("traceparent")["parent"] == "remote:b7ad6b7169203331"
    assert json.loads(stock["context"]["body"]) == {
        "name": "GET /context",
        "baggage": {"b": "1"},
        "tags": {"framework": f"flask:{version('flask')}", "controller": "seen_context", "route": "/context"},
    }
    assert [(s["name"], s["parent"]) for s in stock["path-converter"]["spans"]] == [
        ("child", 2),
        ("app-teardown", 2),
        ("GET /files/<path:name>", None),
    ]
    copied = [(s["name"], s["parent"]) for s in stock["copied-context"]["spans"]]
    assert copied == [("app-teardown", 3), ("after-copy", 3), ("app-teardown", 3), ("GET /copied", None)]
    streamed = [s["name"] for s in stock["stream"]["spans"]]
    if version("flask").startswith("3.0."):  # the span ends once the streamed body is read
        assert streamed == ["chunk", "app-teardown", "GET /stream"]
    else:  # Flask 3.1: the request context is popped (the span ends) before the body is read
        assert streamed == ["app-teardown", "GET /stream", "chunk", "app-teardown"]
    assert [s["name"] for s in stock["blueprint"]["spans"]] == ["api-before", "app-teardown", "GET /api/v1/<slug>"]
    inside = stock["inside-span"]["spans"]
    assert [(s["name"], s["kind"], s["parent"]) for s in inside[-2:]] == [
        ("GET /files/<path:name>", "INTERNAL", 3),
        ("outer", "INTERNAL", None),
    ]


def test_same_spans_with_capture_exclusion_and_a_response_propagator():
    """Excluded URLs, captured and redacted request/response headers (the traceresponse header
    included) and a response propagator give identical spans and responses."""
    stock, fast = run("stock", CAPTURE_ENV), run("fast", CAPTURE_ENV)
    assert_same(stock, fast)
    cases = stock["cases"]
    headers = cases["headers"]["spans"][-1]["attributes"]
    assert headers["http.request.header.x_custom_secret"] == ["[REDACTED]"]
    assert headers["http.response.header.x_resp_secret"] == ["[REDACTED]"]
    assert headers["http.response.header.x_resp_plain"] == ["visible"]
    assert headers["http.response.header.traceresponse"] == ["<this span>"]
    excluded = cases["excluded"]
    assert [(s["name"], s["parent"]) for s in excluded["spans"]] == [("app-teardown", None)]  # no request span
    assert not excluded["traceresponse"]
    assert cases["trivial"]["traceresponse"]


@pytest.mark.parametrize("opt_in", ["", "http", "http/dup"])
def test_same_spans_and_metrics_in_every_semantic_convention_mode(opt_in):
    """With a MeterProvider, in the old, new and both conventions: identical spans and the same
    metric points (in-flight requests, durations by route and status)."""
    env = {"OTEL_SEMCONV_STABILITY_OPT_IN": opt_in, "FAST_TEST_METRICS": "1", **CAPTURE_ENV}
    stock, fast = run("stock", env), run("fast", env)
    assert_same(stock, fast)
    expected = {
        "": {"http.server.active_requests", "http.server.duration"},
        "http": {"http.server.active_requests", "http.server.request.duration"},
        "http/dup": {"http.server.active_requests", "http.server.duration", "http.server.request.duration"},
    }
    assert {p["name"] for p in stock["metrics"]} == expected[opt_in]
    durations = [p for p in stock["metrics"] if "duration" in p["name"]]
    assert sum(p["count"] for p in durations) >= len(CASES) - 1
    route_key = "http.route" if opt_in == "http" else "http.target"
    assert any(p["attributes"].get(route_key) == "/items/<int:item_id>" for p in durations)


def test_the_stock_spans_are_the_same_with_lean_spans():
    """otel-lean-spans (on by default): the stock Flask instrumentation, started by LeanSdkTracer
    instead of the SDK's Tracer.start_span, emits exactly the SDK's spans."""
    assert_same(run("stock", CAPTURE_ENV), run("stock-lean", CAPTURE_ENV))


def test_an_app_created_before_instrumenting_is_traced_from_its_first_request():
    """The stock instrumentor traces only apps created after it (it replaces ``flask.Flask``); the
    fast path also takes an app that already existed, at its first request."""
    (span,) = run("early", {})["cases"]["early"]["spans"]
    route = "/items/<int:n>"
    assert (span["name"], span["kind"], span["attributes"]["http.route"]) == (f"GET {route}", "SERVER", route)


def test_an_app_the_stock_instrumentor_traces_is_left_to_it():
    """``FlaskInstrumentor().instrument()`` called by the app despite the fast path: its apps get
    the stock spans only, not a second span from the fast path."""
    assert_same(run("stock", CAPTURE_ENV), run("both", CAPTURE_ENV))


def test_options_for_the_stock_instrumentor_keep_the_stock_one_and_say_so():
    """``instrumentation_options("flask", request_hook=...)``: the stock instrumentation traces, with
    the hook, and one info line says why the fast path stepped aside."""
    seen = run("declined", {})
    spans = [s for case in seen["cases"].values() for s in case["spans"] if s["scope"] != "test"]
    assert spans and all(s["attributes"].get("hooked") is True for s in spans)
    reasons = [line for line in seen["logs"] if "not the fast path" in line]
    assert reasons == [
        "otel-uwsgi: flask is traced by its stock instrumentation, not the fast path: "
        "instrumentation_options('flask', ...) gives request_hook, which only the stock one runs"
    ]


if __name__ == "__main__":
    print(json.dumps(run_app(sys.argv[1])))
