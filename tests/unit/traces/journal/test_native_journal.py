"""The span journal's C twins (otel_uwsgi/native/_accel.c: ring_append, slot_start, ring_batch)
write and read exactly the bytes of their Python code: records across the end of the ring and
into a full one, slots of spans with local, remote and no parents, batches of several scopes."""

from __future__ import annotations

import os
import random

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from otel_uwsgi.native import accel
from otel_uwsgi.traces.journal import directory, ship
from otel_uwsgi.traces.journal import region as region_module
from otel_uwsgi.traces.journal.processor import JournalSpanProcessor
from otel_uwsgi.traces.journal.region import HEADER_SIZE, SLOT_SIZE, Owner, Region
from otel_uwsgi.traces.ledger import Ledger

native = accel.load()
pytestmark = pytest.mark.skipif(native is None or not hasattr(native, "ring_batch"), reason="no C extension here")
RESOURCE = Resource({"service.name": "twins", "process.pid": 7})


def _region(tmp_path, name: str, capacity: int = 4096) -> Region:
    return Region.create(str(tmp_path / name), capacity=capacity, slot_count=4, owner=Owner(os.getpid(), 1, 1, 0, 1),
                         resource=ship.resource_blob(RESOURCE))


def _prefixes() -> list[bytes]:
    provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
    tracers = [provider.get_tracer("a", "1"), provider.get_tracer("b", "2", schema_url="https://s/1"),
               provider.get_tracer("c")]
    return [ship.scope_prefix(t._instrumentation_scope) for t in tracers]


def test_ring_append_writes_the_python_append_bytes(tmp_path, monkeypatch):
    c_region, py_region = _region(tmp_path, "c.journal"), _region(tmp_path, "py.journal")
    rng = random.Random(5)
    prefixes = _prefixes()
    for _ in range(400):
        prefix, field = rng.choice(prefixes), bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        span_id = rng.getrandbits(64) or 1
        done = c_region.append_fields(span_id, prefix, field)
        assert done == py_region.append(span_id, prefix + field)
        if not done or rng.random() < 0.3:  # full, or now and then: the shipper frees some room
            limit = rng.randrange(1, 6)
            for r in (c_region, py_region):
                tail, head = r.pending()
                _, after, _ = r.read(tail, head, limit)
                r.ack(after)
    assert bytes(c_region.mm) == bytes(py_region.mm)


def test_ring_batch_builds_the_python_body(tmp_path):
    region = _region(tmp_path, "b.journal", capacity=8192)
    rng = random.Random(9)
    prefixes = _prefixes()
    for _ in range(40):
        for _ in range(rng.randrange(1, 30)):
            if not region.append(rng.getrandbits(63) + 1, rng.choice(prefixes) + os.urandom(rng.randrange(1, 200))):
                break
        tail, head = region.pending()
        limit = rng.randrange(1, 40)
        built = region.batch_body(tail, head, limit)
        records, after, problem = region.read(tail, head, limit, verify=False)
        assert problem is None and built is not None
        assert built == (ship.body(region.resource, [p for _, p in records]), len(records), after)
        region.ack(after)


def _spans():
    provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
    tracer = provider.get_tracer("opentelemetry.instrumentation.django", "1")
    local = tracer.start_span("parent")
    remote = NonRecordingSpan(SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1)))
    yield tracer.start_span("GET /", kind=SpanKind.SERVER)
    yield tracer.start_span("GET /a", kind=SpanKind.SERVER, context=trace.set_span_in_context(local))
    yield tracer.start_span("GET /b", kind=SpanKind.SERVER, context=trace.set_span_in_context(remote))
    off = TracerProvider(resource=RESOURCE, sampler=ALWAYS_OFF, shutdown_on_exit=False).get_tracer("x")
    yield off.start_span("GET /unsampled", kind=SpanKind.SERVER)


def test_slot_start_writes_the_python_slot(tmp_path):
    for i, span in enumerate(_spans()):
        c_region, py_region = _region(tmp_path, f"c{i}.journal"), _region(tmp_path, f"py{i}.journal")
        ledger = Ledger()
        twin = JournalSpanProcessor(py_region, directory.Instance(str(tmp_path), "i"), None, ledger,
                                    schedule_delay_millis=1000, max_export_batch_size=10)
        tail = b"\x03\x00\x00\x00abc"
        got = region_module.SLOT_START(c_region.mm, HEADER_SIZE, span, tail, 77, SLOT_SIZE)
        assert got == twin._put_slot(0, span, tail, 77)
        assert bytes(c_region.mm[HEADER_SIZE:HEADER_SIZE + SLOT_SIZE]) == bytes(
            py_region.mm[HEADER_SIZE:HEADER_SIZE + SLOT_SIZE])
        assert (got is None) == (i == 3)
