"""The direct OTLP encoder and the fast exporter against the SDK's encoder, over real SDK spans."""

from __future__ import annotations

import gzip
import itertools
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from otel_uwsgi.config.settings import load
from otel_uwsgi.export.encoder import encode_spans
from otel_uwsgi.export.span_exporter import FastOTLPSpanExporter
from otel_uwsgi.traces.provider import build_span_exporter

INT64 = st.integers(-(2**63), 2**63 - 1)
FLOATS = st.floats(allow_nan=True, allow_infinity=True)
TEXT = st.text(max_size=12)
SCALARS = st.one_of(TEXT, st.booleans(), INT64, FLOATS, st.binary(max_size=6))
HOMOGENEOUS = st.one_of(
    st.lists(TEXT, max_size=4),
    st.lists(st.booleans(), max_size=4),
    st.lists(INT64, max_size=4),
    st.lists(FLOATS, max_size=4),
    st.lists(st.binary(max_size=4), max_size=3),
)
# What the SDK (1.45) also lets through: None, ints beyond int64 (the SDK's encoder logs and skips
# the attribute), mixed sequences, mappings, lone surrogates (not UTF-8 encodable: skipped too).
ODD = st.one_of(
    st.none(),
    st.integers(min_value=2**63, max_value=2**70),
    st.integers(min_value=-(2**70), max_value=-(2**63) - 1),
    st.lists(st.one_of(st.none(), INT64, TEXT, st.integers(min_value=2**63, max_value=2**64)), max_size=3),
    st.dictionaries(st.text(min_size=1, max_size=4), st.one_of(st.none(), INT64, TEXT, st.lists(INT64, max_size=2))),
    st.text(st.characters(categories=["Cs"]), min_size=1, max_size=2),
)
VALUES = st.one_of(SCALARS, SCALARS, HOMOGENEOUS, ODD)
KEYS = st.one_of(st.sampled_from(["http.method", "db.system", "k", "ключ", "🔑"]), st.text(min_size=1, max_size=10))
ATTRIBUTES = st.dictionaries(KEYS, VALUES, max_size=6)
TRACE_STATES = st.lists(
    st.tuples(
        st.from_regex(r"\A[a-z][a-z0-9_*/-]{0,6}\Z"), st.from_regex(r"\A[a-zA-Z0-9!#$%&'()*+./:;<>?@^_~-]{1,6}\Z")
    ),
    max_size=3,
)
TRACE_IDS = st.integers(1, 2**128 - 1)
SPAN_IDS = st.integers(1, 2**64 - 1)
LIMITS = st.sampled_from([None, 0, 1, 3])
TIMES = st.one_of(st.none(), st.integers(0, 2**64 - 1))


class DrawnIds(IdGenerator):
    """Trace and span ids counting up from drawn starting points (the SDK's default uses ``random``)."""

    def __init__(self, trace_start: int, span_start: int) -> None:
        self.traces, self.spans = itertools.count(trace_start), itertools.count(span_start)

    def generate_trace_id(self) -> int:
        return next(self.traces) % (2**128 - 1) + 1

    def generate_span_id(self) -> int:
        return next(self.spans) % (2**64 - 1) + 1


def remote_context(draw: Any, trace_states: Any = TRACE_STATES) -> SpanContext:
    return SpanContext(
        draw(TRACE_IDS),
        draw(SPAN_IDS),
        is_remote=draw(st.booleans()),
        trace_flags=TraceFlags(draw(st.integers(0, 255))),
        trace_state=TraceState(draw(trace_states)),
    )


