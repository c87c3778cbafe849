"""Direct OTLP protobuf wire-format encoding of a batch of SDK spans.

The SDK's ``encode_spans`` builds a tree of protobuf message objects (~57 µs per span, 5.7 µs of
it hashing the Resource through ``json.dumps`` for every span) only to serialise it at once.
:func:`encode_spans` writes the same ``ExportTraceServiceRequest`` bytes straight from the spans:
same grouping of resources and scopes (same first-seen order, same equality), same fields in the
same order, same quirks (span and link ``flags`` carry only the is-remote bits, links have no
``trace_state``, an attribute the SDK cannot encode is logged and skipped).  Each Resource's and
InstrumentationScope's encoding is cached by object identity, so the worker's one Resource is
encoded and hashed once, not per span.  The shape nearly every span has (no events, links,
trace state or drops) is written from the SDK span's own fields in one function
(:func:`_direct_span`, ~37k instructions per 12-attribute span against ~58k for the general
:func:`_span`), and where the C extension ``otel_uwsgi.native._accel`` was built, by its ``span_field``
(the same bytes, ~12k instructions per span with this module's loop): it takes spans whose
attribute values are str, bool, int64 or float and returns None for the rest, which this module
then encodes.  Anything unexpected falls back to the SDK's encoder for that batch, so the
output always decodes to the message the SDK would have sent.  The direct path reads the SDK
span's private fields: it is switched on at import only if probe spans of the installed SDK
encode to the SDK encoder's exact bytes.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Sequence
from typing import Any, Optional

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import SpanContext, SpanKind
from opentelemetry.trace.span import DEFAULT_TRACE_STATE
from opentelemetry.trace.status import Status

from otel_uwsgi.export.protobuf import CACHE_LIMIT as _CACHE_LIMIT
from otel_uwsgi.export.protobuf import SMALL_VARINT as _SMALL_VARINT
from otel_uwsgi.export.protobuf import UINT64 as _UINT64
from otel_uwsgi.export.protobuf import attributes as _attributes
from otel_uwsgi.export.protobuf import field as _field
from otel_uwsgi.export.protobuf import pack_fixed32 as _pack_fixed32
from otel_uwsgi.export.protobuf import pack_fixed64 as _pack_fixed64
from otel_uwsgi.export.protobuf import text as _text
from otel_uwsgi.export.protobuf import uint as _uint
from otel_uwsgi.export.protobuf import varint as _varint
from otel_uwsgi.native import accel
from otel_uwsgi.native.sdk_layout import BOUNDED_ATTRIBUTE_TYPES as _BOUNDED
from otel_uwsgi.native.sdk_layout import CONTEXT_AS_TUPLE
from otel_uwsgi.native.sdk_layout import LEAN_SPAN_CLASSES as _LEAN_SPAN_TYPES

logger = logging.getLogger(__name__)

_pack_times = struct.Struct("<BQBQ").pack  # start_time_unix_nano and end_time_unix_nano with their tags
_pack_ids = struct.Struct(">2sQQ2sQ").pack  # trace_id (16 bytes) and span_id (8), big-endian, with tags
_pack_ids_parent = struct.Struct(">2sQQ2sQ2sQ").pack  # the same, then parent_span_id (8)


# OTLP Span.SpanKind numbers (the SDK's SpanKind values are one lower).
_KIND = {
    SpanKind.INTERNAL: b"\x30\x01",
    SpanKind.SERVER: b"\x30\x02",
    SpanKind.CLIENT: b"\x30\x03",
    SpanKind.PRODUCER: b"\x30\x04",
    SpanKind.CONSUMER: b"\x30\x05",
}
# Span.flags / Link.flags (fixed32): SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK, plus _IS_REMOTE_MASK.
_FLAGS_LOCAL_SPAN = b"\x85\x01" + _pack_fixed32(0x100)
_FLAGS_REMOTE_SPAN = b"\x85\x01" + _pack_fixed32(0x300)
_FLAGS_LOCAL_LINK = b"\x35" + _pack_fixed32(0x100)
_FLAGS_REMOTE_LINK = b"\x35" + _pack_fixed32(0x300)
# Span.status without a description, by code (UNSET still sends an empty Status, as the SDK does)
_STATUS = {0: b"\x7a\x00", 1: b"\x7a\x02\x18\x01", 2: b"\x7a\x02\x18\x02"}


def _trace_state(trace_state: Any) -> bytes:
    if not trace_state:
        return b""
    return _text(b"\x1a", ",".join([f"{key}={value}" for key, value in trace_state.items()]))


def _filled(span: ReadableSpan, private: str) -> bool:
    """Whether a span has events/links, read from the SDK's sequence when it has one (no copy)."""
    raw = getattr(span, private, None)
    if raw is None:
        raw = getattr(span, private[1:])
    return bool(raw)


