"""``LeanTracer`` makes the spans the SDK's tracer makes: same fields, same exported data, the
SDK's own path whenever a shortcut would not be exact (custom sampler, value-length limit,
attribute values it has not checked).

Every test runs twice (the ``twin`` fixture): through the C start and end of
otel_uwsgi/native/_lifecycle.c (``c``, where built) and through their Python twins
``LeanTracer._start_py`` and ``LeanSpan._end_py`` (``python``)."""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry import context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider, sampling
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import Status, StatusCode

from otel_uwsgi.tools.waiting import wait_until
from otel_uwsgi.traces.lean.sampling import decider as _decider
from otel_uwsgi.traces.lean.span import LeanSpan
from otel_uwsgi.traces.lean.tracer import LeanTracer
from tests.unit.traces.twins import VARIANTS, running_in, use

ATTRIBUTES = {"http.method": "GET", "net.host.port": 8000, "ratio": 0.5, "flag": True, "http.target": "/db"}
REMOTE = SpanContext(
    0x0AF7651916CD43DD8448EB211C80319C,
    0xB7AD6B7169203331,
    is_remote=True,
    trace_flags=TraceFlags(TraceFlags.SAMPLED),
    trace_state=TraceState([("vendor", "value")]),
)


@dataclass
class Twin:
    """Which twin a test runs through, and (``c``) how often the C code handed a call to Python."""

    name: str
    start_py: int = 0  # calls of LeanTracer._start_py
    end_py: int = 0  # calls of LeanSpan._end_py
    checked_py: int = 0  # calls of LeanSpan._set_checked_py
    renamed_py: int = 0  # calls of LeanSpan._update_name_py


@pytest.fixture(autouse=True, params=VARIANTS)
def twin(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Twin:
    """The C start and end (``c``, where built), or their Python twins in their place (``python``):
    every test of this module proves both.  Under ``c`` the Python twins count the calls the C
    code hands them (its fallbacks), so a test can tell which one did the work."""
    twin = Twin(request.param)
    start_py, end_py, checked_py = LeanTracer._start_py, LeanSpan._end_py, LeanSpan._set_checked_py
    renamed_py = LeanSpan._update_name_py
    use(twin.name, monkeypatch)
    if twin.name == "python":
        return twin

    def counted_start(self: LeanTracer, *args: Any, **kwargs: Any) -> Any:
        twin.start_py += 1
        return start_py(self, *args, **kwargs)

    def counted_end(self: LeanSpan, *args: Any, **kwargs: Any) -> Any:
        twin.end_py += 1
        return end_py(self, *args, **kwargs)

    def counted_checked(self: LeanSpan, *args: Any, **kwargs: Any) -> Any:
        twin.checked_py += 1
        return checked_py(self, *args, **kwargs)

    monkeypatch.setattr(LeanTracer, "_start_py", counted_start)
    monkeypatch.setattr(LeanSpan, "_end_py", counted_end)
    def counted_renamed(self: LeanSpan, *args: Any, **kwargs: Any) -> Any:
        twin.renamed_py += 1
        return renamed_py(self, *args, **kwargs)

    monkeypatch.setattr(LeanSpan, "_set_checked_py", counted_checked)
    monkeypatch.setattr(LeanSpan, "_update_name_py", counted_renamed)
    return twin


def handed_to_python(twin: Twin, starts: int, ends: int = 0) -> bool:
    """Whether the C code handed exactly these calls to its Python twins (always true for ``python``)."""
    return twin.name == "python" or (twin.start_py, twin.end_py) == (starts, ends)


def pipeline(**provider_kwargs: Any) -> tuple[Any, LeanTracer, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "lean"}), **provider_kwargs)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("scope", "1.2", schema_url="https://opentelemetry.io/schemas/1.11.0")
    return tracer, LeanTracer(tracer), exporter


def exported(span: Any) -> dict[str, Any]:
    """Everything an exporter reads from a finished span, ids and times aside."""
    return {
        "name": span.name,
        "kind": span.kind,
        "parent": span.parent,
        "trace_flags": span.context.trace_flags,
        "trace_state": span.context.trace_state,
        "remote": span.context.is_remote,
        "attributes": dict(span.attributes),
        "events": [(e.name, dict(e.attributes)) for e in span.events],
        "links": [(link.context, dict(link.attributes)) for link in span.links],
        "status": (span.status.status_code, span.status.description),
        "resource": span.resource,
        "scope": span.instrumentation_scope,
        "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
        "timed": span.start_time is not None and span.end_time is not None and span.end_time >= span.start_time,
    }


def both(tracer: Any, lean: LeanTracer, ctx: Any = None, attributes: Any = ATTRIBUTES, kind=SpanKind.SERVER):
    return (
        tracer.start_span("GET", ctx, kind, attributes=attributes),
        lean.start_span("GET", ctx, kind, attributes=attributes),
    )


