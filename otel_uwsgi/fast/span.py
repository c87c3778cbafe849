"""A leaner start and end for SDK spans: the fast path's, and (``otel-lean-spans``) the stock
instrumentations' through :class:`LeanSdkTracer`.

The SDK's ``Tracer.start_span`` re-validates every attribute value (the fast path builds them
from strings and ints it already checked), allocates links and events lists, and at ``end``
copies the span into a new ``ReadableSpan`` for the processors.  ``LeanTracer`` makes the same
SDK ``Span`` objects, with the same sampler, ids, limits, resource, scope and processors, but:

* attributes the caller vouches for (``str``/``int``/``float``/``bool`` values, at most the
  attribute-count limit, no value-length limit) go into the span's ``BoundedAttributes``
  without the per-value checks (the test of the types is C where ``otel_uwsgi._native`` was
  built); anything else takes the SDK's own path;
* the SDK's own samplers (static, trace-id ratio, parent-based) are decided directly by their
  rules, without a ``SamplingResult`` and three more look-ups of the parent (a root span's
  static decision without any call), and the SDK's random ids come from ``random`` directly;
* the events and links lists are made when the first event or link is added;
* the ended span itself is handed to ``on_end`` (it is a ``ReadableSpan``, and once ended it
  no longer changes: every mutator of an ended SDK span is a no-op with a warning);
* the fields a span shares with its tracer's other spans live on a class made per tracer, so a
  span is 8 field stores; its ``SpanContext`` is built as the tuple the API builds;
* the processors' hooks are called directly, in the chain's order, skipping those whose body is
  ``pass`` (the batch processor's ``on_start`` and ``_on_ending``).

Everything else, including what user code does with the span (``set_attributes``,
``record_exception``, ...) and the SDK's own span metrics, is the SDK's code, except that
``set_attribute`` of a str/int/float/bool value the span has room for skips the SDK's cleaning
calls (which would return the value unchanged).  It delegates to
the SDK's ``start_span`` when the tracer is not an SDK tracer (no provider, or another SDK),
the sampler is not one of the SDK's, a value-length limit is set, or this SDK's spans do not
have exactly the fields set here (checked once per tracer, see :func:`_sdk_as_expected`).
"""

from __future__ import annotations

import dis
import logging
import random
import threading
from time import time_ns
from typing import Any, Callable, Optional

from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace import SynchronousMultiSpanProcessor
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace import sampling as sdk_sampling
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import INVALID_SPAN_ID, INVALID_TRACE_ID, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.span import DEFAULT_TRACE_STATE, TraceState
from opentelemetry.trace.status import Status, StatusCode

from otel_uwsgi import extensions

try:
    from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics as _NoOpTracerMetrics
    from opentelemetry.sdk.trace._tracer_metrics import noop as _noop
except ImportError:  # an SDK without them: the tracer's span metrics are always called
    _NoOpTracerMetrics = None  # type: ignore[assignment,misc]

    def _noop() -> None:
        pass

_sdk_logger = logging.getLogger("opentelemetry.sdk.trace")
_logger = logging.getLogger(__name__)
_UNSET = Status(StatusCode.UNSET)
_SAMPLE, _DROP = sdk_sampling.Decision.RECORD_AND_SAMPLE, sdk_sampling.Decision.DROP
# A new span's TraceFlags: sampled or not, with or without a random trace id
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_SAMPLED_RANDOM = TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)
_UNSAMPLED = TraceFlags(TraceFlags.DEFAULT)
_UNSAMPLED_RANDOM = TraceFlags(TraceFlags.DEFAULT | TraceFlags.RANDOM_TRACE_ID)
_MAX_TRACE_ID, _MAX_SPAN_ID = (1 << 128) - 1, (1 << 64) - 1
# SpanContext is the tuple (trace_id, span_id, is_remote, trace_flags, trace_state, is_valid) its
# properties read: LeanTracer (and the encoder) build and read it as such while this API release does.
_probe = SpanContext(3, 5, True, TraceFlags(1), TraceState([("k", "v")]))
CONTEXT_AS_TUPLE = tuple(_probe) == (3, 5, True, TraceFlags(1), _probe.trace_state, True) and (
    _probe.trace_id,
    _probe.span_id,
    _probe.is_remote,
    _probe.trace_flags,
    _probe.is_valid,
) == (3, 5, True, 1, True)
del _probe
_PLAIN = frozenset((str, int, float, bool))
_STR = frozenset((str,))


