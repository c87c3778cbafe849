"""The bounded flush of a tracer provider at exit, and the summary of what it could not deliver."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Optional

from opentelemetry.sdk.trace import TracerProvider

from otel_uwsgi.traces.ledger import Ledger

logger = logging.getLogger(__name__)


def _bounded(call: Callable[[], object], timeout_s: float, *, name: str, error: str) -> bool:
    """Run ``call`` in a daemon helper thread and wait for it at most ``timeout_s`` (the SDK's
    ``force_flush`` and ``shutdown`` ignore their timeouts, and one export to a dead collector can
    block for the exporter timeout).  True when it finished in time; an exception is logged."""
    done = threading.Event()

    def work() -> None:
        try:
            call()
        except Exception:  # noqa: BLE001 - a flush problem never reaches the caller (nor uWSGI's exit path)
            logger.exception(error)
        finally:
            done.set()

    threading.Thread(target=work, name=name, daemon=True).start()
    return done.wait(timeout_s)


def flush_bounded(provider: TracerProvider, timeout_s: float) -> bool:
    """Export what is queued now, waiting at most ``timeout_s``.  True when done in time."""
    error = "otel-uwsgi: error while flushing spans"
    return _bounded(provider.force_flush, timeout_s, name="otel-uwsgi-flush", error=error)


def shutdown_bounded(
    provider: TracerProvider, timeout_s: float, ledger: Optional[Ledger] = None, *, journal: bool = False
) -> bool:
    """Export what is queued and shut down, giving up after ``timeout_s`` seconds.

    The SDK's ``force_flush`` ignores its timeout and one export to a dead collector can block
    for the exporter timeout, so the work runs in a helper thread that is joined with a deadline.
    Spans still queued when the deadline passes are counted as dropped in ``ledger`` (``journal``:
    they stay in the span journal, shipped by the next start, and the log line says so).  Returns
    True when everything finished in time.  Safe to call from a signal handler's exit path: it
    takes no lock of its own.
    """
    started = time.monotonic()
    pending_before = ledger.unfinished() if ledger else 0
    error = "otel-uwsgi: error while flushing spans at exit"
    finished = _bounded(provider.shutdown, timeout_s, name="otel-uwsgi-exit-flush", error=error)
    elapsed_ms = (time.monotonic() - started) * 1000
    pid = os.getpid()
    if not finished:
        lost = ledger.give_up() if ledger else 0
        logger.warning(
            "otel-uwsgi: pid %d gave up flushing spans after %.1f s (collector slow or unreachable); "
            "%d span(s) still queued %s (raise otel-exit-flush-timeout to wait longer)",
            pid,
            elapsed_ms / 1000,
            lost,
            "stay in its span journal: whoever outlives it ships them" if journal else "were dropped",
        )
    else:
        logger.debug("otel-uwsgi: pid %d flushed %d spans in %.1f ms", pid, pending_before, elapsed_ms)
    if ledger:
        counts = ledger.counts()
        if counts.dropped:
            logger.warning(
                "otel-uwsgi: pid %d exiting: %d of %d span(s) were not delivered (queue full: %d, "
                "export failed: %d, still queued at exit: %d)",
                pid,
                counts.dropped,
                counts.ended,
                counts.queue_full,
                counts.export_failed,
                counts.exit_timeout,
            )
    return finished