def test_a_lean_span_has_every_field_of_an_sdk_span_with_the_same_values(twin):
    tracer, lean, _ = pipeline()
    assert lean.lean
    ctx = trace.set_span_in_context(NonRecordingSpan(REMOTE))
    sdk_span, lean_span = both(tracer, lean, ctx)
    assert isinstance(lean_span, LeanSpan)
    if twin.name == "c":  # the C start made it, without its Python twin
        assert isinstance(lean._native, tuple) and LeanTracer.start_span is not LeanTracer._start_py
        assert twin.start_py == 0
    # Every field of the SDK's span, on the instance or (shared by the tracer's spans) its class
    assert all(hasattr(lean_span, field) for field in vars(sdk_span))  # an SDK release adding a field fails here
    # The 8 fields that differ per span are its slots, all set by the start; nothing is in its __dict__
    assert vars(lean_span) == {}
    assert all(hasattr(lean_span, field) for field in LeanSpan.__slots__)
    assert lean_span._end_time is None
    differ = {"_context", "_start_time", "_end_time", "_lock", "_attributes", "_events", "_links", "_status"}
    for field in vars(sdk_span).keys() - differ:
        assert getattr(sdk_span, field) == getattr(lean_span, field), field
    assert lean_span.get_span_context() == SpanContext(
        lean_span.context.trace_id, lean_span.context.span_id, False, sdk_span.context.trace_flags, REMOTE.trace_state
    )  # built as a tuple, as SpanContext() builds it
    assert (sdk_span.status.status_code, sdk_span.status.description) == (
        lean_span.status.status_code,
        lean_span.status.description,
    )
    assert vars(sdk_span._attributes).keys() == set(type(lean_span._attributes).__slots__)  # its fields, in slots
    for field in ("maxlen", "max_value_len", "dropped", "_immutable", "_dict"):
        assert getattr(sdk_span._attributes, field) == getattr(lean_span._attributes, field), field
    for field in ("_events", "_links"):  # empty until the first event/link (a tuple, then a BoundedList)
        assert list(getattr(sdk_span, field)) == list(getattr(lean_span, field)) == [], field
    assert lean_span.get_span_context().trace_id == REMOTE.trace_id
    assert lean_span.get_span_context().span_id != sdk_span.get_span_context().span_id


@pytest.mark.parametrize("parent", ["root", "remote", "local"])
def test_the_exported_spans_are_the_same(parent):
    tracer, lean, exporter = pipeline()
    ctx = None
    if parent == "remote":
        ctx = trace.set_span_in_context(NonRecordingSpan(REMOTE))
    elif parent == "local":
        ctx = trace.set_span_in_context(tracer.start_span("outer"))
    token = context.attach(ctx) if ctx is not None else None
    try:
        for span in both(tracer, lean, None, kind=SpanKind.CLIENT):
            span.update_name("GET /items")
            span.set_attribute("http.status_code", 500)
            span.set_attributes({"list": [1, 2], "bad": object()})  # user values: still checked
            span.add_event("event", {"n": 1})
            span.add_link(REMOTE, {"why": "test"})
            span.record_exception(ValueError("boom"))
            span.set_status(Status(StatusCode.ERROR, "boom"))
            span.end()
    finally:
        if token is not None:
            context.detach(token)
    sdk_span, lean_span = exporter.get_finished_spans()
    one, other = exported(sdk_span), exported(lean_span)
    one["events"][-1][1].pop("exception.stacktrace"), other["events"][-1][1].pop("exception.stacktrace")
    assert one == other
    assert other["attributes"]["list"] == (1, 2)  # the SDK's checks ran on what user code set
    assert other["timed"]
    if parent == "root":
        assert lean_span.parent is None
        assert lean_span.context.trace_flags == sdk_span.context.trace_flags
    else:
        assert lean_span.context.trace_id == sdk_span.context.trace_id


def test_an_ended_lean_span_changes_no_more_and_is_exported_once(caplog, twin):
    _, lean, exporter = pipeline()
    span = lean.start_span("GET", None, SpanKind.SERVER, attributes=dict(ATTRIBUTES))
    span.end()
    with caplog.at_level(logging.WARNING):
        span.set_attribute("late", 1)
        span.update_name("late")
        span.set_status(Status(StatusCode.ERROR))
        span.end()
    (finished,) = exporter.get_finished_spans()
    assert finished.name == "GET" and "late" not in finished.attributes
    assert finished.status.status_code is StatusCode.UNSET
    assert "ended span" in caplog.text
    assert twin.name == "python" or twin.renamed_py == 1  # the ended span's rename: the twin warns


def test_the_callers_attributes_are_copied_not_kept():
    _, lean, exporter = pipeline()
    attributes = dict(ATTRIBUTES)
    span = lean.start_span("GET", None, SpanKind.SERVER, attributes=attributes)
    attributes["later"] = "x"
    span.end()
    assert "later" not in exporter.get_finished_spans()[0].attributes


@pytest.mark.parametrize(
    "sampler,recorded",
    [
        (sampling.ALWAYS_OFF, False),
        (sampling.ParentBased(sampling.ALWAYS_OFF), False),
        (sampling.TraceIdRatioBased(1.0), True),
        (sampling.ParentBasedTraceIdRatio(0.0), False),
    ],
)
def test_sdk_samplers_decide_as_with_the_sdk(sampler, recorded):
    tracer, lean, exporter = pipeline(sampler=sampler)
    assert lean.lean
    sdk_span, lean_span = both(tracer, lean)
    assert sdk_span.is_recording() is lean_span.is_recording() is recorded
    assert sdk_span.get_span_context().trace_flags == lean_span.get_span_context().trace_flags
    sdk_span.end(), lean_span.end()
    assert len(exporter.get_finished_spans()) == (2 if recorded else 0)


class AddingSampler(sampling.Sampler):
    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None):
        return sampling.SamplingResult(sampling.Decision.RECORD_AND_SAMPLE, {**(attributes or {}), "sampler": "yes"})

    def get_description(self) -> str:
        return "adding"


def test_a_custom_sampler_takes_the_sdk_path():
    _, lean, exporter = pipeline(sampler=sampling.ParentBased(AddingSampler()))
    assert not lean.lean
    span = lean.start_span("GET", None, SpanKind.SERVER, attributes=dict(ATTRIBUTES))
    span.end()
    assert not isinstance(span, LeanSpan)
    assert exporter.get_finished_spans()[0].attributes["sampler"] == "yes"


