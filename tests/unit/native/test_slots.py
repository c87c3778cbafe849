"""otel_uwsgi/native/_slots.c: the C code reads and writes the ``__slots__`` fields of a lean span
and of its attributes at their offsets, only for a LeanSpan / LeanAttributes whose slots are the
ones it checked, and otherwise (or for an unset slot) exactly as getattr/setattr would."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_uwsgi.native import accel
from otel_uwsgi.traces.lean.span import LeanAttributes, LeanSpan
from otel_uwsgi.traces.lean.tracer import LeanTracer

native = accel.load()
if native is None or not hasattr(native, "configure_slots"):
    pytest.skip("the C extension is not built or OTEL_UWSGI_NO_EXTENSIONS is set", allow_module_level=True)


def lean_tracer() -> tuple[LeanTracer, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    lean = LeanTracer(provider.get_tracer("slots"))
    assert lean.lean and lean._native is not None, "the C start must serve this tracer"
    return lean, exporter


def test_lean_span_and_attribute_slots_pass_the_checks():
    assert native.configure_slots(LeanSpan, LeanAttributes) == (True, True)


def _refused(base: type) -> list[type]:
    return [
        type("NoSlots", (), {}),  # no such fields at all
        type("Plain", (), {f: None for f in base.__slots__}),  # plain class attributes, not slots
        type("Sub", (base,), {}),  # slots, but the base's: not the class asked about
        type("Props", (), {f: property(lambda self: 1) for f in base.__slots__}),
    ]


@pytest.mark.parametrize(
    ("span_class", "attributes_class", "expected"),
    [(cls, LeanAttributes, (False, True)) for cls in _refused(LeanSpan)]
    + [(LeanSpan, cls, (True, False)) for cls in _refused(LeanAttributes)]
    + [(cls, cls, (False, False)) for cls in _refused(LeanSpan)[:1]],
)
def test_other_layouts_are_refused_and_getattr_then_serves(span_class: Any, attributes_class: Any, expected: Any):
    try:
        assert native.configure_slots(span_class, attributes_class) == expected
        lean, exporter = lean_tracer()  # the C start, end and journal read through getattr now
        span = lean.start_span("GET", None, SpanKind.SERVER, {"a": 1})
        span.update_name("GET /x")
        span.end()
        (done,) = exporter.get_finished_spans()
        assert (done.name, dict(done.attributes), done.end_time is not None) == ("GET /x", {"a": 1}, True)
    finally:
        assert native.configure_slots(LeanSpan, LeanAttributes) == (True, True)


def test_the_c_code_writes_what_python_reads():
    lean, exporter = lean_tracer()
    span = lean.start_span("GET", None, SpanKind.SERVER, {"a": 1})
    assert (span._name, span._kind, span._end_time, span._parent) == ("GET", SpanKind.SERVER, None, None)
    assert span._start_time > 0 and span._attributes["a"] == 1 and span._context.span_id > 0
    assert type(span._attributes) is LeanAttributes and span._attributes._immutable is False
    span._attributes._dict["b"] = "two"  # Python writes, C reads (set_checked_attributes and the encoder)
    span.update_name("GET /x")  # C: lean_update_name
    assert span._name == "GET /x"
    span._name = "GET /y"  # Python writes, C reads (the encoder, on end)
    span.set_checked_attributes({"c": 3})  # C: into the attributes' _dict, under maxlen
    span.end()
    assert span._end_time >= span._start_time and span._attributes._immutable is True  # C wrote it
    (done,) = exporter.get_finished_spans()
    assert done.name == "GET /y" and done.end_time == span._end_time
    assert dict(done.attributes) == {"a": 1, "b": "two", "c": 3}


def test_an_unset_slot_raises_python_s_attribute_error():
    lean, _ = lean_tracer()
    span = object.__new__(lean._span_class)  # no start: every slot empty
    with pytest.raises(AttributeError, match="_lock"):
        span.end()
    with pytest.raises(AttributeError, match="_lock"):
        span.update_name("x")
