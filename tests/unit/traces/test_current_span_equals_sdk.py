"""A lean tracer's ``start_as_current_span`` (otel_uwsgi/traces/lean/current.py) does what the SDK's
does: the same spans exported (parents, status, exception events), the same current span inside
and after, the same exception raised on, single use, and the SDK's own context manager where it
is used as a decorator or given links.  Each case runs once through a stock SDK tracer and once
through the same provider's tracer made lean, and the two exports are compared."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import context, trace
from opentelemetry.sdk.trace import TracerProvider, sampling
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode

from otel_uwsgi.traces.lean import current
from otel_uwsgi.traces.lean.tracer import LeanSdkTracer, make_lean, sdk_layout_problem

REMOTE = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, True, TraceFlags(TraceFlags.SAMPLED))


class Boom(Exception):
    pass


class Stop(BaseException):  # not an Exception: the API records it before 1.34 only
    pass


def pipeline(lean: bool, sampler: Any = None) -> tuple[Any, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler) if sampler is not None else TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("scope", "1.0")
    if lean:
        tracer = make_lean(tracer)
        if not isinstance(tracer, LeanSdkTracer):  # below API 1.42 the SDK's own start: nothing to compare
            pytest.skip(f"no lean tracer on this SDK: {sdk_layout_problem()}")
    return tracer, exporter


def exported(spans: list[Any]) -> list[dict[str, Any]]:
    """What an exporter reads, ids and times aside; parents as indexes into the list; of an
    exception event, its last stack line (the frames above differ: the SDK's generators)."""
    ids = {span.context.span_id: i for i, span in enumerate(spans)}
    out = []
    for span in spans:
        events = []
        for event in span.events:
            attributes = dict(event.attributes)
            stack = attributes.pop("exception.stacktrace", "")
            events.append((event.name, attributes, stack.strip().splitlines()[-1:]))
        parent = span.parent
        out.append(
            {
                "name": span.name,
                "kind": span.kind,
                "parent": None if parent is None else ids.get(parent.span_id, parent),
                "attributes": dict(span.attributes),
                "events": events,
                "status": (span.status.status_code, span.status.description),
                "scope": span.instrumentation_scope,
            }
        )
    return out


def run_both(case: Callable[[Any], Any], sampler: Any = None) -> tuple[Any, Any]:
    """``case(tracer)`` with a stock and with a lean tracer: (what it returned, the export) of each."""
    results = []
    for lean in (False, True):
        tracer, exporter = pipeline(lean, sampler)
        before = context.get_current()
        returned = case(tracer)
        assert context.get_current() == before  # every case leaves the context as it found it
        results.append((returned, exported(list(exporter.get_finished_spans()))))
    return results[0], results[1]


def test_the_probe_verifies_the_installed_api_and_finds_what_use_span_records():
    assert current.VERIFIED, current._PROBLEM
    # use_span records Exception only since API 1.34, every BaseException before: the probe saw which
    records_base = current._stock_calls(Stop("x"), (True, True, False)) != []
    assert current._RECORDED is (BaseException if records_base else Exception)


def test_a_lean_tracer_returns_the_small_context_manager():
    tracer, _ = pipeline(lean=True)
    assert type(tracer.start_as_current_span("x")) is current.CurrentSpan
    stock, _ = pipeline(lean=False)
    assert type(stock.start_as_current_span("x")) is not current.CurrentSpan


def test_nested_spans_with_attributes_and_kinds():
    def case(tracer: Any) -> list[bool]:
        seen = []
        with tracer.start_as_current_span("outer", kind=SpanKind.SERVER, attributes={"a": 1, "b": "x"}) as outer:
            seen.append(trace.get_current_span() is outer)
            with tracer.start_as_current_span("inner", kind=SpanKind.CLIENT) as inner:
                seen.append(trace.get_current_span() is inner)
                inner.set_attribute("db.system", "redis")
            seen.append(trace.get_current_span() is outer)
        seen.append(trace.get_current_span() is not outer)
        return seen

    (stock_seen, stock), (lean_seen, lean) = run_both(case)
    assert stock_seen == lean_seen == [True, True, True, True]
    assert stock == lean
    assert [s["name"] for s in lean] == ["inner", "outer"] and lean[0]["parent"] == 1


@pytest.mark.parametrize(
    "flags",
    [
        {},
        {"record_exception": False},
        {"set_status_on_exception": False},
        {"record_exception": False, "set_status_on_exception": False},
    ],
)
@pytest.mark.parametrize("error", [Boom("it broke"), Stop("stopped"), StopIteration("done"), KeyError("k")])
def test_an_exception_is_recorded_and_raised_on_as_the_sdk_does(flags, error):
    def case(tracer: Any) -> Any:
        try:
            with tracer.start_as_current_span("outer"):
                with tracer.start_as_current_span("failing", kind=SpanKind.CLIENT, **flags):
                    raise error
        except BaseException as raised:  # noqa: BLE001
            return raised
        return None

    (stock_raised, stock), (lean_raised, lean) = run_both(case)
    assert stock_raised is error and lean_raised is error
    assert stock == lean
    failing = lean[0]
    if isinstance(error, Exception) and not flags:
        assert failing["status"] == (StatusCode.ERROR, f"{type(error).__name__}: {error}")
        assert failing["events"][0][0] == "exception"


def test_end_on_exit_false_leaves_the_span_open():
    def case(tracer: Any) -> bool:
        with tracer.start_as_current_span("kept", end_on_exit=False) as span:
            pass
        recording = span.is_recording()
        span.set_attribute("later", True)
        span.end()
        return recording

    (stock_open, stock), (lean_open, lean) = run_both(case)
    assert stock_open and lean_open
    assert stock == lean and lean[0]["attributes"] == {"later": True}


def test_an_explicit_context_is_the_parent_and_the_current_context_is_what_it_joins():
    def case(tracer: Any) -> bool:
        remote = trace.set_span_in_context(NonRecordingSpan(REMOTE))
        token = context.attach(context.set_value("k", "v"))
        try:
            with tracer.start_as_current_span("child", context=remote) as span:
                joined = context.get_value("k") == "v" and trace.get_current_span() is span
        finally:
            context.detach(token)
        return joined

    (stock_joined, stock), (lean_joined, lean) = run_both(case)
    assert stock_joined and lean_joined
    assert stock == lean and lean[0]["parent"] == REMOTE


def test_a_status_set_in_the_block_is_kept_as_the_sdk_keeps_it():
    def case(tracer: Any) -> None:
        try:
            with tracer.start_as_current_span("ok") as span:
                span.set_status(Status(StatusCode.OK))
                raise Boom("after ok")
        except Boom:
            pass

    (_, stock), (_, lean) = run_both(case)
    assert stock == lean


def test_a_sampled_out_span_is_current_and_nothing_is_exported():
    def case(tracer: Any) -> bool:
        try:
            with tracer.start_as_current_span("dropped") as span:
                inside = trace.get_current_span() is span and not span.is_recording()
                raise Boom("dropped")
        except Boom:
            return inside

    (stock_inside, stock), (lean_inside, lean) = run_both(case, sampler=sampling.ALWAYS_OFF)
    assert stock_inside and lean_inside
    assert stock == lean == []


def test_as_a_decorator_each_call_gets_its_span():
    def case(tracer: Any) -> list[Any]:
        @tracer.start_as_current_span("decorated", kind=SpanKind.INTERNAL)
        def work(n: int) -> int:
            if n < 0:
                raise Boom("negative")
            return trace.get_current_span().name == "decorated" and n

        results: list[Any] = [work(1), work(2)]
        try:
            work(-1)
        except Boom as raised:
            results.append(str(raised))
        return results

    (stock_results, stock), (lean_results, lean) = run_both(case)
    assert stock_results == lean_results == [1, 2, "negative"]
    assert stock == lean and len(lean) == 3


def test_links_take_the_sdk_context_manager_and_the_same_span():
    def case(tracer: Any) -> str:
        manager = tracer.start_as_current_span("linked", links=[trace.Link(REMOTE, {"why": "test"})])
        with manager:
            pass
        return type(manager).__name__

    (stock_type, stock), (lean_type, lean) = run_both(case)
    assert stock_type == lean_type != "CurrentSpan"
    assert stock == lean


def test_entering_twice_fails_as_the_sdk_context_manager_does():
    failures = []
    for lean in (False, True):
        tracer, exporter = pipeline(lean)
        manager = tracer.start_as_current_span("once")
        with manager:
            pass
        with pytest.raises(Exception) as failed:
            with manager:
                pass
        failures.append(failed.type)
        assert len(exporter.get_finished_spans()) == 1
    assert failures[0] is failures[1]


def test_a_use_span_that_records_otherwise_is_not_verified(monkeypatch):
    """An API whose use_span records another set of exceptions (as before 1.34) than the one the
    probe found: the probe tells, and lean tracers keep the SDK's context manager."""
    other = BaseException if current._RECORDED is Exception else Exception
    monkeypatch.setattr(current, "_RECORDED", other)
    assert current._verify() is not None
    monkeypatch.setattr(current, "VERIFIED", False)
    tracer, _ = pipeline(lean=True)
    assert type(tracer.start_as_current_span("x")) is not current.CurrentSpan


def test_an_sdk_start_as_current_span_of_other_steps_is_not_verified(monkeypatch):
    from opentelemetry.sdk.trace import Tracer as SdkTracer

    def start_as_current_span(self: Any, name: str) -> Any:
        span = self.start_span(name)
        span.set_attribute("extra", True)  # a step CurrentSpan does not take
        with trace.use_span(span, end_on_exit=True) as span:
            yield span

    monkeypatch.setattr(SdkTracer.start_as_current_span, "__wrapped__", start_as_current_span)
    assert current._verify() is not None