@st.composite
def batches(draw: Any, common: bool = False) -> list[ReadableSpan]:
    """Finished spans from 1-3 real TracerProviders (own resources, tracers and limits), interleaved.

    ``common``: mostly the shape the encoder writes from the span's fields (no events, links or
    trace state), with an odd one among them now and then."""
    odd = (lambda: draw(st.integers(0, 9)) == 0) if common else (lambda: True)
    limits = SpanLimits(
        max_span_attributes=draw(LIMITS),
        max_events=draw(LIMITS),
        max_links=draw(LIMITS),
        max_event_attributes=draw(LIMITS),
        max_link_attributes=draw(LIMITS),
        max_attribute_length=draw(st.sampled_from([None, 2, 50])),
    )
    memory = InMemorySpanExporter()
    ids = DrawnIds(draw(TRACE_IDS), draw(SPAN_IDS))
    resources = [
        Resource(draw(ATTRIBUTES), draw(st.sampled_from([None, "", "https://opentelemetry.io/schemas/1.21.0"])))
        for _ in range(draw(st.integers(1, 3)))
    ]
    if draw(st.booleans()):  # an equal but distinct Resource: the SDK groups the two together
        resources.append(Resource(dict(resources[0].attributes), resources[0].schema_url))
    tracers = []
    for resource in resources:
        provider = TracerProvider(
            resource=resource, span_limits=limits, id_generator=ids, shutdown_on_exit=False
        )
        provider.add_span_processor(SimpleSpanProcessor(memory))
        for _ in range(draw(st.integers(1, 3))):
            scope = (
                draw(st.sampled_from(["django", "dbapi", "", "ünïcode"])),
                draw(st.sampled_from([None, "", "0.66b2"])),
                draw(st.sampled_from([None, "https://opentelemetry.io/schemas/1.11.0"])),
                draw(st.one_of(st.none(), ATTRIBUTES)),
            )
            tracers.append(provider.get_tracer(*scope))
            if draw(st.booleans()):  # same scope again: a distinct, equal InstrumentationScope
                tracers.append(provider.get_tracer(*scope))
    previous = None
    for _ in range(draw(st.integers(1, 8))):
        parent_mode = draw(st.sampled_from(["root", "local", "remote"]))
        context = None
        if parent_mode == "local" and previous is not None:
            context = trace.set_span_in_context(previous)
        elif parent_mode == "remote":
            states = TRACE_STATES if odd() else st.just([])
            context = trace.set_span_in_context(NonRecordingSpan(remote_context(draw, states)))
        links = [
            Link(remote_context(draw), draw(st.one_of(st.none(), ATTRIBUTES)))
            for _ in range(draw(st.integers(0, 3)) if odd() else 0)
        ]
        span = draw(st.sampled_from(tracers)).start_span(
            draw(TEXT),
            context=context,
            kind=draw(st.sampled_from(list(SpanKind))),
            attributes=draw(ATTRIBUTES),
            links=links,
            start_time=draw(TIMES),
        )
        for _ in range(draw(st.integers(0, 3)) if odd() else 0):
            span.add_event(draw(TEXT), draw(st.one_of(st.none(), ATTRIBUTES)), timestamp=draw(TIMES))
        for key, value in draw(ATTRIBUTES).items():
            span.set_attribute(key, value)
        if draw(st.booleans()):
            span.set_status(Status(draw(st.sampled_from(list(StatusCode))), draw(st.one_of(st.none(), TEXT))))
        span.end(end_time=draw(TIMES))
        previous = span
    return list(memory.get_finished_spans())


def decoded(body: bytes) -> dict:
    """A request body as a comparable dict (NaN becomes "NaN", so equal NaNs compare equal)."""
    return MessageToDict(ExportTraceServiceRequest.FromString(body), preserving_proto_field_name=True)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batches())
def test_same_message_and_bytes_as_the_sdk_encoder(spans):
    """For any batch of SDK spans the direct encoder decodes to the SDK's message, byte for byte."""
    expected = sdk_encode_spans(spans)
    ours = encode_spans(spans)
    assert decoded(ours) == MessageToDict(expected, preserving_proto_field_name=True)
    assert ours == expected.SerializeToString()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batches(common=True))
def test_same_bytes_as_the_sdk_for_the_common_span_shape(spans):
    """The same property over batches of mostly event-, link- and trace-state-free spans: the shape
    encoded from the span's own fields (every parent kind, status, limit and attribute type)."""
    assert encode_spans(spans) == sdk_encode_spans(spans).SerializeToString()


