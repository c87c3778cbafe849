"""The span journal's C twins (otel_uwsgi/native/_accel.c: ring_append, slot_start, ring_batch)
write and read exactly the bytes of their Python code: records across the end of the ring and
into a full one, slots of spans with local, remote and no parents, batches of several scopes.

And its on_end in C (otel_uwsgi/native/_lifecycle.c: journal_on_end, with the lean start and end
before it) leaves exactly what ``JournalSpanProcessor._on_end_py`` leaves: the same spans through
either give the same journal bytes, freed slots, counters and ledger, also where the C code hands
the span to Python (a lock another thread holds, a span ended twice, a full queue or ring, an SDK
span)."""

from __future__ import annotations

import logging
import os
import random
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry import context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider, sampling
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode

from otel_uwsgi.native import accel
from otel_uwsgi.tools.waiting import wait_until
from otel_uwsgi.traces.journal import directory, ship
from otel_uwsgi.traces.journal import region as region_module
from otel_uwsgi.traces.journal.processor import JournalSpanProcessor
from otel_uwsgi.traces.journal.region import HEADER_SIZE, SLOT_SIZE, Owner, Region
from otel_uwsgi.traces.lean.tracer import LeanTracer
from otel_uwsgi.traces.ledger import Ledger
from tests.unit.traces.twins import VARIANTS, c_built, running_in, use

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


# ------------------------------------------------------------------ on_end: C and Python, same journal

START = 1_700_000_000_000_000_000


@dataclass
class Journal:
    """One process's journal and its processor, fed by lean tracers (and an SDK one) of one provider."""

    region: Region
    processor: JournalSpanProcessor
    ledger: Ledger
    lean: list[LeanTracer]
    sdk: Any
    writes: list[int]  # the spans on_end handed to JournalSpanProcessor._write

    def outcome(self) -> dict[str, Any]:
        """Everything on_end leaves behind: the file, the freed slots, the counters, the ledger."""
        processor = self.processor
        return {
            "journal": bytes(self.region.mm),
            "head": self.region._head,
            "dropped": self.region.dropped,
            "appended": processor._appended,
            "free": list(processor._free),
            "in_flight": sorted(processor._inflight),
            "counts": self.ledger.counts(),
            "shipper_woken": not processor._wake.locked(),  # a batch (4 here) waiting wakes it (released)
        }


def _journal(tmp_path, name: str, *, capacity: int = 1 << 16, max_queue_size: int = 2048) -> Journal:
    region = _region(tmp_path, name, capacity)
    ledger = Ledger()
    processor = JournalSpanProcessor(region, directory.Instance(str(tmp_path), "i"), None, ledger,
                                     schedule_delay_millis=60000, max_export_batch_size=4,
                                     max_queue_size=max_queue_size)
    writes: list[int] = []
    write = processor._write

    def counted_write(span: Any, span_id: int) -> None:
        writes.append(span_id)
        write(span, span_id)

    processor._write = counted_write  # what the C on_end calls, by name, for what it does not write
    provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
    provider.add_span_processor(processor)
    lean = [LeanTracer(provider.get_tracer(name_, "1")) for name_ in ("opentelemetry.instrumentation.wsgi", "db")]
    assert all(t.lean for t in lean)
    for tracer in lean:  # the record prefixes cached (the first span of a scope caches it, in Python)
        ship.scope_prefix(tracer._tracer._instrumentation_scope)
    return Journal(region, processor, ledger, lean, provider.get_tracer("sdk"), writes)


def _both(tmp_path, monkeypatch, scenario: Callable[[Journal], Any], **journal: Any) -> dict[str, Any]:
    """``scenario`` through the C twins and through the Python ones, from the same random state:
    {variant: (its journal's outcome, what the scenario returned, the spans handed to _write)}."""
    if not c_built():
        pytest.skip("the C twins are not built here (or OTEL_UWSGI_NO_EXTENSIONS is set)")
    results = {}
    for variant in VARIANTS:
        with monkeypatch.context() as patched:
            use(variant, patched)
            random.seed(3)
            j = _journal(tmp_path, f"{variant}.journal", **journal)
            returned = scenario(j)
            results[variant] = (j.outcome(), returned, list(j.writes))
    assert results["c"][0] == results["python"][0]
    assert results["c"][1] == results["python"][1]
    return results


