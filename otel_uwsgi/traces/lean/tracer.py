"""The tracer that starts lean spans, or steps aside for the SDK's own ``start_span`` when
anything it skips is asked for or the SDK is not the one it was checked against."""

from __future__ import annotations

import dis
import inspect
import logging
import random
import threading
from time import time_ns
from typing import Any, Optional

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import INVALID_SPAN_ID, INVALID_TRACE_ID, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

from otel_uwsgi.native import accel
from otel_uwsgi.native.sdk_layout import CONTEXT_AS_TUPLE, LEAN_SPAN_CLASSES
from otel_uwsgi.traces import context_ops
from otel_uwsgi.traces.lean import current
from otel_uwsgi.traces.lean.sampling import DROP, SAMPLE, decider, parent_decisions, root_decision
from otel_uwsgi.traces.lean.span import Hooks, LeanAttributes, LeanSpan, NoOpTracerMetrics, plain_attributes

_logger = logging.getLogger(__name__)
# A new span's TraceFlags: sampled or not, with or without a random trace id
# (the random flag is API 1.42's: on an older API this module still imports, and the lean start
# steps aside, sdk_layout_problem()).
_RANDOM_TRACE_ID = getattr(TraceFlags, "RANDOM_TRACE_ID", 0)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_SAMPLED_RANDOM = TraceFlags(TraceFlags.SAMPLED | _RANDOM_TRACE_ID)
_UNSAMPLED = TraceFlags(TraceFlags.DEFAULT)
_UNSAMPLED_RANDOM = TraceFlags(TraceFlags.DEFAULT | _RANDOM_TRACE_ID)
_MAX_TRACE_ID, _MAX_SPAN_ID = (1 << 128) - 1, (1 << 64) - 1

#: The C start (otel_uwsgi/native/_lifecycle.c), or None: without the extension, on an API whose
#: random-trace-id flag is not bit 2, or without the current-span key (context_ops.SPAN_KEY).
_NATIVE = accel.load()
_WITHOUT_C_START = _RANDOM_TRACE_ID != 2 or context_ops.SPAN_KEY is None  # an API the C start was not written for
if _NATIVE is not None and (not hasattr(_NATIVE, "lean_start") or _WITHOUT_C_START):
    _NATIVE = None


def _reads_config_flag(method: Any) -> bool:
    """Whether ``Tracer._is_enabled`` is ``return self._tracer_config.is_enabled`` (the C start then
    reads the flag itself: no Python call per span)."""
    code = getattr(method, "__code__", None)
    if code is None:
        return False
    ops = [(i.opname, i.argval) for i in dis.get_instructions(code) if i.opname not in ("RESUME", "NOP", "CACHE")]
    return ops == [
        ("LOAD_FAST", "self"), ("LOAD_ATTR", "_tracer_config"), ("LOAD_ATTR", "is_enabled"), ("RETURN_VALUE", None)
    ]


def _returns_context(cls: type) -> bool:
    """Whether ``cls().get_span_context()`` is its ``_context`` field (the SDK's and the API's spans)."""
    method = getattr(cls, "get_span_context", None)
    return getattr(method, "__qualname__", "") in ("Span.get_span_context", "NonRecordingSpan.get_span_context")


#: Span types whose span context the C start reads from their ``_context`` field (any other current
#: span sends the start to Python); every lean span class is added as it is made.
KNOWN_SPANS: dict[type, bool] = {
    cls: True
    for cls in (trace_api.NonRecordingSpan, SdkSpan, getattr(sdk_trace, "_Span", SdkSpan))
    if _returns_context(cls)
}


