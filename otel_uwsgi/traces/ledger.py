"""Counting what happens to every ended span: exported, or dropped and why (the ledger itself;
the processor that feeds it is :mod:`otel_uwsgi.traces.processor`).

The SDK drops spans in three places without telling the user how many: the batch queue is full
(one log line *per span*, a flood at saturation), the exporter gave up (collector down, 4xx/5xx
after retries), or the process exited with spans still queued.  This module counts each case per
process, replaces the per-span flood with one rate-limited warning that carries the numbers, and
lets the user read the counts (:func:`otel_uwsgi.delivery_counts`, the exit summary line).
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

logger = logging.getLogger(__name__)

#: At most one "spans dropped" warning per process per this many seconds (the first one at once).
WARNING_INTERVAL_S = 60.0


@dataclass(frozen=True)
class Counts:
    """Spans handed to the batch processor in this process, and what became of them."""

    ended: int
    exported: int
    queue_full: int
    export_failed: int
    exit_timeout: int

    @property
    def dropped(self) -> int:
        return self.queue_full + self.export_failed + self.exit_timeout

    @property
    def pending(self) -> int:
        """Ended spans neither exported nor dropped yet: queued or in an export in flight."""
        return max(0, self.ended - self.exported - self.queue_full - self.export_failed - self.exit_timeout)

    def as_dict(self) -> dict[str, int]:
        return {
            "ended": self.ended,
            "exported": self.exported,
            "dropped": self.dropped,
            "queue_full": self.queue_full,
            "export_failed": self.export_failed,
            "exit_timeout": self.exit_timeout,
            "pending": self.pending,
        }


def _value(counter: itertools.count[int]) -> int:
    """Read an ``itertools.count`` without advancing it, from its ``repr`` (``count(N)``, the next
    value): its pickle support (``__reduce__``) is deprecated since Python 3.12 and gone in 3.14."""
    return int(repr(counter)[6:-1])


class Ledger:
    """Per-process counters.

    Counted directly: spans ``ended`` into the queue (every span, so an ``itertools.count``:
    atomic under the GIL, ~50 ns), spans ``handed`` to the exporter, and the exporter's answers.
    Spans a full queue pushed out are *derived*: ``ended - handed - still queued``; predicting
    the eviction in ``on_end`` races with the export thread taking a batch.  A snapshot taken
    while the export thread is between popping a batch and handing it over reads up to one batch
    high for that moment; once the process is quiet it is exact.  At an exit that gives up
    (:meth:`give_up`), a batch in flight is counted as dropped though a slow collector may still
    store it: the count can overstate the loss by one batch, never understate it.  The books close
    then: the export thread's later answer for that batch does not count it a second time.
    """

    def __init__(self, interval_s: float = WARNING_INTERVAL_S) -> None:
        self.pid = os.getpid()
        self._ended = itertools.count()
        self._lock = threading.Lock()
        self._handed = 0
        self._exported = 0
        self._failed = 0
        self._exit_timeout = 0
        self._closed_queue: Optional[int] = None  # the queue length when the books closed
        self._interval = interval_s
        self._last_warning = -float("inf")
        self._reported = 0  # drops already announced in a warning
        self._errors_seen: set[type] = set()  # exception types the exporter raised, each logged once
        self._failing = False  # the last export failed, and none succeeded since
        #: Length of the processor's queue, set by the processor that owns the queue when it finds
        #: it.  Unknown (an SDK that keeps it elsewhere), spans a full queue drops cannot be told
        #: from queued ones: they are not invented as drops but read as pending until the exit.
        self.queue_len: Optional[Callable[[], int]] = None

    def ended(self) -> None:
        """Count one span (``next`` on the counter: callers in the span's path bind it directly)."""
        next(self._ended)

    def handed(self, n: int) -> None:
        with self._lock:
            if self._closed_queue is None:
                self._handed += n

    def exported(self, n: int) -> None:
        with self._lock:
            self._failing = False
            if self._closed_queue is None:
                self._exported += n

    def failed(self, n: int, error: Optional[BaseException] = None) -> None:
        """``n`` spans the exporter did not deliver: the collector's answer, or ``error``, an
        exception the exporter raised (a fault on this side, said once per kind of error)."""
        with self._lock:
            self._failing = True
            if self._closed_queue is not None:
                return
            self._failed += n
        if error is not None and type(error) not in self._errors_seen:
            self._errors_seen.add(type(error))
            logger.error(
                "otel-uwsgi: pid %d: the span exporter raised %s: %s; this is not the collector's answer "
                "but a fault in otel-uwsgi or a library it uses (Python %s): please report it",
                self.pid,
                type(error).__name__,
                error,
                ".".join(map(str, sys.version_info[:3])),
            )
        self.warn("export_error" if error is not None else "export_failed")

    def exit_timeout(self, n: int) -> None:
        """Spans ended after the exit flush began (the SDK drops them)."""
        self._exit_timeout += n  # exit path: it must not wait on a lock
        if n:
            self.warn("exit_timeout")

    def collector_down(self) -> bool:
        """Whether the last export failed (after the exporter's own retries: the collector refused,
        answered 5xx/429 or 4xx, or could not be reached) and none succeeded since: then waiting
        at exit only delays the stop, and its outcome is known."""
        return self._failing

    def give_up(self) -> int:
        """The exit flush ran out of time: count what is queued or in flight as dropped, and close
        the books on one snapshot.  Returns that number.

        The export thread may still be in an export; its answer for spans counted here must not
        count them again (as export failed, or exported), which made the books show more spans
        dropped than ended.  The lock is taken with a short timeout: the exit path must not hang
        on a thread that a signal interrupted while it held it.
        """
        locked = self._lock.acquire(timeout=0.2)
        try:
            queued = self._queued()
            lost = max(0, queued + self._handed - self._exported - self._failed)
            self._closed_queue = queued
            self._exit_timeout += lost
        finally:
            if locked:
                self._lock.release()
        if lost:
            self.warn("exit_timeout")
        return lost

    def warn(self, reason: str) -> None:
        """Log the drop numbers, at most once per interval (the first time at once)."""
        now = time.monotonic()
        if now - self._last_warning < self._interval:
            return
        self._last_warning = now
        counts = self.counts()
        fresh, self._reported = counts.dropped - self._reported, counts.dropped
        logger.warning(
            "otel-uwsgi: pid %d dropped %d span(s) since the last report, %d in all "
            "(queue full: %d, export failed: %d, still queued at exit: %d). %s",
            self.pid,
            fresh,
            counts.dropped,
            counts.queue_full,
            counts.export_failed,
            counts.exit_timeout,
            _advice(reason),
        )

    def counts(self) -> Counts:
        """A snapshot, read without the lock: the exit path may run on a thread that a signal
        interrupted while it held the lock, and must not deadlock there."""
        ended = _value(self._ended)
        queued = self._queued(ended) if self._closed_queue is None else self._closed_queue
        handed = self._handed
        exported, failed = self._exported, self._failed
        return Counts(
            ended=ended,
            exported=exported,
            queue_full=max(0, ended - handed - queued),
            export_failed=failed,
            exit_timeout=self._exit_timeout,
        )

    def unfinished(self) -> int:
        """Spans queued or handed to an export that has not answered yet."""
        if self._closed_queue is not None:
            return 0
        return max(0, self._queued() + self._handed - self._exported - self._failed)

    def _queued(self, ended: Optional[int] = None) -> int:
        """Spans in the processor's queue; where the queue is unknown, every span not yet handed to
        the exporter (queued, or dropped by the SDK's full queue: at exit both are lost)."""
        if self.queue_len is not None:
            return self.queue_len()
        return max(0, (_value(self._ended) if ended is None else ended) - self._handed)


def _advice(reason: str) -> str:
    if reason == "queue_full":
        return (
            "The batch queue was full: the collector is slower than the traffic; raise "
            "otel-bsp-max-queue-size or lower otel-bsp-schedule-delay."
        )
    if reason == "export_failed":
        return "The collector refused or did not answer; check otel-exporter-otlp-endpoint and the collector."
    if reason == "export_error":
        return "The exporter raised an exception (logged once above): not the collector's answer."
    return "The exit flush ran out of time; raise otel-exit-flush-timeout or check the collector."