def _requests(j: Journal, n: int, offset: int = 0) -> None:
    """``n`` requests: a server span (an in-flight slot) with a client child, some under a remote
    parent; the odd ones also with an attribute the C encoder leaves to Python, an event, an error."""
    wsgi, db = j.lean
    remote = SpanContext(0xABC0 + offset, 0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    for i in range(offset, offset + n):
        parent = trace.set_span_in_context(NonRecordingSpan(remote)) if i % 3 else context.Context()
        server = wsgi.start_span(f"GET /{i}", parent, SpanKind.SERVER, {"http.method": "GET", "i": i}, START + i)
        child = db.start_span("SELECT", trace.set_span_in_context(server), SpanKind.CLIENT, None, START + i + 1)
        if i % 2:
            child.set_attribute("db.rows", [1, 2, 3])
            child.add_event("retry", {"n": 1}, timestamp=START + i + 2)
            child.set_status(Status(StatusCode.ERROR, "boom"))
        child.end(START + i + 3)
        server.end(end_time=START + i + 4)


def test_on_end_leaves_the_journal_its_python_twin_leaves(tmp_path, monkeypatch):
    results = _both(tmp_path, monkeypatch, lambda j: _requests(j, 12))
    c_writes, python_writes = results["c"][2], results["python"][2]
    assert len(python_writes) == 24  # every sampled span, in Python
    assert len(c_writes) == 6  # the C code wrote the others itself: not the 6 with a list attribute
    assert results["c"][0]["appended"] == 24 and results["c"][0]["in_flight"] == []


def test_spans_the_c_on_end_hands_to_python_give_the_same_journal(tmp_path, monkeypatch):
    """An SDK span, an unsampled recording span, a span ended through on_end(span=...): the Python
    twin writes them, as it would have (the unsampled one: its slot freed, nothing written)."""

    def scenario(j: Journal) -> None:
        j.sdk.start_span("sdk", start_time=START).end(START + 1)
        record_only = TracerProvider(resource=RESOURCE, sampler=_RecordOnly(), shutdown_on_exit=False)
        record_only.add_span_processor(j.processor)
        record_only.get_tracer("r").start_span("GET /r", kind=SpanKind.SERVER, start_time=START).end(START + 2)
        span = j.lean[1].start_span("kw", context.Context(), SpanKind.CLIENT, None, START + 3)
        span._end_time = START + 4  # ended by hand: on_end called as the SDK could call it
        j.processor.on_end(span=span)

    results = _both(tmp_path, monkeypatch, scenario)
    assert results["c"][0]["appended"] == 2 and len(results["c"][2]) == 2  # sdk and kw, in Python


class _RecordOnly(sampling.Sampler):
    """A sampler that records without sampling: spans that end but are not kept."""

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None):
        return sampling.SamplingResult(sampling.Decision.RECORD_ONLY)

    def get_description(self) -> str:
        return "record only"


def test_a_new_scope_is_written_by_python_then_by_c(tmp_path, monkeypatch):
    """The first span of a scope whose record prefix is not cached yet: Python writes it (and
    caches the prefix), the C code the next ones."""

    def scenario(j: Journal) -> None:
        provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)  # a new scope object
        provider.add_span_processor(j.processor)
        tracer = LeanTracer(provider.get_tracer("new scope", "2"))
        for i in range(3):
            tracer.start_span(f"s{i}", context.Context(), SpanKind.INTERNAL, None, START + i).end(START + 9)

    results = _both(tmp_path, monkeypatch, scenario)
    assert len(results["python"][2]) == 3 and len(results["c"][2]) == 1  # the first one cached its prefix


def test_the_span_that_fills_a_batch_wakes_the_shipper(tmp_path, monkeypatch):
    def scenario(j: Journal) -> list[bool]:
        woken = []
        for i in range(6):
            j.lean[1].start_span(f"s{i}", context.Context(), SpanKind.CLIENT, None, START).end(START + 1)
            woken.append(not j.processor._wake.locked())  # released: the shipper is woken
            j.processor._wake.acquire(False)  # what the shipper's wake-up does
            if i == 3:  # the shipper takes a batch of 4
                j.processor._handed += 4
        return woken

    results = _both(tmp_path, monkeypatch, scenario)
    assert results["c"][1] == [False, False, False, True, False, False] and results["c"][2] == []


def test_a_full_queue_drops_and_counts_as_in_python(tmp_path, monkeypatch):
    results = _both(tmp_path, monkeypatch, lambda j: _requests(j, 5), max_queue_size=7)
    outcome = results["c"][0]
    assert outcome["appended"] == 7 and outcome["dropped"] == 3 == outcome["counts"].queue_full
    assert outcome["counts"].ended == 10