def _plain_py(attributes: dict[str, Any]) -> bool:
    """Keys are non-empty str and values str/int/float/bool: nothing the SDK's checks would change."""
    values_ok = _PLAIN.issuperset(map(type, attributes.values()))
    return values_ok and _STR.issuperset(map(type, attributes)) and "" not in attributes


def _load_plain() -> Callable[[Any], bool]:
    """``_plain_py``, or its C twin (~0.5k instructions for 12 attributes against ~8k) when built."""
    native = extensions.load()
    if native is None:
        return _plain_py
    native.set_plain_fallback(_plain_py)  # for mappings other than an exact dict
    return native.plain_attributes


_plain = _load_plain()


class LeanSpan(SdkSpan):
    """An SDK span built without re-checking what the fast path already checked.

    Fields a new span shares with every other span of its tracer (resource, scope, sampler,
    processor, limits) are attributes of the tracer's own subclass, and those that stay at their
    initial value until user code changes them (status, end time, events, links, options) are
    class attributes here: a change is an instance attribute, as on any object.  A span is made
    with the 8 fields that differ per span.
    """

    _end_time: Optional[int] = None
    _status = _UNSET
    _trace_config = None
    _record_exception = True
    _set_status_on_exception = True
    _events: Any = ()
    _links: Any = ()
    _record_end_metrics: Callable[[], None] = staticmethod(_noop)  # the SDK's, when span metrics are off
    _hooks: _Hooks

    def __init__(self) -> None:  # built by LeanTracer.start_span, never by callers
        raise TypeError("LeanSpan is made by LeanTracer.start_span")

    # Events and links: most spans have none, so their BoundedLists (a deque and a lock each)
    # are made at the first one; until then the field is an empty tuple, which every reader of
    # an SDK span accepts (``events``/``links`` copy it into a tuple, ``dropped_*`` read 0).

    def _add_event(self, event: Any) -> None:
        self._append_lazily("_events", self._limits.max_events, event, "_add_event")

    def _add_link(self, link: Any) -> None:
        self._append_lazily("_links", self._limits.max_links, link, "_add_link")

    def _append_lazily(self, field: str, maxlen: Optional[int], item: Any, caller: str) -> None:
        """Append to the events or links list, making it on first use; the SDK's check and
        warning for an ended span (its decorator would hold the lock this takes)."""
        with self._lock:
            if self._end_time is None:
                items = getattr(self, field)
                if type(items) is not BoundedList:
                    items = BoundedList(maxlen)
                    setattr(self, field, items)
                items.append(item)
                return
        _sdk_logger.warning("Tried calling %s on an ended span.", caller)

    def set_attribute(self, key: str, value: Any) -> None:
        """The SDK's ``set_attribute``; a str/int/float/bool value under a non-empty str key, with
        room for it and no value-length limit, goes in without the SDK's cleaning calls (which
        would return it unchanged)."""
        with self._lock:
            bounded = self._attributes
            if self._end_time is None and type(key) is str and key and type(value) in _PLAIN:
                current = bounded._dict
                if key in current:
                    del current[key]
                    current[key] = value
                    return
                if bounded.maxlen is None or len(current) < bounded.maxlen:
                    current[key] = value
                    return
        SdkSpan.set_attribute(self, key, value)

    def set_checked_attributes(self, attributes: dict[str, Any]) -> None:
        """``set_attributes`` for values the fast path made itself (str, int, float, bool): added
        without the SDK's per-value checks when that changes nothing, by the SDK otherwise
        (a key already set moves to the end, a full span drops its oldest)."""
        with self._lock:
            bounded = self._attributes
            current = bounded._dict
            if (
                self._end_time is None
                and (bounded.maxlen is None or len(current) + len(attributes) <= bounded.maxlen)
                and current.keys().isdisjoint(attributes)
                and _plain(attributes)
            ):
                current.update(attributes)
                return
        self.set_attributes(attributes)

    def end(self, end_time: Optional[int] = None) -> None:
        with self._lock:
            if self._start_time is None:
                raise RuntimeError("Calling end() on a not started span.")
            ended = self._end_time is not None
            if not ended:
                self._end_time = end_time if end_time is not None else time_ns()
                self._attributes._immutable = True
        if ended:
            _sdk_logger.warning("Calling end() on an ended span.")  # the SDK's words, on its logger
            return
        if self._record_end_metrics is not _noop:
            self._record_end_metrics()
        hooks = self._hooks
        if hooks.chain is not None:
            if hooks.chain._span_processors is not hooks.processors:
                hooks.refresh()
            for on_ending in hooks.on_ending:
                on_ending(self)
            for on_end in hooks.on_end:
                on_end(self)
        else:
            self._span_processor._on_ending(self)
            self._span_processor.on_end(self)


