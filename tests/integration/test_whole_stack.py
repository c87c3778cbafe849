"""The whole service traced by the one import line (issue 21), on real uWSGI (master + 4 workers):
a Django service on PostgreSQL (psycopg) with a Redis cache calling a real downstream HTTP
service with requests, and a Flask app.  Per worker pid: every child span is parented to its
request's server span, the downstream service receives the request's trace id in `traceparent`
on every call, and Flask's server spans are named by route.  With and without `lazy-apps`."""

from __future__ import annotations

import collections
from typing import Any

import pytest

from ..conftest import ROOT

pytestmark = pytest.mark.integration

MODES = {"prefork": {}, "lazy-apps": {"lazy-apps": "true"}}
#: The outgoing HTTP clients the Flask app calls with (each one's instrumentation installed).
CLIENTS = ("requests", "httpx", "urllib3", "urllib")


def _children_by_server_span(receiver: Any) -> tuple[list[Any], dict[tuple[str, str], list[Any]]]:
    spans = receiver.snapshot()
    servers = [s for s in spans if s.kind == "SERVER"]
    children: dict[tuple[str, str], list[Any]] = collections.defaultdict(list)
    for span in spans:
        if span.kind != "SERVER":
            children[(span.trace_id, span.parent_span_id)].append(span)
    return servers, children


@pytest.mark.parametrize("mode", MODES)
def test_django_postgres_redis_and_an_outgoing_call(start_uwsgi, receiver, downstream, postgres, redis, mode):
    server = start_uwsgi("django-postgres.ini", extra={**MODES[mode]}, env={"OTEL_UWSGI_DEMO_REDIS": "127.0.0.1:6379"})
    path = f"/trace?downstream={downstream.url}"
    server.until_every_worker_served(path)
    answers = server.hammer(path, 40)
    server.stop()
    server.ship_leftovers()  # lazy-apps: what a worker stopped just before uWSGI marked it idle left
    assert all(status == 200 for status, _ in answers)
    served = server.uwsgi.served()
    assert receiver.wait_for(lambda s: sum(x.kind == "SERVER" for x in s) >= served.total, 15)

    servers, children = _children_by_server_span(receiver)
    traces = [s for s in servers if s.name == "GET trace"]
    probes = [s for s in servers if s.attributes.get("http.target") == "/"]  # the readiness probe(s)
    assert len(servers) == served.total and len(traces) + len(probes) == served.total, [
        (s.name, s.attributes.get("http.target")) for s in servers if s not in traces
    ]
    assert {s.pid for s in traces} == set(served.spawned) and len(served.spawned) == 4
    for request in traces:
        kids = children[(request.trace_id, request.span_id)]
        systems = collections.Counter(k.attributes.get("db.system", k.attributes.get("db.system.name")) for k in kids)
        calls = [
            k
            for k in kids
            if k.kind == "CLIENT" and ("http.method" in k.attributes or "http.request.method" in k.attributes)
        ]
        assert systems["postgresql"] >= 1 and systems["redis"] >= 1 and len(calls) == 1, (request.pid, systems)
        assert all(k.pid == request.pid for k in kids)
    # every call reached the downstream service carrying its request's trace id
    assert len(downstream.calls) == len(traces)
    sent = {headers.get("traceparent", "").split("-")[1] for _, headers in downstream.calls}
    assert sent == {s.trace_id for s in traces}


@pytest.mark.parametrize("mode", [*MODES, "threads"])
def test_flask_server_spans_are_named_by_route(start_uwsgi, receiver, downstream, mode):
    extra = {"threads": "4"} if mode == "threads" else MODES[mode]
    server = start_uwsgi("flask.ini", extra={**extra, "pythonpath": str(ROOT)})
    server.until_every_worker_served("/item/1")
    for i in range(20):
        assert server.get(f"/item/{i}")[0] == 200
    for client in CLIENTS:
        assert server.get(f"/call?client={client}&url={downstream.url}")[0] == 200
    server.stop()
    server.ship_leftovers()  # lazy-apps: what a worker stopped just before uWSGI marked it idle left
    served = server.uwsgi.served()
    assert receiver.wait_for(lambda s: sum(x.kind == "SERVER" for x in s) >= served.total, 15)
    servers, children = _children_by_server_span(receiver)
    items = [
        s for s in servers if s.attributes.get("http.target", s.attributes.get("url.path", "")).startswith("/item/")
    ]
    assert items and {s.name for s in items} == {"GET /item/<int:item_id>"}
    assert {s.attributes["http.route"] for s in items} == {"/item/<int:item_id>"}
    assert {s.pid for s in servers} == set(served.spawned)
    # each HTTP client: one client span, child of the request's server span, whose ids reached the
    # downstream service in traceparent
    calls = [s for s in servers if s.name == "GET /call"]
    assert len(calls) == len(CLIENTS) == len(downstream.calls)
    sent = {tuple(headers["traceparent"].split("-")[1:3]) for _, headers in downstream.calls}
    for call in calls:
        clients = [c for c in children[(call.trace_id, call.span_id)] if c.kind == "CLIENT"]
        assert len(clients) == 1, [c.scope for c in clients]
        assert (call.trace_id, clients[0].span_id) in sent
    scopes = {c.scope for call in calls for c in children[(call.trace_id, call.span_id)]}
    assert {f"opentelemetry.instrumentation.{name}" for name in CLIENTS} <= scopes, scopes
