"""The C extension ``otel_uwsgi.native._accel`` against its Python twins.

``span_field`` must return exactly ``encoder._direct_span``'s bytes, or None (the Python code
then decides); it must take every common span whose attribute values are str/bool/int/float.
``plain_attributes`` must answer as ``fast.span._plain_py`` for any mapping.  Neither may leave a
reference behind.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from otel_uwsgi.export import encoder
from otel_uwsgi.native import accel
from otel_uwsgi.traces.lean import span as lean_span
from otel_uwsgi.traces.lean.tracer import LeanTracer
from tests.unit.export.test_encoder_equals_sdk import batches

if accel.disabled():
    pytest.skip("OTEL_UWSGI_NO_EXTENSIONS is set: the C encoder is off", allow_module_level=True)
if encoder.native_span_field is None:
    pytest.fail(
        "otel_uwsgi.native._accel was not built: `pip install -e .` with a C compiler (gcc) builds it "
        "(set OTEL_UWSGI_NO_EXTENSIONS=1 to test without it)",
        pytrace=False,
    )

native = encoder.native_span_field
_INT64 = (-(2**63), 2**63 - 1)


def _plain_values(span: ReadableSpan) -> bool:
    """Whether every attribute is what the C code encodes itself: str key, str/bool/int64/float value."""

    def ok(key: Any, value: Any) -> bool:
        if type(key) is not str or not _utf8(key):
            return False
        if type(value) is str:
            return _utf8(value)
        if type(value) is int:
            return _INT64[0] <= value <= _INT64[1]
        return type(value) in (bool, float)

    return all(ok(k, v) for k, v in span._attributes._dict.items())


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _check(span: ReadableSpan) -> None:
    ours = native(span)
    expected = encoder._direct_span(span)
    if expected is None:
        assert ours is None
    elif ours is not None:
        assert ours == expected
    else:  # the C code may only decline what it does not encode itself
        assert not _plain_values(span), f"C encoder declined a common span: {span._attributes._dict!r}"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batches(common=True))
def test_same_bytes_as_the_python_encoder(spans):
    """For any SDK span the C encoder writes the Python encoder's bytes, or declines what Python must decide."""
    for span in spans:
        _check(span)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batches())
def test_odd_spans_are_left_to_python(spans):
    """Events, links, trace state, drops and odd values: the C encoder declines or agrees, never differs."""
    for span in spans:
        _check(span)


def _finished(tracer: Any, name: str, attributes: dict, **kw: Any) -> ReadableSpan:
    status = kw.pop("status", None)
    span = tracer.start_span(name, kw.pop("context", None), kw.pop("kind", SpanKind.SERVER), attributes=attributes)
    if status is not None:
        span.set_status(status)
    span.end(end_time=kw.pop("end_time", None))
    return span


EDGES = [
    {"int.max": 2**63 - 1, "int.min": -(2**63), "zero": 0, "minus": -1, "big": 2**40},
    {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "-0": -0.0, "tiny": 5e-324},
    {"t": True, "f": False, "empty value": ""},
    {"ключ": "значение", "🔑": "🔐", "mixed": "a\u0000b"},
    {"long": "x" * 5000},  # longer than the C encoder's stack buffer
    {f"k{i}": f"value number {i}" for i in range(120)},  # 120 attributes: past the stack buffer too
    {},
]