# Every LeanSpan subclass made for a tracer (the encoder reads these spans' fields directly).
SPAN_TYPES: set[type] = set()


def _does_nothing(method: Any) -> bool:
    """Whether a processor method's body is only ``pass`` or a docstring (the SDK's on_start and
    _on_ending of most processors): such calls are skipped.  Anything else is called."""
    code = getattr(getattr(method, "__func__", None), "__code__", None)
    if code is None:
        return False
    ops = [(i.opname, i.argval) for i in dis.get_instructions(code) if i.opname not in ("RESUME", "NOP", "CACHE")]
    return ops in ([("LOAD_CONST", None), ("RETURN_VALUE", None)], [("RETURN_CONST", None)])


class _Hooks:
    """The span processors' ``on_start``/``_on_ending``/``on_end`` a tracer's spans call directly,
    in the chain's order, without the SDK's multi-processor loop and without the calls that do
    nothing; re-read whenever the chain's tuple of processors changes (``add_span_processor``).
    ``chain`` is None when the provider's chain is not the SDK's synchronous one: then the spans
    call the chain itself."""

    def __init__(self, chain: Any) -> None:
        self.chain = chain if type(chain) is SynchronousMultiSpanProcessor else None
        self.processors: Any = None
        self.on_start: list[Callable[..., None]] = []
        self.on_ending: list[Callable[[Any], None]] = []
        self.on_end: list[Callable[[Any], None]] = []
        if self.chain is not None:
            self.refresh()

    def refresh(self) -> None:
        processors = self.chain._span_processors
        self.on_start = [p.on_start for p in processors if not _does_nothing(p.on_start)]
        self.on_ending = [p._on_ending for p in processors if not _does_nothing(p._on_ending)]
        self.on_end = [p.on_end for p in processors if not _does_nothing(p.on_end)]
        self.processors = processors


