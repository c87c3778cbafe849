"""The fast path (the default, ``otel-fast-instrumentation``) under real uWSGI (4 workers) emits
the spans the stock instrumentations emit, instrumentation scope included: the same requests go
through the Django + MySQL demo (and the Flask demo) twice, stock (``false``) then fast (no
setting), and every trace the real receiver decodes is compared structurally."""

from __future__ import annotations

import gzip
import re
from typing import Any, Optional

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_uwsgi.tools import receiver as receiver_module
from otel_uwsgi.tools.check import DEMO_INI
from otel_uwsgi.tools.receiver import attributes as kv_attributes

from ..conftest import ROOT

pytestmark = pytest.mark.integration

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"

#: The instrumentation settings users rely on, set as ini options (passed on as OTEL_* variables).
SETTINGS = {
    "otel-python-django-excluded-urls": "whoami",
    "otel-instrumentation-http-capture-headers-server-request": "x-custom-.*,user-agent",
    "otel-instrumentation-http-capture-headers-server-response": "content-type",
    "otel-instrumentation-http-capture-headers-sanitize-fields": ".*secret",
    "otel-python-django-traced-request-attrs": "path,method",
}

#: case -> (path, headers); each request carries ``case=<name>`` in its query string.
CASES: dict[str, tuple[str, dict[str, str]]] = {
    "trivial": ("/", {}),
    "one-query": ("/db", {}),
    "ten-queries": ("/db10", {}),
    "not-found": ("/no/such/page", {}),
    "error": ("/error", {}),
    "traceparent": ("/db", {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01", "tracestate": "vendor=1"}),
    "headers": ("/", {"x-custom-a": "1", "x-custom-secret": "hunter2", "x-other": "no", "user-agent": "Googlebot/2.1"}),
}


def _decode(body: bytes, encoding: str) -> list[dict[str, Any]]:
    """Everything the comparison needs from one OTLP request, including what ReceivedSpan omits
    (status message, event attributes, scope schema URL)."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(gzip.decompress(body) if encoding == "gzip" else body)
    spans = []
    for rs in request.resource_spans:
        resource = kv_attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            for span in ss.spans:
                events = []
                for event in span.events:
                    attrs = kv_attributes(event.attributes)
                    stack = attrs.pop("exception.stacktrace", "")
                    events.append((event.name, attrs, stack.strip().splitlines()[-1:]))
                spans.append(
                    {
                        "service": resource.get("service.name"),
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "start": span.start_time_unix_nano,
                        "name": span.name,
                        "kind": span.kind,
                        "status": (span.status.code, span.status.message),
                        "events": events,
                        "attributes": kv_attributes(span.attributes),
                        "scope": (ss.scope.name, ss.scope.version),
                        "schema_url": ss.schema_url,
                    }
                )
    return spans


@pytest.fixture
def bodies(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, str]]:
    """Raw request bodies the receiver accepted, decoded again in full by the test."""
    seen: list[tuple[bytes, str]] = []
    original = receiver_module.decode_traces

    def keep(body: bytes, encoding: str = "") -> Any:
        spans = original(body, encoding)
        seen.append((body, encoding))
        return spans

    monkeypatch.setattr(receiver_module, "decode_traces", keep)
    return seen


def _run(
    start_uwsgi: Any,
    receiver: Any,
    service: str,
    fast: bool,
    ini: str = "django-mysql.ini",
    settings: Optional[dict[str, str]] = None,
    cases: Optional[dict[str, tuple[str, dict[str, str]]]] = None,
    warm: str = "/db?case=warm",
) -> tuple[dict[str, int], str, int]:
    """``cases`` (the Django demo's by default) and an excluded ``/whoami`` through ``ini``, until
    every case's server span arrived: the response statuses, uWSGI's log, and how many warm-up
    requests it took until every worker had served one (batches until then: it varies by run)."""
    cases = CASES if cases is None else cases
    extra = {**(SETTINGS if settings is None else settings), "otel-service-name": service}
    if not fast:  # the fast run is the default, with no setting
        extra["otel-fast-instrumentation"] = "false"
    server = start_uwsgi(ini, extra=extra)
    # Every worker serves a warm-up request (the Django demo opens its MySQL connection and runs
    # Django's connection set-up queries), so each compared request finds a ready worker.
    server.until_every_worker_served(warm)
    warmed = server.answered
    statuses = {}
    for case, (path, headers) in cases.items():
        statuses[case] = server.get(f"{path}?case={case}", headers=headers)[0]
    statuses["excluded"] = server.get("/whoami?case=excluded")[0]
    server.stop()

    def arrived(spans: list[Any]) -> bool:
        seen = {
            s.attributes.get("http.target", "").partition("case=")[2]
            for s in spans
            if s.kind == "SERVER" and s.resource.get("service.name") == service
        }
        return seen >= set(cases)

    assert receiver.wait_for(arrived, 15), f"{service}: not every case arrived"
    return statuses, server.uwsgi.log(), warmed


def _traces(spans: list[dict[str, Any]], service: str) -> dict[str, list[list[dict[str, Any]]]]:
    """Traces of one run by case: spans in start order, parents as positions, per-run values masked."""
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        if span["service"] == service:
            by_trace.setdefault(span["trace_id"], []).append(span)
    out: dict[str, list[list[dict[str, Any]]]] = {}
    for trace in by_trace.values():
        trace.sort(key=lambda s: s["start"])
        root = [s for s in trace if s["kind"] == 2]  # SERVER
        assert len(root) == 1, trace
        case = root[0]["attributes"]["http.target"].partition("case=")[2]
        position = {s["span_id"]: i for i, s in enumerate(trace)}
        shaped = []
        for span in trace:
            attrs = dict(span["attributes"])
            if span["kind"] == 2:
                for key in ("net.peer.port", "net.host.port", "http.host", "net.host.name"):  # ephemeral ports
                    attrs.pop(key, None)
            parent = span["parent_span_id"]
            shaped.append(
                {
                    "name": span["name"],
                    "kind": span["kind"],
                    "parent": position.get(parent, f"remote:{parent}" if parent else None),
                    "trace": span["trace_id"] if case == "traceparent" else None,
                    "status": span["status"],
                    "events": span["events"],
                    "attributes": attrs,
                    "schema_url": span["schema_url"],
                    "scope": span["scope"],
                }
            )
        out.setdefault(case, []).append(shaped)
    return out


def test_fast_path_emits_the_stock_spans(start_uwsgi, receiver, mysql, bodies):
    """Trivial view, one and ten MySQL queries, a 404, an exception, an incoming traceparent,
    captured/redacted headers and an excluded URL: same span names, kinds, parents, status,
    exception events and attributes with the fast path as with the stock instrumentations."""
    stock_status, stock_log, _ = _run(start_uwsgi, receiver, "stock", fast=False)
    fast_status, fast_log, _ = _run(start_uwsgi, receiver, "fast", fast=True)
    assert stock_status == fast_status
    # The default run really was the fast path, and the `false` one the stock instrumentations.
    assert "(fast path: django, mysqlclient)" in fast_log and "fast path" not in stock_log
    assert fast_status["not-found"] == 404 and fast_status["error"] == 500 and fast_status["excluded"] == 200

    spans = [span for body, encoding in bodies for span in _decode(body, encoding)]
    stock, fast = _traces(spans, "stock"), _traces(spans, "fast")

    assert "excluded" not in stock and "excluded" not in fast
    for case in CASES:
        assert len(stock[case]) == len(fast[case]) == 1, case
        assert stock[case][0] == fast[case][0], case
    # The warm-up traces also carry the queries Django runs when it opens a connection.
    warm_stock = {
        (s["name"], tuple(sorted(s["attributes"].items()))) for t in stock["warm"] for s in t if s["kind"] == 3
    }
    warm_fast = {(s["name"], tuple(sorted(s["attributes"].items()))) for t in fast["warm"] for s in t if s["kind"] == 3}
    assert warm_stock == warm_fast
    assert any(name == "SET" for name, _ in warm_fast), "no connection set-up query traced"

    # The spans are what they should be, with the stock scopes (Django's, and the dbapi
    # integration's that traces mysqlclient when no instrumentor of its own is installed).
    from importlib.metadata import version

    assert {s["scope"] for t in fast.values() for trace in t for s in trace} == {
        ("opentelemetry.instrumentation.django", version("opentelemetry-instrumentation-django")),
        ("opentelemetry.instrumentation.dbapi", version("opentelemetry-instrumentation-dbapi")),
    }
    one = fast["one-query"][0]
    assert [s["name"] for s in one] == ["GET db", "SELECT"] and one[1]["parent"] == 0 and one[1]["kind"] == 3
    # (the connection's name, user and peer too with the newest mysqlclient; equal to the stock
    # spans whatever the release, above)
    assert {"db.system": "mysql", "db.statement": "SELECT %s"}.items() <= one[1]["attributes"].items()
    assert [s["name"] for s in fast["ten-queries"][0]].count("SELECT") == 10
    not_found = fast["not-found"][0][0]
    assert (
        not_found["name"] == "GET"
        and not_found["status"][0] == 0
        and not_found["attributes"]["http.status_code"] == 404
    )
    error = fast["error"][0][0]
    assert error["status"] == (2, "RuntimeError: demo error") and error["attributes"]["http.status_code"] == 500
    assert [e[0] for e in error["events"]] == ["exception"] and error["events"][0][1][
        "exception.type"
    ] == "RuntimeError"
    joined = fast["traceparent"][0]
    assert joined[0]["trace"] == TRACE_ID and joined[0]["parent"] == f"remote:{PARENT_ID}"
    captured = fast["headers"][0][0]["attributes"]
    assert captured["http.request.header.x_custom_a"] == ["1"]
    assert captured["http.request.header.x_custom_secret"] == ["[REDACTED]"]
    assert "http.request.header.x_other" not in captured
    assert captured["http.response.header.content_type"] == ["text/plain"]
    assert captured["user_agent.synthetic.type"] == "bot" and captured["path"] == "/" and captured["method"] == "GET"


def test_fast_path_with_sqlite_under_uwsgi(start_uwsgi, receiver):
    """With SQLite (the demo's fallback database) the fast path (by default) traces the query as a
    child of the request span, with the stock attributes and scopes."""
    server = start_uwsgi(str(DEMO_INI), env={"OTEL_UWSGI_DEMO_DB": "sqlite", "OTEL_UWSGI_DEMO_SQLITE": ":memory:"})
    assert server.get("/db?case=sqlite")[0] == 200
    server.stop()

    def request_span(spans: list[Any]) -> list[Any]:
        return [s for s in spans if s.kind == "SERVER" and s.attributes.get("http.target") == "/db?case=sqlite"]

    assert receiver.wait_for(lambda spans: bool(request_span(spans)), 15)
    spans = receiver.snapshot()
    root = request_span(spans)[0]
    on_fast_path = re.search(r"\(fast path: ([^)]*)\)", server.uwsgi.log())
    assert on_fast_path and {"django", "sqlite3"} <= set(on_fast_path.group(1).split(", ")), server.uwsgi.log()
    assert root.name == "GET db" and root.scope == "opentelemetry.instrumentation.django"
    db = [s for s in spans if s.parent_span_id == root.span_id]
    assert len(db) == 1 and db[0].name == "SELECT" and db[0].kind == "CLIENT"
    assert db[0].scope == "opentelemetry.instrumentation.dbapi"
    assert db[0].attributes == {"db.system": "sqlite", "db.statement": "SELECT %s"}


#: The Flask demo's cases (``ini/flask.ini``); each request carries ``case=<name>``.
FLASK_CASES: dict[str, tuple[str, dict[str, str]]] = {
    "trivial": ("/", {}),
    "route": ("/item/7", {}),
    "not-found": ("/no/such/page", {}),
    "error": ("/error", {}),
    "traceparent": ("/item/1", {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01", "tracestate": "vendor=1"}),
    "headers": ("/", {"x-custom-a": "1", "x-custom-secret": "hunter2", "x-other": "no", "user-agent": "Googlebot/2.1"}),
}
FLASK_SETTINGS = {
    "otel-python-excluded-urls": "whoami",
    "otel-instrumentation-http-capture-headers-server-request": "x-custom-.*,user-agent",
    "otel-instrumentation-http-capture-headers-server-response": "content-type",
    "otel-instrumentation-http-capture-headers-sanitize-fields": ".*secret",
    "otel-metrics-exporter": "otlp",
    "otel-metric-export-interval": "60000",  # the points compared are the workers' last, sent at exit
    "pythonpath": str(ROOT),
}
_PER_RUN = ("net.host.port", "http.host", "net.host.name")  # the run's own port


def _instrumented(log: str) -> tuple[set[str], set[str]]:
    """What the uWSGI log's ``otel-uwsgi: instrumented a, b (fast path: b)`` line names: (all, fast)."""
    match = re.search(r"otel-uwsgi: instrumented ([^(\n]*)(?:\(fast path: ([^)]*)\))?", log)
    assert match, log[-3000:]
    return set(match.group(1).strip().split(", ")), set((match.group(2) or "").split(", ")) - {""}


def _durations(receiver: Any, service: str) -> dict[tuple[Any, ...], float]:
    """Requests counted by http.server.duration per attribute set (the run's port masked): each
    worker's last cumulative point, summed over the workers."""
    last: dict[tuple[Any, ...], Any] = {}
    for point in receiver.metric_points("http.server.duration"):
        if point.resource.get("service.name") != service:
            continue
        attrs = tuple(sorted((k, v) for k, v in point.attributes.items() if k not in _PER_RUN))
        key = (point.pid, point.scope, attrs)
        if key not in last or point.time_ns > last[key].time_ns:
            last[key] = point
    counts: dict[tuple[Any, ...], float] = {}
    for (_, scope, attrs), point in last.items():
        counts[(scope, attrs)] = counts.get((scope, attrs), 0) + point.value
    return counts


def test_flask_fast_path_emits_the_stock_spans_and_metrics(start_uwsgi, receiver, bodies):
    """The Flask demo under uWSGI (4 workers), stock then fast: a route, a 404, an exception, an
    incoming traceparent, captured headers, an excluded URL give the same server spans (scope
    included: the fast path reports the stock instrumentation's) and the same request-duration
    metric points, recorded to otel-uwsgi's MeterProvider in each worker."""
    from tests.unit.instrumentation.fast.spans import flask_fast_problem

    if flask_fast_problem():  # the fast path's floor line: Flask stays on its stock instrumentation
        pytest.skip(f"the Flask fast path is off here: {flask_fast_problem()}")
    flask = {"ini": "flask.ini", "settings": FLASK_SETTINGS, "cases": FLASK_CASES, "warm": "/item/0?case=warm"}
    stock_status, stock_log, stock_warmed = _run(start_uwsgi, receiver, "flask-stock", False, **flask)
    fast_status, fast_log, fast_warmed = _run(start_uwsgi, receiver, "flask-fast", True, **flask)
    assert "flask" in _instrumented(stock_log)[0] and "flask" not in _instrumented(stock_log)[1]
    assert "flask" in _instrumented(fast_log)[1]
    assert stock_status == fast_status
    assert fast_status["not-found"] == 404 and fast_status["error"] == 500 and fast_status["excluded"] == 200

    spans = [span for body, encoding in bodies for span in _decode(body, encoding)]
    stock, fast = _traces(spans, "flask-stock"), _traces(spans, "flask-fast")
    assert "excluded" not in stock and "excluded" not in fast
    for case in FLASK_CASES:
        assert len(stock[case]) == len(fast[case]) == 1, case
        assert stock[case][0] == fast[case][0], case
    from importlib.metadata import version

    flask_scope = ("opentelemetry.instrumentation.flask", version("opentelemetry-instrumentation-flask"))
    assert {s["scope"] for t in fast.values() for trace in t for s in trace} == {flask_scope}
    route = fast["route"][0][0]
    assert route["name"] == "GET /item/<int:item_id>" and route["attributes"]["http.route"] == "/item/<int:item_id>"
    assert fast["not-found"][0][0]["name"] == "GET /no/such/page"
    error = fast["error"][0][0]
    assert error["status"] == (2, "RuntimeError: demo error") and error["attributes"]["http.status_code"] == 500
    joined = fast["traceparent"][0][0]
    assert joined["trace"] == TRACE_ID and joined["parent"] == f"remote:{PARENT_ID}"
    captured = fast["headers"][0][0]["attributes"]
    assert captured["http.request.header.x_custom_secret"] == ["[REDACTED]"]
    assert captured["http.response.header.content_type"] == ["text/html; charset=utf-8"]

    assert receiver.wait_until(lambda: _durations(receiver, "flask-fast") and _durations(receiver, "flask-stock"), 15)
    stock_counts, fast_counts = _durations(receiver, "flask-stock"), _durations(receiver, "flask-fast")
    # The warm-up requests (/item/0, batches until every worker served one) are counted under the
    # route's attributes too; how many batches that took varies by run, so each run's are taken off.
    for counts, warmed in ((stock_counts, stock_warmed), (fast_counts, fast_warmed)):
        (warm_key,) = [key for key in counts if dict(key[1]).get("http.target") == "/item/<int:item_id>"]
        counts[warm_key] -= warmed
    assert stock_counts == fast_counts
    routes = {dict(attrs).get("http.target") for _, attrs in fast_counts}
    assert {"/item/<int:item_id>", "/error", None} <= routes