@pytest.mark.parametrize("attributes", EDGES, ids=range(len(EDGES)))
@pytest.mark.parametrize("lean", [False, True], ids=["sdk", "lean"])
def test_edge_values_are_encoded_in_c(attributes, lean):
    """Extreme ints, floats (NaN, infinities, -0.0), bools, empty values, non-ASCII and long values:
    taken by the C encoder, and the same bytes as Python's and the SDK's."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("edges")
    if lean:
        tracer = LeanTracer(tracer)
    remote = SpanContext(2**128 - 1, 2**64 - 1, is_remote=True, trace_flags=TraceFlags(1), trace_state=TraceState())
    for status in (None, Status(StatusCode.OK), Status(StatusCode.ERROR)):
        root = _finished(tracer, "GET /édge", attributes, status=status)
        _finished(tracer, "", attributes, context=trace.set_span_in_context(root), kind=SpanKind.CLIENT)
        _finished(tracer, "remote", attributes, context=trace.set_span_in_context(NonRecordingSpan(remote)))
    spans = memory.get_finished_spans()
    for span in spans:
        ours = native(span)
        assert ours is not None
        assert ours == encoder._direct_span(span)
    assert encoder.encode_spans(spans) == sdk_encode_spans(spans).SerializeToString()


def test_statuses_and_kinds_read_before_give_the_same_bytes():
    """The encoder remembers the last status and each kind it read, by identity: the same objects
    again, other ones in between, and a status with a description (Python's) change nothing."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = LeanTracer(provider.get_tracer("memo"))
    ok, described = Status(StatusCode.OK), Status(StatusCode.ERROR, "boom")
    for status in (None, ok, None, described, ok, ok, None):
        for kind in (SpanKind.SERVER, SpanKind.CLIENT, SpanKind.SERVER, SpanKind.INTERNAL):
            _finished(tracer, "s", {"k": 1}, status=status, kind=kind)
    for span in memory.get_finished_spans():
        ours = native(span)
        if span.status is described:
            assert ours is None
        else:
            assert ours == encoder._direct_span(span), (span.status, span.kind)


def test_what_the_c_encoder_declines():
    """Values outside int64, unencodable text, sequences and bytes, non-str keys and names, a
    trace state, events and unended spans go to Python (None), which then encodes or skips them."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("declined")
    for value in (2**63, -(2**63) - 1, "\ud800", ("a", "b"), b"raw"):
        _finished(tracer, "s", {"k": value})
    with_event = tracer.start_span("event")
    with_event.add_event("e")
    with_event.end()
    state = SpanContext(5, 6, is_remote=True, trace_flags=TraceFlags(1), trace_state=TraceState([("a", "b")]))
    _finished(tracer, "state", {}, context=trace.set_span_in_context(NonRecordingSpan(state)))
    spans = list(memory.get_finished_spans())
    odd_key = ReadableSpan("odd key", context=SpanContext(1, 2, False), attributes={1: "x"}, start_time=1, end_time=2)
    spans.append(odd_key)
    spans.append(ReadableSpan(None, context=SpanContext(1, 2, False), start_time=1, end_time=2))  # type: ignore[arg-type]
    unended = tracer.start_span("open")
    for span in [*spans, unended]:
        assert native(span) is None, span.name
    assert encoder.encode_spans(spans) == sdk_encode_spans(spans).SerializeToString()


def test_common_spans_skip_the_python_encoder(monkeypatch):
    """With the C encoder built, a batch of common spans never runs the Python ``_direct_span``."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    for tracer in (provider.get_tracer("sdk"), LeanTracer(provider.get_tracer("lean"))):
        for i in range(20):
            _finished(tracer, "GET /", {"http.method": "GET", "net.peer.port": 40000 + i, "ok": True, "r": 0.5})
    spans = memory.get_finished_spans()
    expected = sdk_encode_spans(spans).SerializeToString()
    called: list[str] = []
    monkeypatch.setattr(encoder, "_direct_span", lambda span: called.append(span.name))
    assert encoder.encode_spans(spans) == expected
    assert called == []


def test_no_reference_is_leaked_on_either_path():
    """Encoding and declining leave every object the C code touched with its reference count."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("refs")
    value, declined_value = "a value", ("a", "tuple")
    common = _finished(tracer, "common", {"k": value, "n": 12345678901, "f": 0.25})
    declined = _finished(tracer, "declined", {"k": value, "t": declined_value})
    watched = [common, declined, value, declined_value, common._context, common._attributes, common._attributes._dict,
               common._status, common._name, common._start_time, common._end_time, declined._attributes._dict]
    native(common), native(declined)  # the encoder remembers the last status it read (one reference, held)
    before = [sys.getrefcount(o) for o in watched]
    for _ in range(2000):
        assert native(common) is not None
        assert native(declined) is None
    assert [sys.getrefcount(o) for o in watched] == before


@pytest.mark.parametrize("value", ["1", "true"])
def test_no_extensions_variable_leaves_the_c_encoder_unused(monkeypatch, value):
    """``OTEL_UWSGI_NO_EXTENSIONS`` (any value but empty or 0) keeps every span in the Python encoder."""
    monkeypatch.setenv("OTEL_UWSGI_NO_EXTENSIONS", value)
    assert encoder._load_native() is None
    monkeypatch.setenv("OTEL_UWSGI_NO_EXTENSIONS", "0")
    assert encoder._load_native() is not None


class _Text(str):
    pass


class _Number(int):
    pass


_ANY_KEYS = st.one_of(st.text(max_size=3), st.builds(_Text, st.text(max_size=2)), st.integers(0, 3), st.none())
_ANY_VALUES = st.one_of(
    st.text(max_size=3), st.integers(), st.floats(), st.booleans(), st.none(), st.binary(max_size=2),
    st.lists(st.integers(), max_size=2), st.builds(_Text, st.text(max_size=2)), st.builds(_Number, st.integers()),
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(_ANY_KEYS, _ANY_VALUES, max_size=6), st.sampled_from(["dict", "proxy", "ordered", "bounded"]))
def test_plain_attribute_check_answers_as_python(attributes, kind):
    """The C attribute check gives ``_plain_py``'s answer for any dict, and hands other mappings to it."""
    from collections import OrderedDict
    from types import MappingProxyType

    from opentelemetry.attributes import BoundedAttributes

    if kind == "proxy":
        attributes = MappingProxyType(attributes)
    elif kind == "ordered":
        attributes = OrderedDict(attributes)
    elif kind == "bounded":
        attributes = BoundedAttributes(attributes={k: v for k, v in attributes.items() if type(k) is str})
    assert lean_span.plain_attributes is not lean_span._plain_py
    assert lean_span.plain_attributes(attributes) is lean_span._plain_py(attributes)


def test_plain_attribute_check_keeps_reference_counts():
    """Checking plain and odd dicts leaves their keys' and values' reference counts as they were."""
    key, value, odd = "a key", "a value", ["odd"]
    plain, mixed = {key: value, "n": 1}, {key: value, "odd": odd}
    watched = [key, value, odd, plain, mixed]
    before = [sys.getrefcount(o) for o in watched]
    for _ in range(2000):
        assert lean_span.plain_attributes(plain) is True
        assert lean_span.plain_attributes(mixed) is False
    assert [sys.getrefcount(o) for o in watched] == before


# -- server_attributes: fast.config.request_attributes for a common environ


def _python_attributes(environ: dict, capture_all: bool) -> list:
    from otel_uwsgi.instrumentation.fast.http import HttpConfig, request_attributes

    http = HttpConfig.from_environ({"OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS": "1"} if capture_all else {})
    return list(request_attributes(environ, http).items())


def _odd_values(environ: dict) -> st.SearchStrategy:
    """The environ with some values made what no WSGI server sends (None, bytes, an int, a str subclass)."""
    keys = sorted(environ)
    if not keys:
        return st.just(environ)
    odd = st.sampled_from([None, b"x", 8000, _Text("GET"), ""])
    return st.dictionaries(st.sampled_from(keys), odd, max_size=2).map(lambda changes: {**environ, **changes})


def _environs() -> st.SearchStrategy:
    from tests.unit.instrumentation.fast.test_http_settings_equal_stock import environs, full_environs

    return st.one_of(environs, full_environs, full_environs.flatmap(_odd_values))


@settings(max_examples=600, deadline=None)
@given(_environs(), st.booleans())
def test_server_attributes_are_the_python_ones_or_none(environ, capture_all):
    """For any environ the C builder returns request_attributes' keys, values and order, or None."""
    from otel_uwsgi.instrumentation.fast.http import native_request_attributes

    try:
        expected = _python_attributes(environ, capture_all)
    except Exception as error:  # noqa: BLE001 - what the Python builder raises, C must leave to it
        assert native_request_attributes(environ, capture_all) is None, error
        return
    ours = native_request_attributes(environ, capture_all)
    assert ours is None or list(ours.items()) == expected


UWSGI_ENVIRON = {
    "REQUEST_METHOD": "GET", "PATH_INFO": "/db", "REQUEST_URI": "/db?x=1", "QUERY_STRING": "x=1",
    "SERVER_PROTOCOL": "HTTP/1.1", "SCRIPT_NAME": "", "SERVER_NAME": "vm", "SERVER_PORT": "8000",
    "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8000", "wsgi.url_scheme": "http",
}  # fmt: skip


@pytest.mark.parametrize(
    "extra",
    [{}, {"HTTP_USER_AGENT": "Mozilla/5.0"}, {"HTTP_USER_AGENT": "Googlebot/2.1", "REMOTE_PORT": "40000"},
     {"REMOTE_HOST": "peer.example", "REMOTE_PORT": "x"}, {"REQUEST_METHOD": "FOO"}, {"SERVER_PROTOCOL": "SPDY/3"}],
    ids=["uwsgi", "browser", "bot-with-port", "peer-name", "unknown-method", "odd-protocol"],
)  # fmt: skip
def test_what_a_wsgi_server_sends_is_built_in_c(extra):
    """uWSGI's http-socket environ, with a browser's or a bot's User-Agent, a peer name or an unknown
    method: built by C, the Python builder's result exactly (its caches shared)."""
    from otel_uwsgi.instrumentation.fast import http as config

    environ = {**UWSGI_ENVIRON, **extra}
    ours = config.native_request_attributes(environ, False)
    assert ours is not None
    assert list(ours.items()) == _python_attributes(environ, False)
    assert config._ports["8000"] == 8000
    if "HTTP_USER_AGENT" in extra:
        assert extra["HTTP_USER_AGENT"] in config._user_agents


def test_server_attributes_keep_reference_counts():
    """Building (and declining) leaves the environ's values with their reference counts."""
    from otel_uwsgi.instrumentation.fast.http import native_request_attributes

    environ = {**UWSGI_ENVIRON, "HTTP_USER_AGENT": "Mozilla/5.0", "REMOTE_PORT": "40000"}
    declined = {**environ, "SERVER_NAME": b"vm"}
    watched = [*environ.values(), environ, declined]
    for _ in range(10):  # warm the caches
        native_request_attributes(environ, False)
    before = [sys.getrefcount(o) for o in watched]
    for _ in range(2000):
        assert native_request_attributes(environ, False) is not None
        assert native_request_attributes(declined, False) is None
    assert [sys.getrefcount(o) for o in watched] == before