class LeanTracer:
    """``start_span`` of an SDK tracer, minus the work the fast path does not need."""

    def __init__(self, tracer: Any) -> None:
        self._tracer = tracer
        self._sdk_start = SdkTracer.start_span.__get__(tracer) if isinstance(tracer, SdkTracer) else tracer.start_span
        lean = False
        try:
            decide = _decider(tracer.sampler) if isinstance(tracer, SdkTracer) else None
            if decide is not None and CONTEXT_AS_TUPLE and _sdk_as_expected(tracer):
                limits = tracer._span_limits
                lean = limits.max_span_attribute_length is None
                self._max_attributes = limits.max_span_attributes
                self._decide = decide
                self._root_decision = _root_decision(tracer.sampler)
                self._ids = tracer.id_generator
                self._random_ids = bool(self._ids.is_trace_id_random())
                # The SDK's default generator is random.getrandbits, called here without its frame
                self._sdk_random_ids = type(self._ids) is RandomIdGenerator
                metrics = tracer._tracer_metrics
                self._metrics = None if type(metrics) is _NoOpTracerMetrics else metrics
                self._hooks = _Hooks(tracer.span_processor)
                self._span_class = type(
                    "LeanSpan",
                    (LeanSpan,),
                    {
                        "__module__": __name__,
                        "__qualname__": "LeanSpan",
                        "_instrumentation_info": tracer.instrumentation_info,
                        "_instrumentation_scope": tracer._instrumentation_scope,
                        "_resource": tracer.resource,
                        "_sampler": tracer.sampler,
                        "_span_processor": tracer.span_processor,
                        "_limits": limits,
                        "_hooks": self._hooks,
                    },
                )
                SPAN_TYPES.add(self._span_class)
        except AttributeError:  # an SDK whose internals differ: its own path, always correct
            lean = False
        if not lean and isinstance(tracer, SdkTracer):
            _logger.debug("otel-uwsgi: %s's spans are started by the SDK's own Tracer.start_span", tracer)
        self.lean = lean

    def start_span(
        self,
        name: str,
        context: Optional[Context] = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Optional[dict[str, Any]] = None,
        start_time: Optional[int] = None,
    ) -> trace_api.Span:
        """Like ``Tracer.start_span``; ``attributes`` values must be str, int, float or bool."""
        tracer = self._tracer
        if not self.lean or not tracer._is_enabled():
            return self._sdk_start(name, context, kind, attributes=attributes, start_time=start_time)
        if attributes and (
            (self._max_attributes is not None and len(attributes) > self._max_attributes) or not _plain(attributes)
        ):
            return self._sdk_start(name, context, kind, attributes=attributes, start_time=start_time)
        parent = trace_api.get_current_span(context).get_span_context()
        if type(parent) is SpanContext and parent[5]:  # a valid parent; [5]: is_valid
            trace_id, _, _, parent_flags, trace_state, _ = parent
            random_id = parent_flags & TraceFlags.RANDOM_TRACE_ID
        elif parent is None or type(parent) is SpanContext:
            parent = None
            if self._sdk_random_ids:  # RandomIdGenerator.generate_trace_id
                trace_id = random.getrandbits(128)
                while trace_id == INVALID_TRACE_ID:
                    trace_id = random.getrandbits(128)
            else:
                trace_id = self._ids.generate_trace_id()
            random_id, trace_state = self._random_ids, DEFAULT_TRACE_STATE
        else:  # a SpanContext subclass or something else: the SDK decides what that means
            return self._sdk_start(name, context, kind, attributes=attributes, start_time=start_time)
        if parent is None and self._root_decision is not None:
            decision = self._root_decision
        else:
            decision = self._decide(parent, trace_id)
        if decision is _SAMPLE:
            flags = _SAMPLED_RANDOM if random_id else _SAMPLED
        else:
            flags = _UNSAMPLED_RANDOM if random_id else _UNSAMPLED
        if self._sdk_random_ids:  # RandomIdGenerator.generate_span_id
            span_id = random.getrandbits(64)
            while span_id == INVALID_SPAN_ID:
                span_id = random.getrandbits(64)
        else:
            span_id = self._ids.generate_span_id()
        valid = 0 < trace_id <= _MAX_TRACE_ID and 0 < span_id <= _MAX_SPAN_ID
        span_context = tuple.__new__(SpanContext, (trace_id, span_id, False, flags, trace_state, valid))
        record_end_metrics = None if self._metrics is None else self._metrics.start_span(parent, decision)
        if decision is _DROP:
            return trace_api.NonRecordingSpan(span_context)
        span = object.__new__(self._span_class)  # the tracer's fields are its class's (see LeanSpan)
        span._name = name
        span._context = span_context
        span._kind = kind
        span._parent = parent
        span._lock = threading.Lock()
        bounded = object.__new__(BoundedAttributes)  # BoundedAttributes(max, None, immutable=False)
        bounded._dict = dict(attributes) if attributes else {}
        bounded.maxlen = self._max_attributes
        bounded.dropped = 0
        bounded.max_value_len = None
        bounded._lock = threading.Lock()
        bounded._immutable = False
        span._attributes = bounded
        if record_end_metrics is not None:
            span._record_end_metrics = record_end_metrics
        span._start_time = time_ns() if start_time is None else start_time
        hooks = self._hooks
        if hooks.chain is not None:
            if hooks.chain._span_processors is not hooks.processors:
                hooks.refresh()
            for on_start in hooks.on_start:
                on_start(span, parent_context=context)
        else:
            span._span_processor.on_start(span, parent_context=context)
        return span


# The fields LeanTracer sets on a span and on its BoundedAttributes: those of this SDK's own.
_SPAN_FIELDS = frozenset(
    (
        "_name _context _kind _instrumentation_info _instrumentation_scope _parent _start_time _end_time "
        "_resource _status _sampler _trace_config _record_exception _set_status_on_exception "
        "_span_processor _limits _lock _attributes _events _links _record_end_metrics"
    ).split()
)
_ATTRIBUTES_FIELDS = frozenset("_dict maxlen dropped max_value_len _lock _immutable".split())