def _span(span: ReadableSpan) -> bytes:
    """One ``Span`` message (without its ScopeSpans.spans tag and length)."""
    context = span.get_span_context()
    parent = span.parent
    trace_id = context.trace_id
    head = _pack_ids(b"\x0a\x10", trace_id >> 64, trace_id & _UINT64, b"\x12\x08", context.span_id)
    if context.trace_state:
        head += _trace_state(context.trace_state)
    if parent:
        head += b"\x22\x08" + parent.span_id.to_bytes(8, "big")
    name = span.name
    if name:
        head += _field(b"\x2a", name.encode())
    parts = [head + _KIND[span.kind]]
    start, end = span.start_time, span.end_time
    if start and end:
        parts.append(_pack_times(0x39, start, 0x41, end))
    elif start:
        parts.append(b"\x39" + _pack_fixed64(start))
    elif end:
        parts.append(b"\x41" + _pack_fixed64(end))
    raw = getattr(span, "_attributes", None)
    if type(raw) in _BOUNDED and raw._immutable:  # an ended SDK span: read without a copy
        _attributes(parts, b"\x4a", raw._dict)
        dropped = raw.dropped
    else:
        _attributes(parts, b"\x4a", span.attributes)
        dropped = span.dropped_attributes
    if dropped:
        parts.append(_uint(b"\x50", dropped))
    if _filled(span, "_events"):  # span.events copies the list under a lock, even when empty
        for event in span.events:
            body = [b"\x09" + _pack_fixed64(event.timestamp)] if event.timestamp else []
            body.append(_text(b"\x12", event.name))
            _attributes(body, b"\x1a", event.attributes)
            body.append(_uint(b"\x20", event.dropped_attributes))
            parts.append(_field(b"\x5a", b"".join(body)))
    if span.dropped_events:  # outside the test above: with a limit of 0 every event is dropped
        parts.append(_uint(b"\x60", span.dropped_events))
    if _filled(span, "_links"):
        for link in span.links:
            linked = link.context
            body = [b"\x0a\x10" + linked.trace_id.to_bytes(16, "big") + b"\x12\x08" + linked.span_id.to_bytes(8, "big")]
            _attributes(body, b"\x22", link.attributes)
            body.append(_uint(b"\x28", link.dropped_attributes))
            body.append(_FLAGS_REMOTE_LINK if linked.is_remote else _FLAGS_LOCAL_LINK)
            parts.append(_field(b"\x6a", b"".join(body)))
    if span.dropped_links:
        parts.append(_uint(b"\x70", span.dropped_links))
    status = span.status
    if status is not None:
        code, description = status.status_code.value, status.description
        if description:
            parts.append(_field(b"\x7a", _text(b"\x12", description) + (b"\x18" + _varint(code) if code else b"")))
        else:
            parts.append(_STATUS[code] if code in _STATUS else _field(b"\x7a", b"\x18" + _varint(code)))
    parts.append(_FLAGS_REMOTE_SPAN if parent and parent.is_remote else _FLAGS_LOCAL_SPAN)
    return b"".join(parts)