def test_common_spans_are_encoded_from_their_fields(monkeypatch):
    """Server and client spans as the SDK and the fast path hand them over (root, local and remote
    parent, attributes of every scalar type, any status code) never need the general encoder."""
    from otel_uwsgi.export import encoder
    from otel_uwsgi.traces.lean.tracer import LeanTracer

    memory = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1), trace_state=TraceState())
    attributes = {"http.method": "GET", "net.host.port": 8000, "ratio": 0.5, "ok": True, "tags": ("a", "b")}
    for tracer in (provider.get_tracer("sdk"), LeanTracer(provider.get_tracer("lean"))):
        root = tracer.start_span("root", None, SpanKind.SERVER, attributes={"http.method": "GET"})
        child = tracer.start_span("child", trace.set_span_in_context(root), SpanKind.CLIENT)
        child.set_attributes(attributes)
        child.set_status(Status(StatusCode.ERROR))
        child.end()
        root.end()
        server = tracer.start_span("remote child", trace.set_span_in_context(NonRecordingSpan(remote)), SpanKind.SERVER)
        server.set_status(Status(StatusCode.OK))
        server.end()
    spans = memory.get_finished_spans()
    assert {type(s).__name__ for s in spans} == {"ReadableSpan", "LeanSpan"}

    general: list[str] = []
    monkeypatch.setattr(encoder, "_span", lambda span: general.append(span.name))  # (an exception would be caught)
    assert encode_spans(spans) == sdk_encode_spans(spans).SerializeToString()
    assert general == []


def test_one_resource_is_hashed_once_not_per_span():
    """The worker's Resource is hashed (json.dumps) once, however many spans and batches use it."""

    class CountingResource(Resource):
        hashes = 0

        def __hash__(self) -> int:
            CountingResource.hashes += 1
            return super().__hash__()

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=CountingResource({"service.name": "shop"}), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    for i in range(300):
        with provider.get_tracer("t").start_as_current_span("s", attributes={"i": i}):
            pass
    spans = memory.get_finished_spans()
    expected = sdk_encode_spans(spans).SerializeToString()
    assert CountingResource.hashes > 300  # the SDK's encoder: one per span
    CountingResource.hashes = 0
    for _ in range(3):
        assert encode_spans(spans) == expected
    assert CountingResource.hashes == 1


def test_span_the_fast_path_cannot_handle_falls_back_to_the_sdk():
    """A hand-made ReadableSpan with a non-str attribute key still gets exactly the SDK's encoding."""
    context = SpanContext(1, 2, is_remote=False)
    span = ReadableSpan("odd", context=context, attributes={1: "x", "ok": 2}, start_time=1, end_time=2)
    expected = sdk_encode_spans([span]).SerializeToString()
    assert encode_spans([span]) == expected
    assert decoded(expected)["resource_spans"][0]["scope_spans"][0]["spans"][0]["attributes"] == [
        {"key": "ok", "value": {"int_value": "2"}}
    ]


# -- the exporter, against a real HTTP server that keeps raw bodies


class Capture:
    """A minimal OTLP/HTTP endpoint on 127.0.0.1 recording each request's headers and raw body."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        capture = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                capture.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def capture() -> Iterator[Capture]:
    server = Capture()
    yield server
    server.stop()


def django_like_spans(n: int = 60) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "shop", "process.pid": 42}), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("opentelemetry.instrumentation.django", "0.66b2")
    for i in range(n):
        with tracer.start_as_current_span("GET /db", kind=SpanKind.SERVER, attributes={"http.method": "GET"}) as s:
            s.set_attribute("http.target", f"/db?i={i}")
            with tracer.start_as_current_span("SELECT", kind=SpanKind.CLIENT, attributes={"db.system": "mysql"}):
                pass
    return list(memory.get_finished_spans())


def test_exporter_body_is_gzip_of_the_sdk_bytes_at_the_chosen_level(capture):
    """Level 1 and 9 bodies differ, both gunzip to exactly the SDK's serialised request, sent as gzip."""
    spans = django_like_spans()
    expected = sdk_encode_spans(spans).SerializeToString()
    for level in (1, 9):
        exporter = FastOTLPSpanExporter(endpoint=capture.url, compression=Compression.Gzip, gzip_level=level)
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        exporter.shutdown()
    (headers1, body1), (headers9, body9) = capture.requests
    assert body1 != body9 and len(body9) < len(body1)
    assert gzip.decompress(body1) == expected and gzip.decompress(body9) == expected
    for headers in (headers1, headers9):
        assert headers["content-encoding"] == "gzip"
        assert headers["content-type"] == "application/x-protobuf"