def _sdk_as_expected(tracer: Any) -> bool:
    """Whether this SDK's spans have exactly the fields LeanTracer sets, and its tracer the parts
    it reads: checked once per tracer on an SDK span that is built but never started (no
    processor sees it), so an SDK release that changes them gets its own path, not a half-made
    span."""
    for name in ("_tracer_metrics", "_span_limits", "_instrumentation_scope", "_is_enabled"):
        if not hasattr(tracer, name):
            return False
    probe = SdkSpan.__new__(_ProbeSpan)
    SdkSpan.__init__(  # with the tracer's resource: without one the SDK would build (and detect) a new one
        probe, "probe", trace_api.INVALID_SPAN_CONTEXT, resource=tracer.resource, limits=tracer._span_limits
    )
    return set(vars(probe)) == _SPAN_FIELDS and set(vars(probe._attributes)) == _ATTRIBUTES_FIELDS


class _ProbeSpan(SdkSpan):
    """An SDK span class that may be instantiated (``Span`` itself refuses), for the check above."""


_PARENT_BASED = (sdk_sampling.ParentBased, sdk_sampling.ParentBasedTraceIdRatio)


def _root_decision(sampler: Any) -> Optional[sdk_sampling.Decision]:
    """The decision for every root span, when it does not depend on the trace id (a static
    sampler, or a parent-based one with a static root): taken without calling the decider."""
    if type(sampler) in _PARENT_BASED:
        sampler = getattr(sampler, "_root", None)
    return sampler._decision if type(sampler) is sdk_sampling.StaticSampler else None


def _decider(sampler: Any) -> Optional[Callable[[Optional[SpanContext], int], sdk_sampling.Decision]]:
    """The decision of a sampler made only of the SDK's own (static, trace-id ratio, parent-based)
    from the parent span context (None for a root) and the trace id: their rules, without
    building a ``SamplingResult`` and looking the parent up again for each.  The trace state is
    the parent's, as with those samplers.  None for any other sampler: it may add attributes or
    decide otherwise, so its spans take the SDK's path."""
    kind = type(sampler)
    if kind is sdk_sampling.StaticSampler:
        decision = sampler._decision
        return lambda parent, trace_id: decision
    if kind is sdk_sampling.TraceIdRatioBased:
        limit, bound = sampler.TRACE_ID_LIMIT, sampler.bound
        return lambda parent, trace_id: _SAMPLE if trace_id & limit < bound else _DROP
    if kind not in _PARENT_BASED:
        return None
    delegates = [
        _decider(s)
        for s in (
            sampler._root,
            sampler._remote_parent_sampled,
            sampler._remote_parent_not_sampled,
            sampler._local_parent_sampled,
            sampler._local_parent_not_sampled,
        )
    ]
    if None in delegates:
        return None
    root, remote_sampled, remote_not_sampled, local_sampled, local_not_sampled = delegates

    def parent_based(parent: Optional[SpanContext], trace_id: int) -> sdk_sampling.Decision:
        if parent is None:
            return root(parent, trace_id)
        sampled = parent[3] & TraceFlags.SAMPLED  # parent: a SpanContext, (..., is_remote, trace_flags, ...)
        if parent[2]:
            chosen = remote_sampled if sampled else remote_not_sampled
        else:
            chosen = local_sampled if sampled else local_not_sampled
        return chosen(parent, trace_id)

    return parent_based


class LeanSdkTracer(SdkTracer):
    """An SDK tracer whose ``start_span`` is :class:`LeanTracer`'s when nothing it skips is asked
    for (links, ``record_exception=False``...): what the stock instrumentations' tracers become."""

    _lean: LeanTracer

    def start_span(  # type: ignore[override]
        self,
        name: str,
        context: Optional[Context] = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Any = None,
        links: Any = (),
        start_time: Optional[int] = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace_api.Span:
        if links or not record_exception or not set_status_on_exception:
            return SdkTracer.start_span(
                self, name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception
            )
        return self._lean.start_span(name, context, kind, attributes, start_time)


def make_lean(tracer: Any) -> Any:
    """``tracer`` made a :class:`LeanSdkTracer` when LeanTracer can serve it, else unchanged."""
    if type(tracer) is not SdkTracer:
        return tracer
    lean = LeanTracer(tracer)
    if lean.lean:
        tracer.__class__ = LeanSdkTracer
        tracer._lean = lean
    return tracer