# The SDK's own span classes (the ReadableSpan processors get, the Span itself) and the fast
# path's LeanSpans (one class per tracer, in _LEAN_SPAN_TYPES) keep in their fields exactly what
# their properties return: for them the common shape is encoded from the fields, without a
# property call (or an enum hash) per field.
# They are switched on below (_switch_on_direct_path) only once probe spans of this SDK encode to
# the SDK encoder's bytes.
_DIRECT_TYPES: frozenset[type] = frozenset()
_KIND_BY_VALUE = {kind.value: field for kind, field in _KIND.items()}
# Span.status (no description) then Span.flags, by status code value, for a local and a remote parent
_TAIL_LOCAL = {code: status + _FLAGS_LOCAL_SPAN for code, status in _STATUS.items()}
_TAIL_REMOTE = {code: status + _FLAGS_REMOTE_SPAN for code, status in _STATUS.items()}
_name_kind: dict[tuple[str, int], bytes] = {}  # Span.name and Span.kind fields, by (name, kind value)


def _direct_span(span: ReadableSpan) -> Optional[bytes]:
    """The ``ScopeSpans.spans`` field (tag, length, Span) of an SDK span of the shape nearly every
    server and client span has: no trace state, events, links or drops, both times, a status
    without description.  None for any other span: :func:`_span` encodes it."""
    context, parent, events, links = span._context, span._parent, span._events, span._links
    attributes, status, start, end = span._attributes, span._status, span._start_time, span._end_time
    kind = span._kind
    if (
        type(context) is not SpanContext
        or (parent is not None and type(parent) is not SpanContext)
        or type(status) is not Status
        or type(kind) is not SpanKind
    ):
        return None
    trace_id, span_id, _, _, trace_state, _ = context  # the tuple SpanContext is (CONTEXT_AS_TUPLE)
    if trace_state is not DEFAULT_TRACE_STATE and trace_state:
        return None
    if type(events) is BoundedList:  # the SDK's; LeanSpan has an empty tuple until the first one
        if events._dq or events.dropped:
            return None
    elif events or type(events) is not tuple:
        return None
    if type(links) is BoundedList:
        if links._dq or links.dropped:
            return None
    elif links or type(links) is not tuple:
        return None
    if type(attributes) not in _BOUNDED or not attributes._immutable or attributes.dropped:
        return None
    if status._description or not start or not end:  # a 0 time is an absent field
        return None
    if parent is None:
        head = _pack_ids(b"\x0a\x10", trace_id >> 64, trace_id & _UINT64, b"\x12\x08", span_id)
        tail = _TAIL_LOCAL[status._status_code._value_]
    else:
        head = _pack_ids_parent(
            b"\x0a\x10", trace_id >> 64, trace_id & _UINT64, b"\x12\x08", span_id, b"\x22\x08", parent[1]
        )
        tail = (_TAIL_REMOTE if parent[2] else _TAIL_LOCAL)[status._status_code._value_]  # [2]: is_remote
    name, kind = span._name, kind._value_
    name_kind = _name_kind.get((name, kind))
    if name_kind is None:
        name_kind = (_field(b"\x2a", name.encode()) if name else b"") + _KIND_BY_VALUE[kind]
        if len(_name_kind) >= _CACHE_LIMIT:
            _name_kind.clear()
        _name_kind[(name, kind)] = name_kind
    parts = [head, name_kind, _pack_times(0x39, start, 0x41, end)]
    _attributes(parts, b"\x4a", attributes._dict)
    parts.append(tail)
    body = b"".join(parts)
    n = len(body)
    return b"\x12" + (_SMALL_VARINT[n] if n < 0x80 else _varint(n)) + body


class _Keyed:
    """A Resource or scope as a dict key, with its hash computed once (Resource hashes via json)."""

    __slots__ = ("obj", "hash")

    def __init__(self, obj: Any, hash_: int) -> None:
        self.obj, self.hash = obj, hash_

    def __hash__(self) -> int:
        return self.hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Keyed) and (self.obj is other.obj or self.obj == other.obj)


# id(object) -> (object, its _Keyed, its encoded field); the object is held so its id stays unique.
_resources: dict[int, tuple[Any, _Keyed, bytes]] = {}
_scopes: dict[int, tuple[Any, _Keyed, bytes]] = {}