class LeanTracer:
    """``start_span`` of an SDK tracer, minus the work the fast path does not need."""

    def __init__(self, tracer: Any) -> None:
        self._tracer = tracer
        self._sdk_start = SdkTracer.start_span.__get__(tracer) if isinstance(tracer, SdkTracer) else tracer.start_span
        lean = False
        try:
            decide = decider(tracer.sampler) if isinstance(tracer, SdkTracer) else None
            if decide is not None and _sdk_fits(tracer):
                limits = tracer._span_limits
                lean = limits.max_span_attribute_length is None
                self._max_attributes = limits.max_span_attributes
                self._decide = decide
                self._root_decision = root_decision(tracer.sampler)
                self._ids = tracer.id_generator
                self._random_ids = bool(self._ids.is_trace_id_random())
                # The SDK's default generator is random.getrandbits, called here without its frame
                self._sdk_random_ids = type(self._ids) is RandomIdGenerator
                metrics = tracer._tracer_metrics
                self._metrics = None if type(metrics) is NoOpTracerMetrics else metrics
                self._hooks = Hooks(tracer.span_processor)
                self._span_class = type(
                    "LeanSpan",
                    (LeanSpan,),
                    {
                        "__module__": LeanSpan.__module__,
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
                LEAN_SPAN_CLASSES.add(self._span_class)
                KNOWN_SPANS[self._span_class] = True
                # None when not lean (a value-length limit): the C start does not read self.lean
                self._native = self._native_state(tracer) if lean else None
        except AttributeError:  # an SDK whose internals differ: its own path, always correct
            _stepping_aside("a tracer part it reads is missing")
            lean = False
        if not lean and isinstance(tracer, SdkTracer):
            _logger.debug("otel-uwsgi: %s's spans are started by the SDK's own Tracer.start_span", tracer)
        self.lean = lean

    def _native_state(self, tracer: Any) -> Optional[tuple[Any, ...]]:
        """What the C start reads (the order of ``ST_*`` in _lifecycle.c), or None: without the
        extension, with span metrics on or another id generator (the Python start serves those)."""
        if _NATIVE is None or self._metrics is not None or not self._sdk_random_ids:
            return None
        return (
            tracer, self._span_class, self._max_attributes, self._root_decision, parent_decisions(tracer.sampler),
            self._decide, SAMPLE, DROP, self._random_ids,
            (_SAMPLED, _SAMPLED_RANDOM, _UNSAMPLED, _UNSAMPLED_RANDOM), random.getrandbits, threading.Lock,
            trace_api.NonRecordingSpan, context_ops.SPAN_KEY, KNOWN_SPANS, self._hooks, LeanAttributes,
            DEFAULT_TRACE_STATE,
            None if _reads_config_flag(type(tracer)._is_enabled) else tracer._is_enabled, context_ops.get_current,
        )  # fmt: skip

    # One function on purpose, longer than the guide's ~60 lines: it runs at every span start, and
    # each step moved into a helper would add a Python call to every span.  Its steps, in order:
    # step aside to the SDK (tracing off, attributes it does not take, a parent it does not know),
    # trace id and sampling decision, span id and SpanContext, a dropped span's NonRecordingSpan,
    # the recording span and its BoundedAttributes built without __init__, the processors' on_start.
    def _start_py(
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
            (self._max_attributes is not None and len(attributes) > self._max_attributes)
            or not plain_attributes(attributes)
        ):
            return self._sdk_start(name, context, kind, attributes=attributes, start_time=start_time)
        parent = trace_api.get_current_span(context).get_span_context()
        if type(parent) is SpanContext and parent[5]:  # a valid parent; [5]: is_valid
            trace_id, _, _, parent_flags, trace_state, _ = parent
            random_id = parent_flags & _RANDOM_TRACE_ID
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
        if decision is SAMPLE:
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
        if decision is DROP:
            return trace_api.NonRecordingSpan(span_context)
        span = object.__new__(self._span_class)  # the tracer's fields are its class's (see LeanSpan)
        span._name = name
        span._context = span_context
        span._kind = kind
        span._parent = parent
        span._end_time = None
        span._lock = threading.Lock()
        bounded = object.__new__(LeanAttributes)  # BoundedAttributes(max, None, immutable=False)
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

    #: ``start_span``: the C twin of :meth:`_start_py` where built (it hands the calls it does not
    #: take, with their arguments, to :meth:`_start_py`), else :meth:`_start_py` itself.
    start_span = _start_py if _NATIVE is None else _NATIVE.as_method(_NATIVE.lean_start)
    _native: Optional[tuple[Any, ...]] = None


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


#: ``SdkTracer.start_span``'s parameters as LeanSdkTracer.start_span was written for them.
_START_SPAN_PARAMETERS = (
    "self name context kind attributes links start_time record_exception set_status_on_exception".split()
)
_told = False


def _stepping_aside(why: str) -> None:
    """Say once per process that the lean span start is off for this SDK, and why."""
    global _told
    if not _told:
        _told = True
        _logger.info(
            "otel-uwsgi: the lean span start steps aside for this opentelemetry-sdk (%s); spans are "
            "started by the SDK's own code (the same spans, more CPU)",
            why,
        )


def sdk_layout_problem() -> Optional[str]:
    """What in the installed API/SDK the lean start was not written for, known without a tracer
    (None: nothing); the fields of the SDK's spans are checked per tracer (:func:`_sdk_fits`)."""
    if not CONTEXT_AS_TUPLE:
        return "its SpanContext is not the tuple the lean start builds"
    if not _RANDOM_TRACE_ID:
        return "its TraceFlags have no RANDOM_TRACE_ID (opentelemetry-api before 1.42)"
    if list(inspect.signature(SdkTracer.start_span).parameters) != _START_SPAN_PARAMETERS:
        return "Tracer.start_span takes other arguments"
    return None


def _sdk_fits(tracer: Any) -> bool:
    """Whether the installed SDK is the one the lean start was checked against (else one info line)."""
    problem = sdk_layout_problem()
    if problem is not None:
        _stepping_aside(problem)
        return False
    if not _sdk_as_expected(tracer):
        _stepping_aside("its spans have other fields")
        return False
    return True


class _ProbeSpan(SdkSpan):
    """An SDK span class that may be instantiated (``Span`` itself refuses), for the check above."""


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
        *args: Any,
        **kwargs: Any,
    ) -> trace_api.Span:
        if links or not record_exception or not set_status_on_exception or args or kwargs:
            return SdkTracer.start_span(
                self,
                name,
                context,
                kind,
                attributes,
                links,
                start_time,
                record_exception,
                set_status_on_exception,
                *args,
                **kwargs,
            )
        return self._lean.start_span(name, context, kind, attributes, start_time)

    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: Optional[Context] = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Any = None,
        links: Any = (),
        start_time: Optional[int] = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """The SDK's context manager, as one small object (:mod:`.current`) where it does the same."""
        if links or args or kwargs or not current.VERIFIED:
            return SdkTracer.start_as_current_span(
                self,
                name,
                context,
                kind,
                attributes,
                links,
                start_time,
                record_exception,
                set_status_on_exception,
                end_on_exit,
                *args,
                **kwargs,
            )
        flags = (record_exception, set_status_on_exception, end_on_exit)
        return current.CurrentSpan(self, (name, context, kind, attributes, start_time), flags)


def make_lean(tracer: Any) -> Any:
    """``tracer`` made a :class:`LeanSdkTracer` when LeanTracer can serve it, else unchanged."""
    if type(tracer) is not SdkTracer:
        return tracer
    lean = LeanTracer(tracer)
    if lean.lean:
        tracer.__class__ = LeanSdkTracer
        tracer._lean = lean
    return tracer
