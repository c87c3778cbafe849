"""Records to OTLP: a batch of journal records is the SDK encoder's exact request for the same
spans, and the span a dead request becomes decodes to what the issue asks of it."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_uwsgi.traces.journal import ship
from otel_uwsgi.traces.journal.inflight import Death, Request, dead_span_field, death_of


def _spans():
    ended = []

    class Keep(SpanProcessor):
        def on_end(self, span):
            ended.append(span)

    provider = TracerProvider(resource=Resource({"service.name": "s", "process.pid": 7}), shutdown_on_exit=False)
    provider.add_span_processor(Keep())
    django = provider.get_tracer("opentelemetry.instrumentation.django", "0.1", schema_url="https://x/1.11.0")
    db = provider.get_tracer("opentelemetry.instrumentation.dbapi", "0.2")
    root = django.start_span("GET /a", kind=SpanKind.SERVER, attributes={"http.method": "GET", "n": 3})
    ctx = trace.set_span_in_context(root)
    for i in range(3):
        child = db.start_span(f"SELECT {i}", context=ctx, kind=SpanKind.CLIENT, attributes={"db.system": "mysql"})
        child.add_event("e", {"k": i}) if i == 1 else None
        child.set_status(Status(StatusCode.ERROR, "boom") if i == 2 else Status(StatusCode.OK))
        child.end()
    root.end()
    return ended, provider.resource


def test_a_batch_of_records_is_the_sdk_encoders_request():
    spans, resource = _spans()
    body = ship.body(ship.resource_blob(resource), [ship.record_of(s) for s in spans])
    assert body == encode_spans(spans).SerializePartialToString()


def _request(**kw) -> Request:
    base = dict(
        trace_id=bytes(range(16)), span_id=0x1122334455667788, parent_span_id=0x0102030405060708, parent_remote=True,
        kind=2, thread=1, start_ns=1_000_000_000, stack_ns=0, scope=ship.scope_prefix(None), name="GET /hang",
        attributes=b"", stack="Traceback (most recent call last):\n  File x, in wait_for_the_lock\n",
    )
    base.update(kw)
    return Request(**base)


def test_a_slot_round_trips():
    request = _request(name="GET /é")
    assert Request.unpack(request.pack()) == request


def test_the_cause_is_harakiri_only_when_the_request_ran_that_long():
    request = _request()
    late = death_of(request, heartbeat_ns=request.start_ns + 3_200_000_000, harakiri_s=3, pid=9, worker_id=2)
    assert late.kind == "harakiri" and "harakiri = 3 s" in late.message and "worker 2 (pid 9)" in late.message
    early = death_of(request, heartbeat_ns=request.start_ns + 500_000_000, harakiri_s=3, pid=9, worker_id=2)
    assert early.kind == "worker_died" and early.end_ns == request.start_ns + 500_000_000
    assert death_of(request, heartbeat_ns=0, harakiri_s=0, pid=9, worker_id=0).end_ns == request.start_ns


def test_a_dead_request_decodes_as_an_error_span_with_its_cause_and_stack():
    _, resource = _spans()
    request = _request()
    death = Death("harakiri", "harakiri: the request ran past harakiri = 3 s", 4_000_000_000)
    body = ship.body(ship.resource_blob(resource), [request.scope + dead_span_field(request, death)])
    message = ExportTraceServiceRequest()
    message.ParseFromString(body)
    (span,) = message.resource_spans[0].scope_spans[0].spans
    assert span.trace_id == request.trace_id and span.span_id.hex() == "1122334455667788"
    assert span.parent_span_id.hex() == "0102030405060708" and span.name == "GET /hang" and span.kind == 2
    assert (span.start_time_unix_nano, span.end_time_unix_nano) == (1_000_000_000, 4_000_000_000)
    assert span.status.code == 2 and span.status.message == death.message
    assert {a.key: a.value.string_value for a in span.attributes} == {"error.type": "harakiri"}
    (event,) = span.events
    values = {a.key: a.value.string_value for a in event.attributes}
    assert event.name == "exception" and values["exception.type"] == "harakiri"
    assert "wait_for_the_lock" in values["exception.stacktrace"]
    assert span.flags == 0x300  # the parent is remote (the client's)