def _resource_entry(resource: Any) -> tuple[Any, _Keyed, bytes]:
    entry = _resources.get(id(resource))
    if entry is None or entry[0] is not resource:
        encoded = b"".join(_attributes([], b"\x0a", resource.attributes))
        entry = (resource, _Keyed(resource, hash(resource)), _field(b"\x0a", encoded))
        if len(_resources) >= 64:
            _resources.clear()
        _resources[id(resource)] = entry
    return entry


def _scope_entry(scope: Any) -> tuple[Any, _Keyed, bytes]:
    entry = _scopes.get(id(scope))
    if entry is None or entry[0] is not scope:
        if scope is None:
            encoded = b""
        else:
            encoded = (
                _text(b"\x0a", scope.name)
                + _text(b"\x12", scope.version)
                + b"".join(_attributes([], b"\x1a", scope.attributes))
            )
        entry = (scope, _Keyed(scope, hash(scope)), _field(b"\x0a", encoded))
        if len(_scopes) >= 256:
            _scopes.clear()
        _scopes[id(scope)] = entry
    return entry


def _load_native() -> Any:
    """``otel_uwsgi.native._accel.span_field`` (the C build of :func:`_direct_span`) when the
    extension is there (:mod:`otel_uwsgi.native.accel`); else None: then the Python code
    encodes every span."""
    native = accel.load()
    if native is None:
        return None
    return native.span_field