@pytest.mark.parametrize("ctx", [None, context.Context()], ids=["no-context", "context"])
def test_a_value_length_limit_takes_the_sdk_path(ctx):
    """With a context too, the case the C start takes: a tracer that is not lean has no C state."""
    _, lean, exporter = pipeline(span_limits=SpanLimits(max_span_attribute_length=3))
    assert not lean.lean and lean._native is None
    span = lean.start_span("GET", ctx, SpanKind.SERVER, attributes={**ATTRIBUTES, "http.route": "/items"})
    assert not isinstance(span, LeanSpan)
    span.end()
    assert exporter.get_finished_spans()[0].attributes["http.target"] == "/db"
    assert exporter.get_finished_spans()[0].attributes["http.method"] == "GET"
    assert exporter.get_finished_spans()[0].attributes["http.route"] == "/it"  # the SDK's truncation


@pytest.mark.parametrize(
    "attributes",
    [
        {"list": ["a", "b"]},
        {"none": None},
        {"": "empty key"},
        {f"k{i}": i for i in range(5)},  # more than the limit of 3 below
    ],
)
def test_attributes_the_lean_path_has_not_checked_take_the_sdk_path(attributes):
    tracer, lean, exporter = pipeline(span_limits=SpanLimits(max_span_attributes=3))
    sdk_span, lean_span = both(tracer, lean, attributes=attributes)
    assert not isinstance(lean_span, LeanSpan)
    sdk_span.end(), lean_span.end()
    one, other = (exported(s) for s in exporter.get_finished_spans())
    assert one == other


def test_without_an_sdk_tracer_it_delegates():
    lean = LeanTracer(trace.NoOpTracer())
    assert not lean.lean
    span = lean.start_span("GET", None, SpanKind.SERVER, attributes=dict(ATTRIBUTES))
    assert not span.is_recording()


@pytest.mark.parametrize(
    ("later", "shortcut"),
    [
        ({"http.route": "items/<int:pk>", "http.status_code": 200}, True),  # new keys: the shortcut
        ({"http.method": "POST", "http.status_code": 200}, False),  # a key already set moves to the end
        ({"list": ["a"]}, False),  # a value the shortcut has not checked
        ({"": 1}, False),  # a key the SDK refuses
        ({f"k{i}": i for i in range(4)}, False),  # more than the limit: the oldest are dropped
    ],
)
def test_checked_attributes_end_as_with_set_attributes(later, shortcut, twin):
    tracer, lean, exporter = pipeline(span_limits=SpanLimits(max_span_attributes=8))
    sdk_span, lean_span = both(tracer, lean)
    sdk_span.set_attributes(later)
    lean_span.set_checked_attributes(later)
    sdk_span.end(), lean_span.end()
    one, other = exporter.get_finished_spans()
    assert list(one.attributes.items()) == list(other.attributes.items())  # order too: it is exported
    assert one.dropped_attributes == other.dropped_attributes
    assert twin.name == "python" or twin.checked_py == (0 if shortcut else 1)  # what the C twin took


def test_checked_attributes_on_an_ended_span_are_ignored(caplog, twin):
    _, lean, exporter = pipeline()
    span = lean.start_span("GET", None, SpanKind.SERVER, attributes=dict(ATTRIBUTES))
    span.end()
    with caplog.at_level(logging.WARNING):
        span.set_checked_attributes({"late": 1})
    assert "late" not in exporter.get_finished_spans()[0].attributes
    assert "ended span" in caplog.text
    assert twin.name == "python" or twin.checked_py == 1


@pytest.mark.parametrize(
    ("method", "argument", "twin_name"),
    [("set_checked_attributes", {"late": 1}, "_set_checked_py"), ("update_name", "renamed", "_update_name_py")],
)
def test_a_change_waits_for_a_lock_another_thread_holds(twin, method, argument, twin_name):
    """The C twins do not change a span whose lock is held: the Python twin waits for it."""
    _, lean, exporter = pipeline()
    span = lean.start_span("a", context.Context(), SpanKind.SERVER)
    changer = threading.Thread(target=getattr(span, method), args=(argument,))
    with span._lock:
        changer.start()
        waiting = wait_until(lambda: running_in(changer, twin_name), 5)
        changed_meanwhile = "late" in span._attributes or span._name != "a"
    changer.join(5)
    span.end()
    assert waiting and not changed_meanwhile and not changer.is_alive()
    finished = exporter.get_finished_spans()[0]
    assert finished.attributes.get("late") == 1 if method == "set_checked_attributes" else finished.name == "renamed"
    assert twin.name == "python" or twin.checked_py + twin.renamed_py == 1


def test_events_and_links_beyond_the_limits_are_dropped_as_by_the_sdk():
    tracer, lean, exporter = pipeline(span_limits=SpanLimits(max_events=2, max_links=1))
    for span in both(tracer, lean):
        for i in range(3):
            span.add_event(f"e{i}")
            span.add_link(REMOTE, {"i": i})
        span.end()
        span.add_event("late")  # ignored, with the SDK's warning
    one, other = (exported(s) for s in exporter.get_finished_spans())
    assert one == other
    assert other["dropped"] == (0, 1, 2) and [name for name, _ in other["events"]] == ["e1", "e2"]


