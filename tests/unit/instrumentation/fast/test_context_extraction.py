"""The fast middleware skips extraction only when the W3C propagators would find nothing."""

from __future__ import annotations

import pytest

pytest.importorskip("django")

from opentelemetry import propagate, trace  # noqa: E402
from opentelemetry.propagators.composite import CompositePropagator  # noqa: E402
from opentelemetry.propagators.textmap import TextMapPropagator  # noqa: E402

from otel_uwsgi.instrumentation.fast.middleware import _EnvironGetter, _Extractor  # noqa: E402

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
    extractor, getter = _Extractor(), _EnvironGetter()
    assert extractor({"HTTP_HOST": "x"}, getter) is None
    ctx = extractor({"HTTP_TRACEPARENT": TRACEPARENT}, getter)
    assert trace.get_current_span(ctx).get_span_context().trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert extractor({"HTTP_BAGGAGE": "k=v"}, getter) is not None


def test_any_other_propagator_is_always_called(restore_propagator):
    propagate.set_global_textmap(CompositePropagator([Counting()]))
    extractor = _Extractor()
    before = Counting.calls
    extractor({"HTTP_HOST": "x"}, _EnvironGetter())
    assert Counting.calls == before + 1