def test_exporter_without_compression_sends_the_plain_bytes(capture):
    """With compression none the body is the encoded request itself and no Content-Encoding is sent."""
    spans = django_like_spans(5)
    exporter = FastOTLPSpanExporter(endpoint=capture.url, compression=Compression.NoCompression, gzip_level=9)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()
    [(headers, body)] = capture.requests
    assert body == sdk_encode_spans(spans).SerializeToString() and "content-encoding" not in headers


def test_exporter_reports_failure_when_the_collector_is_gone():
    """A refused connection is a FAILURE result (the SDK's client decides retries), not an exception."""
    server = Capture()
    url = server.url
    server.stop()
    exporter = FastOTLPSpanExporter(endpoint=url, compression=Compression.Gzip, timeout=0.5)
    assert exporter.export(django_like_spans(2)) is SpanExportResult.FAILURE
    exporter.shutdown()


def test_build_exporter_uses_the_fast_exporter_unless_disabled():
    """otel-fast-export (default true) picks our exporter with otel-gzip-level; false the stock one."""
    fast = build_span_exporter(load({"otel-gzip-level": b"6"}, {}))
    assert isinstance(fast, FastOTLPSpanExporter) and fast._gzip_level == 6
    stock = build_span_exporter(load({"otel-fast-export": b"false"}, {}))
    assert type(stock) is OTLPSpanExporter
    fast.shutdown()
    stock.shutdown()


def test_gzip_level_out_of_range_is_refused():
    with pytest.raises(ValueError, match="gzip_level"):
        FastOTLPSpanExporter(endpoint="http://127.0.0.1:9/v1/traces", gzip_level=0)


def test_oversized_batch_and_shutdown_fail_without_a_request(capture):
    """max_request_size (measured before compression) and shutdown refuse a batch as the SDK does."""
    spans = django_like_spans(5)
    exporter = FastOTLPSpanExporter(endpoint=capture.url, compression=Compression.Gzip, max_request_size=100)
    assert exporter.export(spans) is SpanExportResult.FAILURE
    exporter.shutdown()
    assert exporter.export(spans) is SpanExportResult.FAILURE
    assert capture.requests == []


def test_the_direct_path_is_on_for_this_sdk():
    """The installed SDK is the one the direct path was checked against: its spans take it."""
    from otel_uwsgi.export import encoder

    assert ReadableSpan in encoder._DIRECT_TYPES


def test_the_direct_path_steps_aside_for_an_sdk_whose_spans_it_misreads(monkeypatch, caplog):
    """When probe spans of the installed SDK do not encode to the SDK encoder's bytes (a new SDK
    laid its spans out otherwise), the direct path is off, one info line says so, and every span
    is still encoded to the SDK's bytes by the general path."""
    import logging

    from otel_uwsgi.export import encoder

    caplog.set_level(logging.INFO, logger="otel_uwsgi")
    try:
        monkeypatch.setattr(encoder, "_direct_span", lambda span: b"\x12\x00")  # misreads every span
        assert encoder._switch_on_direct_path() is None
        assert encoder._DIRECT_TYPES == frozenset()
        assert [r.getMessage() for r in caplog.records if "steps aside" in r.getMessage()]
        spans = django_like_spans(3)
        assert encoder.encode_spans(spans) == sdk_encode_spans(spans).SerializeToString()
    finally:
        monkeypatch.undo()
        encoder.native_span_field = encoder._switch_on_direct_path()
    assert ReadableSpan in encoder._DIRECT_TYPES
