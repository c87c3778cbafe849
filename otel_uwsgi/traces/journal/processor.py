"""The span processor that writes each ended span into this process's journal, and the thread
that ships it, adopts the journals of dead processes and keeps the in-flight slots current.

The request thread encodes the span it ends (the work the export thread did before, so the
instructions per request hardly change) and appends it to the mapped file under a lock; from
that moment the span survives any death of the process.  A server span also takes an in-flight
slot when it starts and frees it when it ends.  The shipping thread wakes every
:data:`TICK_S` while requests are in flight: it stamps the journal's heartbeat, refreshes the slots
of requests running longer than :data:`REFRESH_AFTER_S` (name, attributes, the request thread's
Python stack: what the ERROR span will say if the process dies now).  It ships when the batch
delay passed or a batch is full, and every :data:`ADOPT_EVERY_S` ships the journals of dead
processes of its instance.  With nothing in flight it sleeps until the next of those is due, at
most :data:`IDLE_SLEEP_S` (:func:`sleep_for`); a wake-up is a lock's timed acquire, and the look for
dead journals a ``listdir`` and a ``kill(pid, 0)`` per other journal (:func:`directory.owner_exists`).
"""

from __future__ import annotations

import logging
import operator
import struct
import sys
import threading
import time
from typing import Any, Optional

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import SpanKind, TraceFlags

from otel_uwsgi.export import encoder
from otel_uwsgi.export.encoder import span_field
from otel_uwsgi.export.protobuf import attributes as encode_attributes
from otel_uwsgi.native import accel
from otel_uwsgi.native.sdk_layout import CONTEXT_AS_TUPLE, LEAN_SPAN_CLASSES
from otel_uwsgi.traces.journal import adopt, directory, ship
from otel_uwsgi.traces.journal.inflight import FIXED, Request, stack_text, tail
from otel_uwsgi.traces.journal.region import EXIT_FLUSHING, HEADER_SIZE, SLOT_SIZE, SLOT_START, Region
from otel_uwsgi.traces.ledger import Ledger

logger = logging.getLogger(__name__)

_SERVER = SpanKind.SERVER
_SAMPLED = int(TraceFlags.SAMPLED)
_OTLP_SERVER = 2
_U64 = (1 << 64) - 1
scope_prefix = ship.scope_prefix
_FIXED_PACK = FIXED.pack
_get_ident = threading.get_ident
_modules = sys.modules


_id_and_flags = operator.itemgetter(1, 3) if CONTEXT_AS_TUPLE else lambda c: (c.span_id, c.trace_flags)
_U32_PACK_INTO = struct.Struct("<I").pack_into
_NATIVE = accel.load()
if _NATIVE is not None and not hasattr(_NATIVE, "journal_on_start"):  # an older build
    _NATIVE = None


def _ids(context: Any) -> tuple[Any, ...]:
    """(trace id, span id, is remote, trace flags, trace state, is valid) of a SpanContext."""
    return (
        context
        if CONTEXT_AS_TUPLE
        else (context.trace_id, context.span_id, context.is_remote, context.trace_flags, context.trace_state, True)
    )


TICK_S = 0.25
REFRESH_AFTER_S = 0.2
ADOPT_EVERY_S = 1.0
PREVIOUS_RUNS_EVERY_S = 60.0
#: The longest the shipping thread sleeps with no request in flight: a request that starts during
#: such a sleep gets its first slot refresh (name, attributes, stack) by REFRESH_AFTER_S + TICK_S
#: of its age, as when the thread ticked every TICK_S (tests/faults/test_worker_death.py kills an
#: idle gevent worker's request 0.6 s in and finds its stack).  Until then it is covered all the
#: same: ``on_start`` wrote its slot, so a death at any moment finds it, and ``inflight.death_of``
#: dates a death before its first heartbeat at ``max(heartbeat, start)``, its start.
IDLE_SLEEP_S = REFRESH_AFTER_S + TICK_S


def sleep_for(now: float, inflight: bool, pending: bool, next_ship: float, next_adopt: float) -> float:
    """Seconds the shipping thread may sleep: until the next thing due (the ship deadline only while
    records wait for it; the next adoption), at most TICK_S while requests are in flight (their
    heartbeat and slot refreshes), else at most IDLE_SLEEP_S.  A flush, a full batch and a stop do
    not wait for it: they wake the thread (``_wake_shipper``).  (Called at every wake-up: plain
    comparisons, no ``min``/``max``.)"""
    due = next_ship if pending and next_ship < next_adopt else next_adopt
    cap = TICK_S if inflight else IDLE_SLEEP_S
    left = due - now
    return cap if left > cap else left if left > 0.0 else 0.0