def _probe_spans() -> list[ReadableSpan]:
    """Spans of the common shape from this SDK, as a span processor receives them: a server span,
    its client child with an error status, every attribute value type the direct path writes."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON
    from opentelemetry.trace import StatusCode

    received: list[ReadableSpan] = []

    class Keep(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            received.append(span)

    provider = TracerProvider(resource=Resource({"service.name": "probe"}), sampler=ALWAYS_ON, shutdown_on_exit=False)
    provider.add_span_processor(Keep())
    tracer = provider.get_tracer("otel_uwsgi.probe", "1.0", schema_url="https://opentelemetry.io/schemas/1.11.0")
    root = tracer.start_span("GET /probe", kind=SpanKind.SERVER, attributes={"s": "v", "i": 7, "f": 0.5, "b": True})
    child = tracer.start_span("SELECT", context=trace.set_span_in_context(root), kind=SpanKind.CLIENT)
    child.set_attribute("db.system", "mysql")
    child.set_status(Status(StatusCode.ERROR))
    child.end()
    root.end()
    return [*received, root, child]  # what processors get, and the SDK's span objects themselves


def _switch_on_direct_path() -> Optional[Any]:
    """Turn the direct path (and its C build) on when probe spans of the installed SDK encode to
    exactly the SDK encoder's bytes; otherwise every span takes :func:`_span` (one info line).
    Returns the C ``span_field`` or None."""
    global _DIRECT_TYPES, native_span_field
    native_span_field = None  # the Python direct path is checked first, then its C build against it
    problem: Optional[str] = None
    if not CONTEXT_AS_TUPLE:
        problem = "its SpanContext is not the tuple the direct encoder reads"
    else:
        try:
            from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode_spans

            spans = _probe_spans()
            _DIRECT_TYPES = frozenset(type(span) for span in spans)
            direct = [_direct_span(span) for span in spans]
            if None in direct or _encode(spans) != sdk_encode_spans(spans).SerializePartialToString():
                problem = "its spans encode differently from what the direct encoder was checked against"
            native = _load_native()
            if problem is None and native is not None and [native(span) for span in spans] != direct:
                logger.info("otel-uwsgi: the C span encoder disagrees with this SDK's spans; Python encodes them")
                native = None
        except Exception as error:  # noqa: BLE001 - a different SDK: the general path serves it
            problem = f"probing it failed ({type(error).__name__}: {error})"
    if problem is not None:
        _DIRECT_TYPES = frozenset()
        logger.info(
            "otel-uwsgi: the direct span encoder steps aside for this opentelemetry-sdk (%s); spans are "
            "encoded field by field (the same bytes, more CPU)",
            problem,
        )
        return None
    return native


#: The C encoder of the common shape, or None; it returns None for any span it leaves to Python.
native_span_field: Optional[Any] = None


def _encode(spans: Sequence[ReadableSpan]) -> bytes:
    # resource -> scope -> encoded spans, keyed with the SDK's equality, in first-seen order
    groups: dict[_Keyed, tuple[bytes, Optional[str], dict[_Keyed, tuple[bytes, Optional[str], list[bytes]]]]] = {}
    by_identity: dict[tuple[int, int], list[bytes]] = {}
    last_resource = last_scope = spans_of = None
    native = native_span_field
    for span in spans:
        encoded = None
        cls = type(span)
        if cls in _DIRECT_TYPES or cls in _LEAN_SPAN_TYPES:
            resource, scope = span._resource, span._instrumentation_scope
            if native is not None:
                encoded = native(span)
            if encoded is None:
                encoded = _direct_span(span)
        else:
            resource, scope = span.resource, span.instrumentation_scope
        if encoded is None:
            encoded = _field(b"\x12", _span(span))
        scope = scope or None
        if resource is not last_resource or scope is not last_scope or spans_of is None:
            last_resource, last_scope = resource, scope
            spans_of = by_identity.get((id(resource), id(scope)))
            if spans_of is None:
                _, rkey, rfield = _resource_entry(resource)
                group = groups.get(rkey)
                if group is None:
                    group = groups[rkey] = (rfield, resource.schema_url, {})
                _, skey, sfield = _scope_entry(scope)
                scope_group = group[2].get(skey)
                if scope_group is None:
                    schema_url = scope.schema_url if scope else None
                    scope_group = group[2][skey] = (sfield, schema_url, [])
                spans_of = by_identity[(id(resource), id(scope))] = scope_group[2]
        spans_of.append(encoded)
    out = []
    for rfield, rschema, scopes in groups.values():
        scope_spans = [
            _field(b"\x12", b"".join([sfield, *encoded, _text(b"\x1a", sschema)]))
            for sfield, sschema, encoded in scopes.values()
        ]
        out.append(_field(b"\x0a", b"".join([rfield, *scope_spans, _text(b"\x1a", rschema)])))
    return b"".join(out)


def span_field(span: ReadableSpan) -> tuple[Any, bytes]:
    """(the span's instrumentation scope, its ``ScopeSpans.spans`` field): one span as
    :func:`encode_spans` writes it inside a batch, for the span journal, which encodes each span
    as it ends (:mod:`otel_uwsgi.traces.journal`)."""
    encoded = None
    cls = type(span)
    if cls in _DIRECT_TYPES or cls in _LEAN_SPAN_TYPES:
        scope = span._instrumentation_scope
        if native_span_field is not None:
            encoded = native_span_field(span)
        if encoded is None:
            encoded = _direct_span(span)
    else:
        scope = span.instrumentation_scope
    if encoded is None:
        encoded = _field(b"\x12", _span(span))
    return scope or None, encoded


def scope_fields(scope: Any) -> tuple[bytes, bytes]:
    """The ``ScopeSpans.scope`` and ``ScopeSpans.schema_url`` fields of ``scope`` (None: no scope)."""
    return _scope_entry(scope)[2], _text(b"\x1a", scope.schema_url if scope else None)


def resource_fields(resource: Any) -> tuple[bytes, bytes]:
    """The ``ResourceSpans.resource`` and ``ResourceSpans.schema_url`` fields of ``resource``."""
    return _resource_entry(resource)[2], _text(b"\x1a", resource.schema_url)


def encode_spans(spans: Sequence[ReadableSpan]) -> bytes:
    """The serialised ``ExportTraceServiceRequest`` for ``spans``, as the SDK's encoder makes it."""
    try:
        return _encode(spans)
    except Exception as error:  # noqa: BLE001 - the SDK's encoder decides what an odd span becomes
        logger.debug("otel-uwsgi: direct span encoding failed (%r); using the SDK's encoder for this batch", error)
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode_spans

        return sdk_encode_spans(spans).SerializePartialToString()


native_span_field = _switch_on_direct_path()