SAMPLERS = [
    sampling.ALWAYS_ON,
    sampling.ALWAYS_OFF,
    sampling.TraceIdRatioBased(0.5),
    sampling.ParentBased(sampling.ALWAYS_ON),
    sampling.ParentBased(sampling.ALWAYS_OFF),
    sampling.ParentBasedTraceIdRatio(0.25),
    sampling.ParentBased(
        sampling.TraceIdRatioBased(0.5),
        remote_parent_sampled=sampling.ALWAYS_OFF,
        remote_parent_not_sampled=sampling.ALWAYS_ON,
        local_parent_sampled=sampling.TraceIdRatioBased(0.1),
        local_parent_not_sampled=sampling.ALWAYS_ON,
    ),
]


@pytest.mark.parametrize("sampler", SAMPLERS, ids=lambda s: s.get_description())
def test_the_decisions_are_the_sdk_samplers_decisions(sampler):
    import random

    rng = random.Random(5)
    decide = _decider(sampler)
    for _ in range(400):
        trace_id = rng.getrandbits(128) or 1
        flags = TraceFlags(rng.choice([TraceFlags.DEFAULT, TraceFlags.SAMPLED]))
        parent = rng.choice(
            [None, SpanContext(trace_id, rng.getrandbits(64) or 1, is_remote=rng.random() < 0.5, trace_flags=flags)]
        )
        ctx = trace.set_span_in_context(NonRecordingSpan(parent)) if parent is not None else None
        expected = sampler.should_sample(ctx, trace_id, "GET").decision
        assert decide(parent, trace_id) is expected, (parent, trace_id)


@pytest.mark.parametrize("sampler", SAMPLERS, ids=lambda s: s.get_description())
def test_a_root_decision_taken_without_the_decider_is_the_samplers(sampler):
    """Where a root span's decision does not depend on the trace id it is taken once, and it is the
    SDK sampler's for every trace id; where it does (a ratio at the root) none is taken."""
    from otel_uwsgi.traces.lean.sampling import root_decision as _root_decision

    decision = _root_decision(sampler)
    root = getattr(sampler, "_root", sampler)
    assert (decision is None) is (type(root) is not sampling.StaticSampler)
    if decision is not None:
        for trace_id in (1, 2**64, 2**128 - 1, 0xABCDEF):
            assert sampler.should_sample(None, trace_id, "GET").decision is decision


def test_ids_are_the_sdk_generators_from_the_same_random_state():
    """With the SDK's RandomIdGenerator, lean spans draw the same trace and span ids from ``random``
    as the SDK's spans do (same calls, same order), roots and children alike."""
    import random

    tracer, lean, _ = pipeline()

    def ids(start: Any) -> list[tuple[int, int]]:
        random.seed(42)
        root = start("root", None)
        child = start("child", trace.set_span_in_context(root))
        return [(s.get_span_context().trace_id, s.get_span_context().span_id) for s in (root, child)]

    assert ids(tracer.start_span) == ids(lean.start_span)


def test_an_sdk_with_other_span_fields_gets_its_own_path(monkeypatch):
    from otel_uwsgi.traces.lean import tracer as lean_module

    tracer, _, exporter = pipeline()
    assert LeanTracer(tracer).lean
    monkeypatch.setattr(lean_module, "_SPAN_FIELDS", lean_module._SPAN_FIELDS | {"_new_sdk_field"})
    lean = LeanTracer(tracer)
    assert not lean.lean
    span = lean.start_span("GET", None, SpanKind.SERVER, attributes=dict(ATTRIBUTES))
    span.end()
    assert not isinstance(span, LeanSpan) and len(exporter.get_finished_spans()) == 1


def test_an_sdk_whose_start_span_takes_other_arguments_gets_its_own_path(monkeypatch, caplog):
    """A new SDK keyword on ``Tracer.start_span`` would not reach a lean start written before it:
    the lean start steps aside, with one info line per process."""
    import logging

    from otel_uwsgi.traces.lean import tracer as lean_module

    caplog.set_level(logging.INFO, logger="otel_uwsgi")
    monkeypatch.setattr(lean_module, "_told", False)
    monkeypatch.setattr(lean_module, "_START_SPAN_PARAMETERS", [*lean_module._START_SPAN_PARAMETERS, "new_keyword"])
    tracer, _, exporter = pipeline()
    assert not LeanTracer(tracer).lean and not LeanTracer(tracer).lean
    told = [r.getMessage() for r in caplog.records if "lean span start steps aside" in r.getMessage()]
    assert len(told) == 1 and "start_span takes other arguments" in told[0]


def test_an_sdk_tracer_without_the_parts_read_gets_its_own_path(monkeypatch):
    tracer, _, _ = pipeline()
    monkeypatch.delattr(tracer, "_tracer_metrics")
    assert not LeanTracer(tracer).lean


class Recording(SpanProcessor):
    """A processor whose every hook records the span's name."""

    def __init__(self, seen: list[str], label: str) -> None:
        self.seen, self.label = seen, label

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.seen.append(f"{self.label} start {span.name}")

    def _on_ending(self, span: Any) -> None:
        self.seen.append(f"{self.label} ending {span.name}")

    def on_end(self, span: Any) -> None:
        self.seen.append(f"{self.label} end {span.name}")


