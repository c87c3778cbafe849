"""The lean span: an SDK ``Span`` built with only its per-span fields, and the processor hooks it
calls directly (see the package docstring)."""

from __future__ import annotations

import dis
import logging
from collections.abc import Callable
from time import time_ns
from typing import Any, Optional

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace import SynchronousMultiSpanProcessor
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace.status import Status, StatusCode

from otel_uwsgi.native import accel
from otel_uwsgi.native.sdk_layout import BOUNDED_ATTRIBUTE_TYPES

try:
    from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics
    from opentelemetry.sdk.trace._tracer_metrics import noop as _noop
except ImportError:  # an SDK without them: the tracer's span metrics are always called
    NoOpTracerMetrics = None  # type: ignore[assignment,misc]

    def _noop() -> None:
        pass

_sdk_logger = logging.getLogger("opentelemetry.sdk.trace")
_NATIVE = accel.load()
if _NATIVE is not None and not hasattr(_NATIVE, "lean_end"):  # an older build
    _NATIVE = None
if _NATIVE is not None:
    _NATIVE.configure_lifecycle(_noop)
_UNSET = Status(StatusCode.UNSET)
_PLAIN = frozenset((str, int, float, bool))
_STR = frozenset((str,))


def _plain_py(attributes: dict[str, Any]) -> bool:
    """Keys are non-empty str and values str/int/float/bool: nothing the SDK's checks would change."""
    values_ok = _PLAIN.issuperset(map(type, attributes.values()))
    return values_ok and _STR.issuperset(map(type, attributes)) and "" not in attributes


def _load_plain() -> Callable[[Any], bool]:
    """``_plain_py``, or its C twin (~0.5k instructions for 12 attributes against ~8k) when built."""
    native = accel.load()
    if native is None:
        return _plain_py
    native.set_plain_fallback(_plain_py)  # for mappings other than an exact dict
    return native.plain_attributes


#: Whether a span's attributes need none of the SDK's checks (str keys, str/int/float/bool values).
plain_attributes = _load_plain()


class LeanAttributes(BoundedAttributes):
    """A lean span's attributes: the SDK's BoundedAttributes with its 6 fields in ``__slots__``,
    which the C start, end and encoder read and write at their offsets (otel_uwsgi/native/_slots.c).
    Built without ``__init__`` by the lean start, as ``BoundedAttributes(max, None, immutable=False)``."""

    __slots__ = ("_dict", "maxlen", "dropped", "max_value_len", "_lock", "_immutable")


BOUNDED_ATTRIBUTE_TYPES.add(LeanAttributes)


class LeanSpan(SdkSpan):
    """An SDK span built without re-checking what the fast path already checked.

    Fields a new span shares with every other span of its tracer (resource, scope, sampler,
    processor, limits) are attributes of the tracer's own subclass, and those that stay at their
    initial value until user code changes them (status, events, links, options) are class
    attributes here: a change is an instance attribute, as on any object.  A span is made with the
    8 fields that differ per span, kept in ``__slots__``: the C start, end and journal record read
    and write them at their offsets (otel_uwsgi/native/_slots.c), not through getattr.
    """

    __slots__ = ("_name", "_context", "_kind", "_parent", "_lock", "_attributes", "_start_time", "_end_time")
    _end_time: Optional[int]
    _status = _UNSET
    _trace_config = None
    _record_exception = True
    _set_status_on_exception = True
    _events: Any = ()
    _links: Any = ()
    _record_end_metrics: Callable[[], None] = staticmethod(_noop)  # the SDK's, when span metrics are off
    _hooks: Hooks

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

    def _update_name_py(self, name: str) -> None:
        """The SDK's ``update_name`` (its ended-span check and warning) in one call, not two."""
        with self._lock:
            if self._end_time is None:
                self._name = name
                return
        _sdk_logger.warning("Tried calling %s on an ended span.", "update_name")

    #: ``update_name``: the C twin of :meth:`_update_name_py` where built (an ended span and a held
    #: lock go to that), else that.
    update_name = (
        _update_name_py if _NATIVE is None or not hasattr(_NATIVE, "lean_update_name")
        else _NATIVE.as_method(_NATIVE.lean_update_name)
    )  # fmt: skip

    def _set_checked_py(self, attributes: dict[str, Any]) -> None:
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
                and plain_attributes(attributes)
            ):
                current.update(attributes)
                return
        self.set_attributes(attributes)

    #: ``set_checked_attributes``: the C twin of :meth:`_set_checked_py` where built (it hands
    #: over what is not one plain dict update: a held lock, an ended span, a key already set, a
    #: full span, a value to check), else that.
    set_checked_attributes = (
        _set_checked_py if _NATIVE is None or not hasattr(_NATIVE, "lean_set_checked")
        else _NATIVE.as_method(_NATIVE.lean_set_checked)
    )  # fmt: skip

    def _end_py(self, end_time: Optional[int] = None) -> None:
        """``Span.end`` of the SDK, with the processors called through :class:`Hooks`."""
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

    #: ``end``: the C twin of :meth:`_end_py` where built (it hands the calls it does not take to
    #: :meth:`_end_py`: a span already ended, or whose lock another thread holds), else that.
    end = _end_py if _NATIVE is None else _NATIVE.as_method(_NATIVE.lean_end)


if _NATIVE is not None and hasattr(_NATIVE, "configure_slots"):
    _NATIVE.configure_slots(LeanSpan, LeanAttributes)  # refused slots: getattr, the same values


def _does_nothing(method: Any) -> bool:
    """Whether a processor method's body is only ``pass`` or a docstring (the SDK's on_start and
    _on_ending of most processors): such calls are skipped.  Anything else is called."""
    code = getattr(getattr(method, "__func__", None), "__code__", None)
    if code is None:
        return False
    ops = [(i.opname, i.argval) for i in dis.get_instructions(code) if i.opname not in ("RESUME", "NOP", "CACHE")]
    return ops in ([("LOAD_CONST", None), ("RETURN_VALUE", None)], [("RETURN_CONST", None)])


class Hooks:
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
