"""The SDK's batch span processor and exporter, wrapped to feed the :class:`~.ledger.Ledger`.

Every span a worker ends goes through here: counted when queued, counted again when the
exporter answers, and when a full queue pushes the oldest out, counted as dropped without the
SDK's one-warning-per-span flood (muted here, reported rate-limited by the ledger).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any, Optional

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import TraceFlags

from otel_uwsgi.traces.ledger import Ledger

logger = logging.getLogger(__name__)


class CountingExporter(SpanExporter):
    """Wraps the real exporter: a batch is counted exported on SUCCESS, dropped otherwise."""

    def __init__(self, inner: SpanExporter, ledger: Ledger) -> None:
        self.inner, self.ledger = inner, ledger

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.ledger.handed(len(spans))
        try:
            result = self.inner.export(spans)
        except Exception as error:
            # a network error is the collector's (older exporters raise it); anything else is ours
            self.ledger.failed(len(spans), None if isinstance(error, OSError) else error)
            raise
        if result is SpanExportResult.SUCCESS:
            self.ledger.exported(len(spans))
        else:
            self.ledger.failed(len(spans))
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class CountingBatchSpanProcessor(BatchSpanProcessor):
    """The SDK's BatchSpanProcessor, counting each span that a full queue pushes out."""

    def __init__(self, exporter: SpanExporter, ledger: Ledger, **kwargs: Any) -> None:
        super().__init__(CountingExporter(exporter, ledger), **kwargs)
        self.ledger = ledger
        # The SDK keeps its queue on an internal object; without it queue-full drops read as
        # pending (a smaller truth, never a crash).
        self._inner = getattr(self, "_batch_processor", None)
        queue = getattr(self._inner, "_queue", None)
        if getattr(queue, "maxlen", None) is None:  # not the bounded deque this was written for
            queue = None
        self._queue: Optional[Any] = queue
        if queue is not None:
            ledger.queue_len = queue.__len__
        else:
            logger.info(
                "otel-uwsgi: this opentelemetry-sdk keeps its batch queue where otel-uwsgi does not look: "
                "spans a full queue drops are not counted as such (the SDK logs them); they read as "
                "pending until the exit"
            )
        self._emit: Optional[Callable[[ReadableSpan], None]] = getattr(self._inner, "emit", None)
        self._count_ended = ledger._ended.__next__  # Ledger.ended() without its Python frame
        # The SDK's own processor metrics (OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED) count the drops
        # its emit() makes; the drops made here are reported to them the same way.
        self._sdk_drop: Optional[Callable[..., None]] = getattr(
            getattr(self._inner, "_metrics", None), "drop_items", None
        )
        # The SDK's emit() re-checks what on_end has checked (shutdown, a full queue) and the pid,
        # which its own fork handler already covers (os.register_at_fork re-initialises the
        # queue's processor in a child).  With the parts it uses present, on_end appends itself.
        self._append = queue is not None and all(
            hasattr(self._inner, name) for name in ("_max_export_batch_size", "_worker_awaken")
        )

    @property
    def counts_queue_full(self) -> bool:
        """Whether spans a full queue pushes out are counted (the SDK's queue was found)."""
        return self._queue is not None

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None or not context.trace_flags & TraceFlags.SAMPLED:
            return  # unsampled: the SDK's on_end drops it as well
        inner = self._inner
        if getattr(inner, "_shutdown", False):
            self.ledger.exit_timeout(1)  # ended after the exit flush began: the SDK drops it
            if self._sdk_drop is not None:
                self._sdk_drop(1, "already_shutdown")
            return
        self._count_ended()
        queue = self._queue
        if queue is not None and len(queue) >= queue.maxlen:  # maxlen is max_queue_size
            # Drop the oldest span ourselves, as the SDK would, but before it sees a full
            # queue: its per-span warning builds a LogRecord (~10 µs) in the request thread
            # for every span while the collector is down, even when filtered out.
            with contextlib.suppress(IndexError):  # the export thread just took a batch
                queue.pop()
            if self._sdk_drop is not None:
                self._sdk_drop(1)
            self.ledger.warn("queue_full")
        if self._append:  # what the SDK's emit() does with a span once it is past its checks
            queue.appendleft(span)  # type: ignore[union-attr]
            if len(queue) >= inner._max_export_batch_size:  # type: ignore[arg-type]
                awaken = inner._worker_awaken  # replaced in a forked child: read each time
                if not awaken.is_set():
                    awaken.set()
        elif self._emit is not None:
            self._emit(span)  # what the SDK's on_end does once it has checked the sampled flag
        else:
            super().on_end(span)


class _QueueFullFilter(logging.Filter):
    """Mute the SDK's one-line-per-span "Queue full" warning: the ledger reports it, rate-limited."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Queue full")


def mute_sdk_queue_full_warning() -> None:
    """Where the ledger counts queue-full drops (it found the SDK's queue), the SDK's per-span line
    is muted; call it only then."""
    for name in ("opentelemetry.sdk._shared_internal", "opentelemetry.sdk.trace.export"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _QueueFullFilter) for f in log.filters):
            log.addFilter(_QueueFullFilter())
