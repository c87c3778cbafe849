"""The bounded flush at a process's graceful exit.

uWSGI calls ``uwsgi.atexit`` only for an idle worker; a worker that ends otherwise needs no flush
since its spans are in its span journal.  uWSGI's stop signals are kept away from otel-uwsgi's
threads, so only the main thread, whose handlers uWSGI installed, takes them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator

from otel_uwsgi.export import otlp
from otel_uwsgi.runtime import uwsgi_api
from otel_uwsgi.runtime.state import state

logger = logging.getLogger(__name__)

#: uWSGI's stop and reload signals.  A signal sent to a process goes to any thread that does not
#: block it: a second one (Ctrl-C reaches master and workers, systemd signals the whole cgroup, a
#: worker still loading re-sends SIGINT) landed in an export thread, whose exit() then ended the
#: process in the middle of the main thread's flush, or deadlocked it until worker-reload-mercy.
EXIT_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT})
#: The exit flush's bound when the collector failed the last export (Ledger.collector_down).
DOWN_FLUSH_MS = 500


@contextlib.contextmanager
def exit_signals_blocked() -> Iterator[None]:
    """Threads started inside inherit a mask without uWSGI's stop signals: only the main thread,
    whose handlers uWSGI installed, takes them."""
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, EXIT_SIGNALS)
    except (AttributeError, OSError, ValueError):  # no pthread_sigmask on this platform
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def flush_at_exit() -> None:
    """Flush and shut down this process's provider once, within ``otel-exit-flush-timeout``.

    Never raises: it runs from exit hooks (C, ``uwsgi.atexit``, Python ``atexit``)."""
    try:
        _flush_once()
    except BaseException:  # noqa: BLE001 - nothing may escape into an exit hook
        with contextlib.suppress(BaseException):  # logging itself may be half torn down at exit
            logger.exception("otel-uwsgi: error in the exit flush of pid %d", os.getpid())


_flushing = threading.Lock()


def _flush_once() -> None:
    with _flushing:
        if state.provider is None or state.pid != os.getpid() or state.flushed or state.settings is None:
            return
        state.flushed = True
        if uwsgi_api.available():
            # A second stop signal must not start a nested exit() on top of this flush (it would
            # lose nothing, the journal keeps the spans, but cut the flush short).
            with contextlib.suppress(AttributeError, OSError, ValueError):
                signal.pthread_sigmask(signal.SIG_BLOCK, EXIT_SIGNALS)
        _flush()


def _flush() -> None:
    from otel_uwsgi.traces.flush import shutdown_bounded

    timeout_ms = state.settings["otel-exit-flush-timeout"]
    if state.ledger is not None and state.ledger.collector_down() and timeout_ms > DOWN_FLUSH_MS:
        # The last export failed and none succeeded since: one short attempt, not the whole wait
        # (a hanging collector answers nothing, so it is not "down": the flush timeout bounds it).
        logger.info(
            "otel-uwsgi: pid %d: the collector failed the last export and none succeeded since; the exit "
            "flush makes one short attempt (%d ms) instead of waiting otel-exit-flush-timeout",
            os.getpid(),
            DOWN_FLUSH_MS,
        )
        timeout_ms = DOWN_FLUSH_MS
    # A batch that fails now is not retried, whatever its signal: its first answer (refused, 5xx,
    # 429) is the outcome, and backoff would only hold the stop until the flush timeout.
    otlp.stop_retrying_all()
    deadline = time.monotonic() + timeout_ms / 1000.0  # one deadline for traces, metrics and logs
    others = state.others.begin_shutdown() if state.others is not None else None
    shutdown_bounded(state.provider, timeout_ms / 1000.0, state.ledger, journal=state.journal is not None)
    if others is not None:
        others.wait(deadline)


def register_exit() -> None:
    """Flush at this process's exit: through ``uwsgi.atexit`` in uWSGI (an idle worker's graceful
    exit), Python's ``atexit`` elsewhere.

    A worker that dies any other way (brutal stop while busy, harakiri, SIGKILL, a crash) runs no
    hook and needs none: its ended spans are already in its span journal, which whoever outlives
    it ships (:mod:`otel_uwsgi.traces.journal`, :mod:`.master_exit`).
    """
    if not uwsgi_api.available():
        import atexit

        atexit.register(flush_at_exit)
        return
    uwsgi_api.register_atexit(flush_at_exit)