@pytest.mark.parametrize("ctx", [None, context.Context()], ids=["no-context", "context"])
def test_processors_are_called_in_order_including_those_added_or_removed_later(twin, ctx):
    """Spans call the processors' hooks directly: the chain's order, re-read when it changes (at a
    span's start, and at its end: a span started before the change ends with the new chain)."""
    provider = TracerProvider()
    seen: list[str] = []
    first, second = Recording(seen, "1"), Recording(seen, "2")
    provider.add_span_processor(first)
    lean = LeanTracer(provider.get_tracer("scope"))
    assert lean.lean
    lean.start_span("a", ctx, SpanKind.INTERNAL).end()
    provider.add_span_processor(second)
    lean.start_span("b", ctx, SpanKind.INTERNAL).end()
    d = lean.start_span("d", ctx, SpanKind.INTERNAL)
    chain = provider._active_span_processor
    chain._span_processors = (second,)  # what otel-uwsgi's first-request processor does to itself
    d.end()
    lean.start_span("c", ctx, SpanKind.INTERNAL).end()
    assert seen == [
        "1 start a", "1 ending a", "1 end a",
        "1 start b", "2 start b", "1 ending b", "2 ending b", "1 end b", "2 end b",
        "1 start d", "2 start d", "2 ending d", "2 end d",
        "2 start c", "2 ending c", "2 end c",
    ]  # fmt: skip
    assert handed_to_python(twin, 0)  # without a context too: the C start reads the current one


def test_hooks_that_do_nothing_are_skipped_and_the_others_kept():
    from opentelemetry.sdk.trace import SpanProcessor as Base
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from otel_uwsgi.traces.lean.span import _does_nothing
    from otel_uwsgi.traces.processor import CountingBatchSpanProcessor

    exporter = InMemorySpanExporter()
    batch = BatchSpanProcessor(exporter)
    try:
        assert _does_nothing(batch.on_start) and _does_nothing(batch._on_ending)  # `pass`
        assert _does_nothing(Base().on_start) and _does_nothing(Base()._on_ending)  # a docstring
        assert not _does_nothing(batch.on_end)
        assert not _does_nothing(Recording([], "r").on_start)
        assert not _does_nothing(CountingBatchSpanProcessor.on_end.__get__(batch))
        assert not _does_nothing(print) and not _does_nothing(lambda span: None.missing)
    finally:
        batch.shutdown()


def test_a_provider_with_another_processor_chain_gets_it_called(twin):
    from opentelemetry.sdk.trace import ConcurrentMultiSpanProcessor

    chain = ConcurrentMultiSpanProcessor(2)
    provider = TracerProvider(active_span_processor=chain, shutdown_on_exit=False)
    seen: list[str] = []
    provider.add_span_processor(Recording(seen, "c"))
    lean = LeanTracer(provider.get_tracer("scope"))
    lean.start_span("a").end()
    lean.start_span("b", context.Context(), SpanKind.SERVER).end()  # the C start's case
    chain.shutdown()
    assert sorted(seen) == ["c end a", "c end b", "c ending a", "c ending b", "c start a", "c start b"]
    assert handed_to_python(twin, 1)


@pytest.mark.parametrize("max_attributes", [None, 0, 1, 3])
def test_set_attribute_keeps_what_the_sdk_keeps(max_attributes):
    """Random set_attribute sequences (odd keys and values, repeats, a full span) end with the
    attributes and drop count the SDK's span has."""
    import random

    rng = random.Random(max_attributes)
    keys = ["a", "b", "c", "", None, 3, "d"]
    values = ["x", 1, 2.5, True, b"raw", None, ["l", "m"], ("t",), {"no": 1}, 10**30]
    for _ in range(60):
        tracer, lean, _ = pipeline(span_limits=SpanLimits(max_span_attributes=max_attributes))
        start = {"a": "first"} if rng.random() < 0.5 else None
        sdk_span = tracer.start_span("s", attributes=start)
        lean_span = lean.start_span("s", attributes=start)
        assert isinstance(lean_span, LeanSpan) or (start and max_attributes == 0)  # too many: the SDK's
        for _ in range(rng.randint(0, 8)):
            key, value = rng.choice(keys), rng.choice(values)
            sdk_span.set_attribute(key, value)
            lean_span.set_attribute(key, value)
        assert list(sdk_span.attributes.items()) == list(lean_span.attributes.items())
        assert sdk_span.dropped_attributes == lean_span.dropped_attributes
        sdk_span.end(), lean_span.end()
        sdk_span.set_attribute("late", 1), lean_span.set_attribute("late", 1)
        assert dict(sdk_span.attributes) == dict(lean_span.attributes)


def test_a_lean_sdk_tracer_starts_lean_spans_unless_asked_for_what_it_skips():
    from opentelemetry.trace import Link

    from otel_uwsgi.traces.lean.tracer import LeanSdkTracer, make_lean
    from otel_uwsgi.traces.provider import LeanTracerProvider

    provider = LeanTracerProvider(shutdown_on_exit=False)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("stock.instrumentation", "1.0")
    assert type(tracer) is LeanSdkTracer and make_lean(tracer) is tracer
    with tracer.start_as_current_span("outer", kind=SpanKind.SERVER, attributes={"k": "v"}) as outer:
        assert isinstance(outer, LeanSpan)
        inner = tracer.start_span("timed", start_time=1234)
        assert isinstance(inner, LeanSpan) and inner.start_time == 1234 and inner.parent == outer.context
        inner.end(end_time=5678)
        linked = tracer.start_span("linked", links=[Link(REMOTE)])
        quiet = tracer.start_span("quiet", record_exception=False)
        assert not isinstance(linked, LeanSpan) and not isinstance(quiet, LeanSpan)  # the SDK's own
        assert quiet._record_exception is False and len(linked.links) == 1
        linked.end(), quiet.end()
    names = [s.name for s in exporter.get_finished_spans()]
    assert names == ["timed", "linked", "quiet", "outer"]
    assert exporter.get_finished_spans()[0].end_time == 5678