def test_a_full_ring_drops_and_counts_as_in_python(tmp_path, monkeypatch):
    def scenario(j: Journal) -> list[int]:
        dropped = []
        for round_ in range(6):
            _requests(j, 4, offset=4 * round_)
            dropped.append(j.region.dropped)
            tail, head = j.region.pending()  # the shipper takes a few now and then: the ring wraps
            _, after, _ = j.region.read(tail, head, 3)
            j.region.ack(after)
            j.processor._handed += 3
        return dropped

    results = _both(tmp_path, monkeypatch, scenario, capacity=2048)
    dropped = results["c"][1]
    assert dropped[-1] > 0 and results["c"][0]["dropped"] == dropped[-1]
    assert results["c"][0]["counts"].ended == 48 and results["c"][0]["appended"] == 48 - dropped[-1]


def test_a_span_ended_twice_is_written_once(tmp_path, monkeypatch, caplog):
    def scenario(j: Journal) -> int:
        span = j.lean[0].start_span("GET /", context.Context(), SpanKind.SERVER, None, START)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="opentelemetry.sdk.trace"):
            span.end(START + 1)
            span.end(START + 2)
        return sum(r.getMessage() == "Calling end() on an ended span." for r in caplog.records)

    results = _both(tmp_path, monkeypatch, scenario)
    assert results["c"][1] == 1  # warned once
    assert results["c"][0]["appended"] == 1 == results["c"][0]["counts"].ended


def test_a_held_journal_lock_is_waited_for_as_in_python(tmp_path, monkeypatch):
    """The C on_end does not append while another thread holds the appenders' lock (it could not wait
    for it): its Python twin waits, then appends."""

    def scenario(j: Journal) -> tuple[bool, bool]:
        span = j.lean[0].start_span("GET /", context.Context(), SpanKind.SERVER, None, START)
        before = j.region.pending()
        ender = threading.Thread(target=span.end, args=(START + 1,))
        with j.processor._lock:  # this thread holds it
            ender.start()
            waiting = wait_until(lambda: running_in(ender, "_write"), 5)  # for the lock, there
            appended_meanwhile = j.processor._appended != 0 or j.region.pending() != before
        ender.join(5)
        return waiting, appended_meanwhile or ender.is_alive()

    results = _both(tmp_path, monkeypatch, scenario)
    assert results["c"][1] == (True, False)
    assert results["c"][0]["appended"] == 1 and len(results["c"][2]) == 1  # handed to _write


def _in_flight(j: Journal, n: int) -> list[int]:
    """``n`` server spans left running (in-flight slots), every third one under an unsampled remote
    parent (no slot), one a CLIENT span (no slot); the first of each name is the Python twin's."""
    wsgi, _ = j.lean
    unsampled = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.DEFAULT))
    started = []
    for i in range(n):
        parent = trace.set_span_in_context(NonRecordingSpan(unsampled)) if i % 3 == 2 else context.Context()
        kind = SpanKind.CLIENT if i == 4 else SpanKind.SERVER
        span = wsgi.start_span(f"GET /{i % 4}", parent, kind, {"http.method": "GET", "i": i}, START + i)
        started.append(span.get_span_context().span_id)
    return started


def test_the_slots_of_requests_in_flight_are_the_python_twins(tmp_path, monkeypatch):
    results = _both(tmp_path, monkeypatch, lambda j: _in_flight(j, 6))
    outcome = results["c"][0]
    assert len(outcome["in_flight"]) == 3  # 6 started: 2 unsampled and 1 CLIENT take no slot
    assert outcome["free"] == results["python"][0]["free"]


def test_more_requests_than_slots_leave_the_rest_uncovered_as_in_python(tmp_path, monkeypatch):
    def crowd(j: Journal) -> int:
        _in_flight(j, j.region.slot_count * 2)
        return len(j.processor._inflight)

    results = _both(tmp_path, monkeypatch, crowd)
    assert results["c"][1] == results["c"][0]["in_flight"].__len__() > 0
    assert results["c"][0]["free"] == []


def test_under_gevent_the_slot_is_the_python_twins(tmp_path, monkeypatch):
    """With greenlet imported the slot also records the request's greenlet: the Python twin's job."""
    import types

    main = types.SimpleNamespace(parent=None)  # the main greenlet: no request greenlet to record
    monkeypatch.setitem(sys.modules, "greenlet", types.SimpleNamespace(getcurrent=lambda: main))
    calls = []
    original = JournalSpanProcessor._on_start_py

    def counted(self, span, parent_context=None):
        calls.append(span.name)
        return original(self, span, parent_context)

    monkeypatch.setattr(JournalSpanProcessor, "_on_start_py", counted)
    results = _both(tmp_path, monkeypatch, lambda j: _in_flight(j, 4))
    assert len(results["c"][0]["in_flight"]) == 3
    assert len(calls) == 6  # the 3 sampled starts of each variant, all through the Python twin
