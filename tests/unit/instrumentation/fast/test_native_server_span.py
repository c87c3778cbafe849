"""otel_uwsgi/native/_server.c against the Python code it stands in for.  ``open_server_span``
against ``start_server_span`` then ``attach(with_span(span, ctx))``: the same span kind and parent,
the same context made current, the same token behaviour.  ``close_server_span`` against
ServerSpanMiddleware._end's steps for a plain response.  Both answer None, having done nothing, for
every request that is not the common one, so that the Python code runs."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry import context, propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otel_uwsgi.instrumentation.fast import server_span
from otel_uwsgi.traces.context_ops import attach, detach, with_span
from otel_uwsgi.traces.lean.tracer import LeanTracer

pytestmark = pytest.mark.skipif(server_span.open_server_span is None, reason="the C extension is not built here")

META_KEY = "opentelemetry-instrumentor-django.span_key"  # the middleware's SPAN_KEY
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def setup() -> Any:
    """What start_server_span reads of a ServerSetup: a lean tracer behind a LazyTracer, an
    extractor that has read the global propagator, the environ getter."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    holder = SimpleNamespace(tracer=LeanTracer(provider.get_tracer("scope")))
    extractor = server_span.Extractor()
    extractor.refresh(propagate.get_global_textmap())
    return SimpleNamespace(tracer=holder, extract=extractor, getter=server_span.EnvironGetter())


def environ(**headers: str) -> dict[str, Any]:
    return {"REQUEST_METHOD": "GET", "PATH_INFO": "/", **headers}


def c_open(setup: Any, env: dict[str, Any]) -> Any:
    return server_span.open_server_span(setup.tracer, setup.extract, env, "GET", {"http.method": "GET"})


def python_open(setup: Any, env: dict[str, Any]) -> tuple[Any, object, bool]:
    span, ctx, server = server_span.start_server_span(setup, env, "GET", {"http.method": "GET"})
    return span, attach(with_span(span, ctx)), server


def shape(span: Any, server: bool, outer: Any) -> dict[str, Any]:
    """What the two must agree on (ids aside): kind, parent, attributes, what is current now."""
    current = context.get_current()
    return {
        "kind": span.kind,
        "server": server,
        "parent": "outer" if outer is not None and span.parent == outer.get_span_context() else span.parent,
        "attributes": dict(span.attributes),
        "current is the span": trace.get_current_span() is span,
        "context keys": sorted(current),
    }


@pytest.mark.parametrize("inside", [False, True])
def test_the_common_request_opens_as_the_python_twins_do(setup, inside):
    """No current span: a SERVER span under the current context; under a current span: INTERNAL,
    its child.  The token restores the context that was current before."""
    seen = []
    for opener in (c_open, python_open):
        before = context.get_current()
        outer = outer_token = None
        if inside:
            outer = setup.tracer.tracer.start_span("outer", None, SpanKind.INTERNAL)
            outer_token = context.attach(trace.set_span_in_context(outer))
            before = context.get_current()
        opened = opener(setup, environ())
        assert opened is not None, opener.__name__
        span, token, server = opened
        seen.append(shape(span, server, outer))
        detach(token)
        assert context.get_current() is before
        if outer_token is not None:
            context.detach(outer_token)
        span.end()
    assert seen[0] == seen[1]
    assert seen[0]["kind"] is (SpanKind.INTERNAL if inside else SpanKind.SERVER) and seen[0]["current is the span"]
    assert seen[0]["parent"] == ("outer" if inside else None)


def test_flasks_form_adds_its_context_value_and_start_time_as_the_python_twins_do(setup):
    """``open_server_span(..., key, value, start_time)`` (the Flask fast path's call) against
    ``start_server_span(..., start_time)`` then ``attach(with_span(span, ctx, (key, value)))``: the
    value is in the context made current beside the span, and the span starts at start_time."""
    tags = {"framework": "flask:3.1.0", "route": "/"}
    seen = []
    for native in (True, False):
        before = context.get_current()
        if native:
            opened = server_span.open_server_span(
                setup.tracer, setup.extract, environ(), "GET", {"http.method": "GET"}, "SQLCOMMENTER", tags, 1234
            )
        else:
            span, ctx, server = server_span.start_server_span(setup, environ(), "GET", {"http.method": "GET"}, 1234)
            opened = span, attach(with_span(span, ctx, ("SQLCOMMENTER", tags))), server
        assert opened is not None
        span, token, server = opened
        seen.append({**shape(span, server, None), "value": context.get_value("SQLCOMMENTER"), "start": span.start_time})
        detach(token)
        assert context.get_current() is before
        span.end()
    assert seen[0] == seen[1]
    assert seen[0]["value"] is tags and seen[0]["start"] == 1234 and "SQLCOMMENTER" in seen[0]["context keys"]


def test_with_a_value_with_span_is_set_value_on_set_span_in_context():
    """``with_span(span, ctx, (key, value))``: the API's set_value(key, value, set_span_in_context(...)),
    in one copy, leaving ``ctx`` untouched."""
    span = NonRecordingSpan(trace.INVALID_SPAN_CONTEXT)
    ctx = context.set_value("a", 1)
    made = with_span(span, ctx, ("b", 2))
    assert made == context.set_value("b", 2, trace.set_span_in_context(span, ctx))
    assert dict(ctx) == {"a": 1} and trace.get_current_span(made) is span


