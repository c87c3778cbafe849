"""The fast server spans (Django, Flask) skip extraction only when the W3C propagators would find nothing."""

from __future__ import annotations

import pytest
from opentelemetry import propagate, trace
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator

from otel_uwsgi.instrumentation.fast.server_span import EnvironGetter, Extractor

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Counting(TextMapPropagator):
    """A propagator reading a header it does not list in ``fields``."""

    calls = 0

    def extract(self, carrier, context=None, getter=None):
        Counting.calls += 1
        return context

    def inject(self, carrier, context=None, setter=None):
        pass

    @property
    def fields(self):
        return set()


@pytest.fixture
def restore_propagator():
    saved = propagate.get_global_textmap()
    yield
    propagate.set_global_textmap(saved)


def test_w3c_without_headers_is_skipped_with_traceparent_extracted(restore_propagator):
    propagate.set_global_textmap(propagate.get_global_textmap())  # the default: tracecontext,baggage
    extractor, getter = Extractor(), EnvironGetter()
    assert extractor({"HTTP_HOST": "x"}, getter) is None
    ctx = extractor({"HTTP_TRACEPARENT": TRACEPARENT}, getter)
    assert trace.get_current_span(ctx).get_span_context().trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert extractor({"HTTP_BAGGAGE": "k=v"}, getter) is not None


def test_any_other_propagator_is_always_called(restore_propagator):
    propagate.set_global_textmap(CompositePropagator([Counting()]))
    extractor = Extractor()
    before = Counting.calls
    extractor({"HTTP_HOST": "x"}, EnvironGetter())
    assert Counting.calls == before + 1


def test_the_server_span_start_follows_a_propagator_set_later(restore_propagator):
    """start_server_span reads the global propagator where the API keeps it: one set after the
    first request (set_global_textmap) is the one that extracts the next."""
    from opentelemetry.sdk.trace import TracerProvider

    from otel_uwsgi.instrumentation.fast.http import HttpConfig
    from otel_uwsgi.instrumentation.fast.server_span import ServerSetup, http_mode, start_server_span

    mode, default_mode, schema_url = http_mode()
    setup = ServerSetup(HttpConfig.from_environ({}), mode, default_mode, schema_url, "test")
    setup.tracer.tracer = TracerProvider().get_tracer("test")
    propagate.set_global_textmap(propagate.get_global_textmap())
    span, ctx, server = start_server_span(setup, {"HTTP_TRACEPARENT": TRACEPARENT}, "GET", {})
    assert server and span.parent.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    propagate.set_global_textmap(CompositePropagator([Counting()]))
    before = Counting.calls
    span, ctx, server = start_server_span(setup, {"HTTP_TRACEPARENT": TRACEPARENT}, "GET", {})
    assert Counting.calls == before + 1 and span.parent is None  # the new propagator read nothing