def test_lean_spans_can_be_switched_off():
    from opentelemetry.sdk.trace import Tracer

    from otel_uwsgi.config.settings import load
    from otel_uwsgi.traces.provider import LeanTracerProvider, build_provider

    none = {"OTEL_TRACES_EXPORTER": "none"}
    on = build_provider(load({}, none), Resource.create({}))
    off = build_provider(load({}, {**none, "OTEL_UWSGI_LEAN_SPANS": "false"}), Resource.create({}))
    off_ini = build_provider(load({"otel-lean-spans": "false"}, none), Resource.create({}))
    assert type(on) is LeanTracerProvider and type(off) is not LeanTracerProvider
    assert type(off.get_tracer("x")) is Tracer and type(off_ini.get_tracer("x")) is Tracer
    with pytest.raises(Exception, match="otel-lean-spans"):
        load({"otel-lean-spans": "maybe"}, {})


# ------------------------------------------------------------------ the C start's edge cases
#
# Each case starts a span with the SDK's tracer and with the lean one from the same random state
# and compares everything (ids, flags, trace state, exported fields, times); run through both twins
# (the autouse ``twin`` fixture), the C start and the Python one are thereby equal too.  Under
# ``c`` each case also says whether the C start took it or handed it to its Python twin.

START, END = 1_700_000_000_000_000_000, 1_700_000_000_250_000_000


def seeded(start: Any, seed: int = 7) -> Any:
    random.seed(seed)
    return start()


def hashed(value: Any) -> Any:
    try:
        return hash(value)
    except TypeError:  # a SpanContext's TraceState is not hashable
        return "unhashable"


def as_started(span: Any) -> dict[str, Any]:
    """What a just-started span shows: recording or not, its span context (and that it hashes as
    the tuple it equals: Python 3.14 caches a tuple's hash in the tuple), and a recording span's
    fields."""
    span_context = span.get_span_context()
    seen = {
        "type": type(span).__name__ if isinstance(span, NonRecordingSpan) else "recording",
        "context": tuple(span_context),
        "hashes_as_its_tuple": hashed(span_context) == hashed(tuple(span_context)),
    }
    if span.is_recording():
        seen.update(name=span.name, kind=span.kind, parent=span.parent, attributes=list(span.attributes.items()))
        seen.update(start_time=span.start_time)
    return seen


def finished(exporter: InMemorySpanExporter) -> list[dict[str, Any]]:
    return [
        {**exported(s), "context": tuple(s.context), "times": (s.start_time, s.end_time)}
        for s in exporter.get_finished_spans()
    ]


def same_as_the_sdk(exporter: InMemorySpanExporter, sdk_start: Any, lean_start: Any, seed: int = 7) -> Any:
    """Start with the SDK and with the lean tracer from the same random state, end both at END:
    the same start and the same exported span.  Returns the lean span."""
    sdk_span, lean_span = seeded(sdk_start, seed), seeded(lean_start, seed)
    assert as_started(sdk_span) == as_started(lean_span)
    assert as_started(lean_span)["hashes_as_its_tuple"]
    exporter.clear()
    sdk_span.end(end_time=END), lean_span.end(end_time=END)
    done = finished(exporter)
    assert len(done) in (0, 2) and done[:1] == done[1:]
    return lean_span


@pytest.mark.parametrize("sampled", [True, False], ids=["sampled", "not-sampled"])
def test_a_remote_parent_with_a_trace_state(twin, sampled):
    tracer, lean, exporter = pipeline()
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    parent = SpanContext(REMOTE.trace_id, REMOTE.span_id, True, flags, TraceState([("k", "v"), ("o", "p")]))
    ctx = trace.set_span_in_context(NonRecordingSpan(parent))
    span = same_as_the_sdk(
        exporter,
        lambda: tracer.start_span("GET", ctx, SpanKind.SERVER, attributes=ATTRIBUTES, start_time=START),
        lambda: lean.start_span("GET", ctx, SpanKind.SERVER, ATTRIBUTES, START),
    )
    assert span.get_span_context().trace_state == parent.trace_state
    assert isinstance(span, LeanSpan) is sampled  # ParentBased(ALWAYS_ON): a remote unsampled parent drops
    assert handed_to_python(twin, 0)


@pytest.mark.parametrize(
    "parent",
    [trace.INVALID_SPAN_CONTEXT, SpanContext(0, 0xB7AD6B7169203331, True, TraceFlags(TraceFlags.SAMPLED))],
    ids=["invalid", "no-trace-id"],
)
def test_an_invalid_non_recording_parent_starts_a_root(twin, parent):
    tracer, lean, exporter = pipeline()
    ctx = trace.set_span_in_context(NonRecordingSpan(parent))
    span = same_as_the_sdk(
        exporter,
        lambda: tracer.start_span("GET", ctx, SpanKind.SERVER, start_time=START),
        lambda: lean.start_span("GET", ctx, SpanKind.SERVER, None, START),
    )
    assert span.parent is None and span.get_span_context().trace_id != parent.trace_id
    assert handed_to_python(twin, 0)


@pytest.mark.parametrize("attributes", [None, {}], ids=["none", "empty"])
def test_no_attributes(twin, attributes):
    tracer, lean, exporter = pipeline()
    span = same_as_the_sdk(
        exporter,
        lambda: tracer.start_span("GET", context.Context(), SpanKind.SERVER, attributes=attributes, start_time=START),
        lambda: lean.start_span("GET", context.Context(), SpanKind.SERVER, attributes, START),
    )
    assert span._attributes._dict == {} and span._attributes._dict is not attributes  # its own dict
    span._attributes._dict["x"] = 1
    assert attributes in (None, {})
    assert handed_to_python(twin, 0)