class JournalSpanProcessor(SpanProcessor):
    """Ended spans into the journal at once; shipped from there by one thread."""

    is_span_journal = True

    def __init__(
        self,
        region: Region,
        instance: directory.Instance,
        exporter: Any,
        ledger: Ledger,
        *,
        schedule_delay_millis: int,
        max_export_batch_size: int,
        max_queue_size: int = 2048,
    ) -> None:
        self.region, self.instance, self.exporter, self.ledger = region, instance, exporter, ledger
        self._delay_s = schedule_delay_millis / 1000.0
        self._batch = max(1, max_export_batch_size)
        self._max_queue = max(1, max_queue_size)
        self._lock = threading.Lock()  # the request threads' appends and slot choices
        self._ship_lock = threading.Lock()  # one shipper of this journal at a time
        self._append = region.append_fields
        self._mm = region.mm
        self._slot_at = [HEADER_SIZE + i * SLOT_SIZE for i in range(region.slot_count)]
        self._count_ended = ledger._ended.__next__  # Ledger.ended() without its Python frame
        self._appended = 0
        self._handed = 0
        ledger.queue_len = lambda: self._appended - self._handed
        self._free = list(range(region.slot_count - 1, -1, -1))
        self._tails: dict[tuple[int, str], tuple[Any, bytes]] = {}  # (id(scope), name) -> (scope, slot tail)
        # span id -> (slot, span, thread id, the request's greenlet under gevent or None)
        self._inflight: dict[int, tuple[int, Any, int, Any]] = {}
        self._refreshed: dict[int, float] = {}  # slot -> monotonic time of its last refresh
        # The shipping thread's wake-up flag, as a lock: released = set, and the thread's timed
        # acquire takes it back (clears it) as it wakes.  threading.Event.wait is Python code (a
        # Condition, a new waiter lock each time); a lock's acquire is one C call.
        self._wake = threading.Lock()
        self._wake.acquire()
        self._flushed = threading.Condition()
        self._flush_asked = 0
        self._flush_done = 0
        self._stopping = False
        self._thread: Optional[threading.Thread] = None
        self._native = self._native_state()

    # ------------------------------------------------------------------ the request threads

    def _on_start_py(self, span: Any, parent_context: Any = None) -> None:
        """``on_start``: a sampled server span takes an in-flight slot (what a death reports)."""
        if span._kind is not _SERVER:
            return
        try:
            index = self._free.pop()  # atomic under the GIL, as is the append that gives it back
        except IndexError:
            return  # more requests in flight than slots: this one is not covered
        try:
            scope, name = span._instrumentation_scope, span._name
            key = (id(scope), name)
            entry = self._tails.get(key)
            if entry is None or entry[0] is not scope:
                entry = self._tails[key] = (scope, tail(ship.scope_prefix(scope or None), name or ""))
                if len(self._tails) > 1024:
                    self._tails.clear()
            thread = _get_ident()
            span_id = None
            if SLOT_START is not None:
                span_id = SLOT_START(self._mm, self._slot_at[index], span, entry[1], thread, SLOT_SIZE)
            if span_id is None:
                span_id = self._put_slot(index, span, entry[1], thread)
            if span_id is None:  # not sampled: nothing to report
                self._free.append(index)
                return
            self._inflight[span_id] = (index, span, thread, _greenlet() if "greenlet" in _modules else None)
        except Exception:  # noqa: BLE001 - a span is never refused over its slot
            self._free.append(index)
            logger.debug("otel-uwsgi: could not register a request in flight", exc_info=True)

    def _put_slot(self, index: int, span: Any, tail_: bytes, thread: int) -> Optional[int]:
        """The Python twin of the C ``slot_start``: the slot of a sampled span; its span id, or None."""
        trace_id, span_id, _, flags, _, _ = _ids(span._context)
        if not flags & _SAMPLED:
            return None
        parent = span._parent
        parent_id, remote = (0, False) if parent is None else _ids(parent)[1:3]
        fixed = _FIXED_PACK(
            trace_id >> 64, trace_id & _U64, span_id, parent_id, bool(remote), _OTLP_SERVER, thread,
            span._start_time or 0, 0,
        )
        self.region.put_slot(index, fixed + tail_)
        return span_id

    def _on_end_py(self, span: ReadableSpan) -> None:
        """``on_end``: the span's slot freed; a sampled span written (:meth:`_write`)."""
        span_id, flags = _id_and_flags(span._context)
        if self._inflight:  # the SDK hands on_end a ReadableSpan copy: the slot is found by span id
            slot = self._inflight.pop(span_id, None)
            if slot is not None:
                _U32_PACK_INTO(self._mm, HEADER_SIZE + slot[0] * SLOT_SIZE, 0)  # Region.clear_slot
                self._free.append(slot[0])
        if flags & _SAMPLED:
            self._write(span, span_id)

    def _write(self, span: ReadableSpan, span_id: int) -> None:
        """A sampled span, counted, encoded and appended; or counted as dropped (queue or ring full)."""
        self._count_ended()
        try:
            scope, field = span_field(span)
            prefix = scope_prefix(scope)
        except Exception as error:  # noqa: BLE001 - an unencodable span is counted, never raised
            self.ledger.failed(1, error)
            field = None
        if field is not None:
            with self._lock:
                # otel-bsp-max-queue-size bounds the spans waiting, as the SDK's queue does
                written = self._appended - self._handed < self._max_queue and self._append(span_id, prefix, field)
                if written:
                    self._appended += 1
            if not written:
                self.region.count_drop()
                self.ledger.warn("queue_full")
            elif self._appended - self._handed >= self._batch:
                self._wake_shipper()

    def _wake_shipper(self) -> None:
        """End the shipping thread's sleep now (or its next one, if it is awake)."""
        wake = self._wake
        if wake.locked():
            try:
                wake.release()
            except (RuntimeError, ValueError):  # another waker came first (ValueError: gevent's lock)
                pass

    def _native_state(self) -> Optional[tuple[Any, ...]]:
        """What the C on_end reads (the order of ``JS_*`` in _lifecycle.c), or None without it."""
        if _NATIVE is None:
            return None
        region = self.region
        return (
            self._inflight, self._free, self._slot_at, self._mm, self._count_ended, self._lock, region,
            region.ring_layout(), ship.prefixes, self._max_queue, self._batch,
            encoder.native_span_field is not None, LEAN_SPAN_CLASSES, self._tails, _SERVER, sys.modules, SLOT_SIZE,
        )  # fmt: skip

    #: ``on_start``: the C twin of :meth:`_on_start_py` where built (it hands over the first span
    #: of each name, whose slot tail is made in Python, a span slot_start leaves to Python, and
    #: everything under gevent), else :meth:`_on_start_py`.
    on_start = _on_start_py if _NATIVE is None else _NATIVE.as_method(_NATIVE.journal_on_start)

    #: ``on_end``: the C twin of :meth:`_on_end_py` where built (it hands to :meth:`_write` what it
    #: does not write itself: a span the C encoder leaves to Python, a held lock, a full queue or
    #: ring), else :meth:`_on_end_py`.
    on_end = _on_end_py if _NATIVE is None else _NATIVE.as_method(_NATIVE.journal_on_end)
    _native: Optional[tuple[Any, ...]] = None

    # ------------------------------------------------------------------ the shipping thread

    def start(self) -> None:
        """Start the shipping thread (the caller blocks uWSGI's stop signals around it)."""
        self._thread = threading.Thread(target=self._run, name="otel-uwsgi-journal", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # Read at every wake-up, so bound once (``_inflight`` is never rebound: the C on_end holds it too).
        acquire, monotonic, inflight = self._wake.acquire, time.monotonic, self._inflight
        # Shipping more often than once a TICK_S gains nothing (and a zero delay must not spin).
        every = max(self._delay_s, TICK_S)
        started = monotonic()
        next_ship = started + every
        next_adopt = next_previous = started + TICK_S
        wait = TICK_S
        while True:
            acquire(True, wait)  # woken or timed out, the flag is clear again
            if self._stopping:
                break
            now = monotonic()
            try:
                if inflight:  # a death now would end these requests: date it
                    self.region.beat(time.time_ns())
                    self._refresh_slots(now)
                asked = self._flush_asked
                if now >= next_ship or asked != self._flush_done or self._appended - self._handed >= self._batch:
                    self.ship_own()
                    next_ship = now + every
                    self._flush_finished(asked)
                if now >= next_adopt:
                    previous = now >= next_previous
                    self._adopt(previous)
                    next_adopt = monotonic() + ADOPT_EVERY_S
                    if previous:
                        next_previous = now + PREVIOUS_RUNS_EVERY_S
            except Exception:  # noqa: BLE001 - the thread outlives any one problem
                logger.exception("otel-uwsgi: error in the span journal's shipping thread")
            wait = sleep_for(monotonic(), bool(inflight), self._appended != self._handed, next_ship, next_adopt)

    def ship_own(self, *, deadline: Optional[float] = None, ack_first: bool = False) -> bool:
        """Ship this process's unacknowledged records; False when the deadline came first."""
        wait = -1 if deadline is None else max(0.0, deadline - time.monotonic())
        if not self._ship_lock.acquire(timeout=wait):
            return False
        try:
            region, ledger = self.region, self.ledger
            tail, head = region.pending()
            while tail < head:
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                built = region.batch_body(tail, head, self._batch)
                if built is not None:
                    data, n, after = built
                    problem = None
                else:
                    records, after, problem = region.read(tail, head, self._batch, verify=False)
                    data = ship.body(region.resource, [payload for _, payload in records]) if records else b""
                    n = len(records)
                if n:
                    self._handed += n
                    ledger.handed(n)
                    if ack_first:
                        region.ack(after)
                    sent = ship.send(self.exporter, data, n)
                    region.ack(after)
                    if sent:
                        ledger.exported(n)
                    else:
                        ledger.failed(n)
                tail = after
                if problem is not None:  # not expected in our own journal: say so, go on after it
                    logger.warning("otel-uwsgi: skipping the rest of this process's journal: %s", problem)
                    region.ack(head)
                    break
            return True
        finally:
            self._ship_lock.release()

    def _adopt(self, previous_runs: bool) -> None:
        """Ship the instance's dead journals (and, with ``previous_runs``, the service's earlier runs').
        Once a second, the journals whose owner's pid exists are not even opened
        (:func:`directory.owner_exists`); the look with ``previous_runs``, once a minute, opens every
        one, so an owner whose pid an unrelated process took, or a dead owner nobody reaps, has its
        journal shipped within PREVIOUS_RUNS_EVERY_S all the same."""
        if previous_runs:
            adopt.ship_instance(
                self.instance, self.exporter, batch=self._batch, deadline=None, ack_first=False,
                skip=self.region.path,
            )
            return
        paths = self.instance.journals(skip_living=True)
        if paths:  # an owner died (or a journal's name carries no pid): its lock decides
            adopt.ship_dead_journals(
                paths, self.exporter, batch=self._batch, deadline=None, ack_first=False, skip=self.region.path
            )

    def _refresh_slots(self, now: float) -> None:
        """Rewrite the slots of requests running longer than REFRESH_AFTER_S as they are now."""
        if not self._inflight:
            return
        frames: Optional[dict[int, Any]] = None
        now_ns = time.time_ns()
        for key, (index, span, thread, greenlet) in list(self._inflight.items()):
            start = span._start_time or now_ns
            if now_ns - start < REFRESH_AFTER_S * 1e9 or now - self._refreshed.get(index, 0.0) < TICK_S * 0.9:
                continue
            if frames is None:
                frames = sys._current_frames()
            try:
                attributes = b"".join(encode_attributes([], b"\x4a", dict(span._attributes or {})))
            except RuntimeError:  # the request thread changed them meanwhile: next tick
                continue
            frame = getattr(greenlet, "gr_frame", None) if greenlet is not None else frames.get(thread)
            request = _request(span, thread, attributes, stack_text(frame), stack_ns=now_ns)
            if key in self._inflight:  # not ended meanwhile
                self.region.put_slot(index, request.pack())
                self._refreshed[index] = now

    # ------------------------------------------------------------------ SpanProcessor

    def _flush_finished(self, asked: int) -> None:
        with self._flushed:
            self._flush_done = asked
            self._flushed.notify_all()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        if self._thread is None or not self._thread.is_alive():
            return self.ship_own(deadline=time.monotonic() + timeout_millis / 1000.0)
        with self._flushed:
            self._flush_asked += 1
            asked = self._flush_asked
            self._wake_shipper()
            return self._flushed.wait_for(lambda: self._flush_done >= asked, timeout_millis / 1000.0)

    def shutdown(self) -> None:
        """Stop the thread and ship what is left, acknowledging each batch before it is sent (the
        caller bounds this; what a deadline leaves stays in the journal for whoever outlives us)."""
        self._stopping = True
        self._wake_shipper()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(TICK_S)
        # Marked while it runs: a flush the exit cuts short leaves the flag, and the master does not
        # spend a second flush timeout on the same collector (the next start ships the rest).
        self.region.set_flags(self.region.flags | EXIT_FLUSHING)
        if self.ship_own(ack_first=True):
            self.region.set_flags(self.region.flags & ~EXIT_FLUSHING)


def _greenlet() -> Any:
    """The request's greenlet under gevent's loop engine (its stack is the greenlet's frame, not
    a thread's), else None."""
    greenlet = sys.modules.get("greenlet")
    if greenlet is None:
        return None
    current = greenlet.getcurrent()
    return current if current.parent is not None else None  # the main greenlet is the thread itself


def _request(span: Any, thread: int, attributes: bytes, stack: str, *, stack_ns: int = 0) -> Request:
    context, parent = span._context, span._parent
    return Request(
        trace_id=context.trace_id.to_bytes(16, "big"),
        span_id=context.span_id,
        parent_span_id=parent.span_id if parent is not None else 0,
        parent_remote=bool(parent is not None and parent.is_remote),
        kind=span._kind.value + 1,  # OTLP numbers kinds one higher than the SDK
        thread=thread,
        start_ns=span._start_time or time.time_ns(),
        stack_ns=stack_ns,
        scope=ship.scope_prefix(span._instrumentation_scope or None),
        name=span._name or "",
        attributes=attributes,
        stack=stack,
    )