def test_a_request_with_a_traceparent_is_left_to_python(setup):
    """Extraction is Python's: C answers None, and the twins join the remote trace."""
    env = environ(HTTP_TRACEPARENT=TRACEPARENT)
    assert c_open(setup, env) is None
    span, token, server = python_open(setup, env)
    detach(token)
    span.end()
    assert server and span.parent.is_remote and format(span.parent.span_id, "016x") == "b7ad6b7169203331"


def test_a_new_global_propagator_is_left_to_python_until_the_extractor_read_it(setup, monkeypatch):
    """set_global_textmap() later: C answers None (the extractor's keys are stale), the twins
    refresh the extractor, and from then on C takes the request again."""
    fresh = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
    monkeypatch.setattr(propagate, "_HTTP_TEXT_FORMAT", fresh)
    assert c_open(setup, environ()) is None
    span, token, _ = python_open(setup, environ())
    detach(token)
    span.end()
    opened = c_open(setup, environ())
    assert opened is not None
    detach(opened[1])
    opened[0].end()


def test_no_tracer_yet_and_an_unknown_current_span_are_left_to_python(setup):
    """Before a provider is set (LazyTracer.tracer None) the twins ask for the proxy tracer; a
    current span of a type the lean tracer does not know is judged by isinstance, in Python."""
    no_tracer = SimpleNamespace(tracer=None)
    assert server_span.open_server_span(no_tracer, setup.extract, environ(), "GET", None) is None

    class OtherSpan(NonRecordingSpan):
        pass

    token = context.attach(trace.set_span_in_context(OtherSpan(trace.INVALID_SPAN_CONTEXT)))
    try:
        assert c_open(setup, environ()) is None
    finally:
        context.detach(token)


def test_the_middleware_opens_through_c_where_built():
    """Not vacuous: the Django middleware calls the C opener when the extension is built."""
    from otel_uwsgi.instrumentation.fast import middleware

    assert middleware.open_server_span is server_span.open_server_span is not None


def opened_request(setup: Any) -> tuple[Any, object, dict[str, Any], Any]:
    """A request's span opened as the middleware opens it: (span, token, META, the context before)."""
    before = context.get_current()
    span, token, _ = c_open(setup, environ())
    meta = {META_KEY: span, "HTTP_HOST": "example"}
    return span, token, meta, before


def not_lean(span: Any, token: object) -> bool:
    """An SDK whose spans the lean tracer does not make (below its floor, the SDK's own start runs):
    close_server_span leaves such a span to Python, untouched.  True, having checked that."""
    from otel_uwsgi.native.sdk_layout import LEAN_SPAN_CLASSES

    if type(span) in LEAN_SPAN_CLASSES:
        return False
    meta = {META_KEY: span}
    assert server_span.close_server_span(span, token, meta, META_KEY, None, 200) is None
    assert span.end_time is None and meta and trace.get_current_span() is span
    detach(token)
    span.end()
    return True


@pytest.mark.parametrize("route", ["items/<int:pk>", "", None])
def test_a_plain_response_closes_in_c_as_end_would(setup, route):
    """http.route (when there is one) and http.status_code set, the META entry popped, the context
    that was current before restored, the span ended: what _end does for a 200."""
    span, token, meta, before = opened_request(setup)
    if not_lean(span, token):
        return
    assert server_span.close_server_span(span, token, meta, META_KEY, route, 200) is True
    assert span.end_time is not None and meta == {"HTTP_HOST": "example"} and context.get_current() is before
    expected = {"http.method": "GET", **({"http.route": route} if route else {}), "http.status_code": 200}
    assert dict(span.attributes) == expected


@pytest.mark.parametrize("case", ["server error", "lock held", "sdk span", "not an int"])
def test_anything_else_is_left_to_python_untouched(setup, case):
    """A 5xx (it sets an ERROR status), a lock another thread may hold, a span that is not lean, a
    code that is not an int: None, and the span, META and context are as they were."""
    span, token, meta, _ = opened_request(setup)
    code: Any = 500 if case == "server error" else "200" if case == "not an int" else 200
    target = span
    if case == "sdk span":
        target = TracerProvider().get_tracer("sdk").start_span("sdk")
    if case == "lock held":
        span._lock.acquire()
    try:
        assert server_span.close_server_span(target, token, meta, META_KEY, "r", code) is None
    finally:
        if case == "lock held":
            span._lock.release()
    assert span.end_time is None and "http.status_code" not in span.attributes and META_KEY in meta
    assert trace.get_current_span() is span
    detach(token)
    span.end()


def test_a_token_of_another_context_is_logged_as_the_api_does(setup, caplog):
    """Detaching a token that is not the current context's: the API's log line, and the span still ends."""
    import contextvars

    span, token, meta, _ = opened_request(setup)
    if not_lean(span, token):
        return
    other = contextvars.copy_context().run(lambda: context.attach(context.get_current()))
    with caplog.at_level(logging.ERROR):
        assert server_span.close_server_span(span, other, meta, META_KEY, None, 204) is True
    assert span.end_time is not None and "Failed to detach context" in caplog.text
    assert "was created in a different Context" in caplog.text  # with the exception, as logger.exception logs it
    detach(token)