def test_keyword_arguments(twin):
    tracer, lean, exporter = pipeline()
    ctx = trace.set_span_in_context(NonRecordingSpan(REMOTE))
    span = same_as_the_sdk(
        exporter,
        lambda: tracer.start_span("n", context=ctx, kind=SpanKind.CLIENT, attributes={"a": 1}, start_time=123),
        lambda: lean.start_span("n", context=ctx, kind=SpanKind.CLIENT, attributes={"a": 1}, start_time=123),
    )
    assert span.start_time == 123 and span.kind is SpanKind.CLIENT and span.parent == REMOTE
    same_as_the_sdk(  # every argument a keyword, in another order
        exporter,
        lambda: tracer.start_span(start_time=START, attributes={"a": 1}, kind=SpanKind.CLIENT, context=ctx, name="k"),
        lambda: lean.start_span(start_time=START, attributes={"a": 1}, kind=SpanKind.CLIENT, context=ctx, name="k"),
    )
    assert handed_to_python(twin, 0)


def test_arguments_start_span_does_not_take_raise_as_in_python(twin):
    _, lean, _ = pipeline()
    with pytest.raises(TypeError, match="positional argument"):
        lean.start_span("n", None, SpanKind.SERVER, None, None, "one too many")
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        lean.start_span("n", kind=SpanKind.SERVER, links=())
    with pytest.raises(TypeError, match="multiple values"):
        lean.start_span("n", context.Context(), SpanKind.SERVER, context=context.Context())
    assert handed_to_python(twin, 3)


def test_no_context_reads_the_current_one_and_the_default_kind_is_the_python_start(twin):
    """Without a context the C start reads the current one, as the SDK does; without a kind it
    hands the call over."""
    tracer, lean, exporter = pipeline()
    token = context.attach(trace.set_span_in_context(NonRecordingSpan(REMOTE)))
    try:
        span = same_as_the_sdk(
            exporter,
            lambda: tracer.start_span("GET", None, SpanKind.SERVER, start_time=START),
            lambda: lean.start_span("GET", None, SpanKind.SERVER, None, START),
        )
        same_as_the_sdk(
            exporter,
            lambda: tracer.start_span("GET", context.Context(), start_time=START),
            lambda: lean.start_span("GET", context.Context(), start_time=START),
        )
    finally:
        context.detach(token)
    assert span.parent == REMOTE  # the attached context's span
    assert handed_to_python(twin, 1)


PARENTS = [
    None,
    SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, True, TraceFlags(TraceFlags.SAMPLED)),
    SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, True, TraceFlags(TraceFlags.DEFAULT)),
    SpanContext(0x1234, 0x5678, False, TraceFlags(TraceFlags.SAMPLED)),
    SpanContext(0x1234, 0x5678, False, TraceFlags(TraceFlags.DEFAULT)),
]


@pytest.mark.parametrize(
    "sampler",
    [
        sampling.ParentBasedTraceIdRatio(0.5),  # the root: the decider (the trace id's ratio)
        sampling.ParentBased(sampling.ALWAYS_OFF),  # DROP: a NonRecordingSpan
        sampling.ParentBased(sampling.ALWAYS_ON, remote_parent_sampled=sampling.TraceIdRatioBased(0.5)),
        sampling.ParentBased(  # a decision of its own for each kind of parent (taken without the decider)
            sampling.ALWAYS_ON,
            remote_parent_sampled=sampling.ALWAYS_OFF,
            remote_parent_not_sampled=sampling.ALWAYS_ON,
            local_parent_sampled=sampling.ALWAYS_ON,
            local_parent_not_sampled=sampling.ALWAYS_OFF,
        ),
    ],
    ids=["parentbased_traceidratio", "parentbased_always_off", "parentbased_ratio_delegate", "parentbased_static"],
)
def test_samplers_through_the_decider_and_the_static_decisions(twin, sampler):
    tracer, lean, exporter = pipeline(sampler=sampler)
    decisions = set()
    for seed in range(24):
        for parent in PARENTS:
            ctx = trace.set_span_in_context(NonRecordingSpan(parent)) if parent else context.Context()
            span = same_as_the_sdk(
                exporter,
                lambda ctx=ctx: tracer.start_span("GET", ctx, SpanKind.SERVER, attributes=ATTRIBUTES, start_time=START),
                lambda ctx=ctx: lean.start_span("GET", ctx, SpanKind.SERVER, ATTRIBUTES, START),
                seed,
            )
            decisions.add((parent is None, isinstance(span, LeanSpan)))
    if type(sampler) is sampling.ParentBasedTraceIdRatio:
        assert {(True, True), (True, False)} <= decisions  # the ratio decided both ways
    if sampler._root is sampling.ALWAYS_OFF:
        assert (True, False) in decisions and (True, True) not in decisions
    assert handed_to_python(twin, 0)


def test_a_disabled_tracer_starts_what_the_sdk_starts(twin):
    from opentelemetry.sdk import trace as sdk_trace

    config = getattr(sdk_trace, "_TracerConfig", None)
    tracer, lean, exporter = pipeline()
    if config is None or not hasattr(tracer, "_set_tracer_config"):
        pytest.skip("this SDK has no tracer configuration (TracerConfigurator)")
    ctx = trace.set_span_in_context(NonRecordingSpan(REMOTE))
    tracer._set_tracer_config(config(is_enabled=False))
    span = same_as_the_sdk(
        exporter,
        lambda: tracer.start_span("GET", ctx, SpanKind.SERVER, start_time=START),
        lambda: lean.start_span("GET", ctx, SpanKind.SERVER, None, START),
    )
    assert not span.is_recording() and span.get_span_context() == REMOTE
    assert handed_to_python(twin, 1)
    tracer._set_tracer_config(config(is_enabled=True))  # enabled again: the C start again
    assert isinstance(lean.start_span("GET", ctx, SpanKind.SERVER), LeanSpan)
    assert handed_to_python(twin, 1)


def test_a_current_span_of_another_type_is_the_python_starts(twin):
    """A span type the C start was not told about (its get_span_context() may differ from its
    _context): the Python start asks it."""

    class Wrapped(NonRecordingSpan):
        def get_span_context(self) -> SpanContext:
            return REMOTE

    tracer, lean, exporter = pipeline()
    ctx = trace.set_span_in_context(Wrapped(trace.INVALID_SPAN_CONTEXT))
    span = same_as_the_sdk(
        exporter,
        lambda: tracer.start_span("GET", ctx, SpanKind.SERVER, start_time=START),
        lambda: lean.start_span("GET", ctx, SpanKind.SERVER, None, START),
    )
    assert span.parent == REMOTE
    assert handed_to_python(twin, 1)


# ------------------------------------------------------------------ the C end's edge cases


def test_end_takes_its_time_as_a_keyword_or_by_position(twin):
    tracer, lean, exporter = pipeline()
    lean.start_span("a", context.Context(), SpanKind.SERVER, None, START).end(END)
    lean.start_span("b", context.Context(), SpanKind.SERVER, None, START).end(end_time=END + 1)
    assert [s.end_time for s in exporter.get_finished_spans()] == [END, END + 1]
    sdk_span = tracer.start_span("c")
    sdk_span.end()
    for span in exporter.get_finished_spans():  # attributes frozen at the end, as the SDK's
        assert span._attributes._immutable is sdk_span._attributes._immutable is True
        with pytest.raises(TypeError):
            span._attributes["late"] = 1
    with pytest.raises(TypeError):
        lean.start_span("c", context.Context(), SpanKind.SERVER).end(END, end_time=END)
    assert handed_to_python(twin, 0, 1)


def test_an_ended_span_warns_once_and_reaches_the_processors_once(twin, caplog):
    provider = TracerProvider()
    seen: list[str] = []
    provider.add_span_processor(Recording(seen, "p"))
    lean = LeanTracer(provider.get_tracer("scope"))
    span = lean.start_span("a", context.Context(), SpanKind.SERVER)
    with caplog.at_level(logging.WARNING, logger="opentelemetry.sdk.trace"):
        span.end(END)
        span.end(END + 5)
    warned = [r for r in caplog.records if r.getMessage() == "Calling end() on an ended span."]
    assert len(warned) == 1 and warned[0].name == "opentelemetry.sdk.trace"
    assert seen == ["p start a", "p ending a", "p end a"] and span.end_time == END
    assert handed_to_python(twin, 0, 1)  # the second end: the Python twin warns


def test_ending_a_span_that_is_not_started_raises_as_in_python(twin):
    _, lean, exporter = pipeline()
    span = lean.start_span("a", context.Context(), SpanKind.SERVER)
    span._start_time = None
    with pytest.raises(RuntimeError, match="not started"):
        span.end()
    assert exporter.get_finished_spans() == () and handed_to_python(twin, 0, 1)


def test_a_span_whose_lock_another_thread_holds_ends_after_it(twin):
    """The C end does not end a span whose lock is held (it would not wait for it): its Python
    twin waits, then ends it."""
    _, lean, exporter = pipeline()
    span = lean.start_span("a", context.Context(), SpanKind.SERVER)
    errors: list[BaseException] = []

    def end() -> None:
        try:
            span.end(END)
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            errors.append(error)

    ender = threading.Thread(target=end)
    with span._lock:  # this thread holds it (released even when an assertion fails: the thread ends)
        ender.start()
        waiting = wait_until(lambda: running_in(ender, "_end_py"), 5)  # for the lock, there
        ended_meanwhile = span.end_time is not None or exporter.get_finished_spans() != ()
    ender.join(5)
    assert waiting and not ended_meanwhile
    assert not ender.is_alive() and errors == []
    assert span.end_time == END and len(exporter.get_finished_spans()) == 1
    assert handed_to_python(twin, 0, 1)


def test_span_metrics_are_recorded_at_the_end_as_by_the_sdk(twin, monkeypatch):
    """With the SDK's span metrics on, the Python start runs (no C state) and the end (C or Python)
    calls the span's own _record_end_metrics once: live spans go back to 0, never below."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")

    def span_metrics(make: Any) -> list[dict[str, Any]]:
        reader = InMemoryMetricReader()
        provider = TracerProvider(meter_provider=MeterProvider(metric_readers=[reader]), shutdown_on_exit=False)
        tracer = make(provider.get_tracer("scope"))
        seen = []
        for parent in (context.Context(), trace.set_span_in_context(NonRecordingSpan(REMOTE))):
            span = tracer.start_span("a", parent, SpanKind.SERVER)
            span.end()
            span.end()  # ended already: nothing recorded again
            data = reader.get_metrics_data()
            seen.append({
                m.name: sorted((sorted(p.attributes.items()), p.value) for p in m.data.data_points)
                for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
                if m.name.startswith("otel.sdk.span.")
            })  # fmt: skip
        return seen

    lean_metrics = span_metrics(LeanTracer)
    assert lean_metrics == span_metrics(lambda tracer: tracer)
    assert lean_metrics[-1]["otel.sdk.span.live"][0][1] == 0
    assert handed_to_python(twin, 2, 2)  # the starts (span metrics on), the second ends
