"""The bounded flush at exit, and the hooks that make sure it runs however a worker ends.

uWSGI calls ``uwsgi.atexit`` and Python's ``atexit`` only for an idle worker: a worker stopped
while busy (``die-on-term`` under load) skips both, so the flush is also hooked as a C exit
handler; in a worker the stop guard (:mod:`.stop_guard`) runs it on its own thread first.
uWSGI's stop signals are kept away from otel-uwsgi's threads and masked in uWSGI's own stop
handlers while they run, so a second signal cannot start a nested ``exit()`` mid-flush.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from otel_uwsgi.config.settings import Settings
from otel_uwsgi.runtime import stop_guard, uwsgi_api
from otel_uwsgi.runtime.state import state

logger = logging.getLogger("otel_uwsgi")

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


#: Held for the whole flush: an exit hook that comes second (the stop thread's flush started
#: late, when the watchdog already let the main thread exit) waits for the first to finish
#: instead of returning into exit() mid-export.  Re-entrant: a nested call on the same thread
#: returns at once.
_flushing = threading.RLock()
#: How long that second hook waits.  Bounded: the first may be stuck on a lock the exiting thread
#: holds (a stop thread that never finished is why the watchdog let the main thread exit), and an
#: unbounded wait hung the worker until worker-reload-mercy (seen once with threads = 4).
SECOND_FLUSH_WAIT_S = 0.5


def _flush_once() -> None:
    if not _flushing.acquire(timeout=SECOND_FLUSH_WAIT_S):
        return
    try:
        _flush_locked()
    finally:
        _flushing.release()


def _flush_locked() -> None:
    if state.provider is None or state.pid != os.getpid() or state.flushed:
        return
    if uwsgi_api.available():
        # The process is ending: a further stop signal must not start a second exit() on top
        # of this flush (the flush thread inherits the mask).  Blocked before ``flushed`` is set,
        # so a signal that slips in first runs the whole flush itself.  SIGKILL still ends it.
        with contextlib.suppress(AttributeError, OSError, ValueError):
            signal.pthread_sigmask(signal.SIG_BLOCK, EXIT_SIGNALS)
    state.flushed = True
    from otel_uwsgi.traces.flush import shutdown_bounded

    timeout_ms = state.settings["otel-exit-flush-timeout"] if state.settings else 5000
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
    if state.ledger is not None:
        # A batch that fails now is not retried: its first answer (refused, 5xx, 429) is the
        # outcome, and backoff would only hold the stop until the flush timeout.
        state.ledger.stop_retrying()
    deadline = time.monotonic() + timeout_ms / 1000.0  # one deadline for traces, metrics and logs
    others = state.others.begin_shutdown() if state.others is not None else None
    shutdown_bounded(state.provider, timeout_ms / 1000.0, state.ledger)
    if others is not None:
        others.wait(deadline)


def register_exit(settings: Settings, *, c_exit_handler: bool = True) -> None:
    """Hook process exit where uWSGI cannot skip it.

    ``uwsgi.atexit`` and Python's ``atexit`` are skipped when a worker is stopped while busy (a
    shutdown under load with ``die-on-term``), losing the queue silently.  A C exit handler
    (glibc ``on_exit``) runs in every ``exit()``, and before uWSGI's own exit handler finalises
    Python, since handlers run in reverse order of registration.  ``uwsgi.atexit`` (and Python's
    ``atexit`` outside uWSGI) stay as fallbacks where ``on_exit`` is missing (musl).
    """
    if not uwsgi_api.available():
        # A plain Python process finalises the interpreter *before* C exit handlers run: a
        # ctypes callback there would crash.  Python's atexit is the right hook outside uWSGI.
        import atexit

        atexit.register(flush_at_exit)
        return
    if c_exit_handler:
        _register_c_exit_handler()
    if state.provider is not None:
        state.provider.add_span_processor(_at_first_request(register_exit_handler=not c_exit_handler))
    uwsgi_api.register_atexit(flush_at_exit)


def _register_c_exit_handler() -> None:
    if state.exit_callback is not None:
        return
    if stop_guard.register_exit(flush_at_exit):
        # C: after the stop thread's flush, exit() runs no Python at all.
        state.exit_callback = stop_guard
        return
    try:
        callback = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p)(_c_exit_handler)
        ctypes.CDLL(None).on_exit(callback, None)
        state.exit_callback = callback
    except (AttributeError, OSError):
        logger.debug("otel-uwsgi: no on_exit in this libc; relying on atexit hooks")


def _at_first_request(*, register_exit_handler: bool) -> Any:
    """A span processor that finishes the exit set-up when the first server span starts.

    uWSGI installs a worker's signal handlers, and with ``lazy-apps`` its own exit handler (which
    finalises Python), only after our post-fork set-up; a server span starts inside a request,
    after both.  Then: register the C exit handler (``lazy-apps``: registered at import, ours
    would run after uWSGI's and crash; without one a busy worker lost its queue), make uWSGI's
    stop handlers block the other stop signals while they run, and put the stop guard
    (:mod:`.stop_guard`) in front of them.
    """
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.trace import SpanKind

    class AtFirstRequest(SpanProcessor):
        pending = True

        def on_start(self, span: Any, parent_context: Any = None) -> None:
            if self.pending and span.kind is SpanKind.SERVER:
                self.pending = False
                if register_exit_handler:
                    _register_c_exit_handler()
                _mask_stop_signals_in_handlers()
                stop_guard.guard()
                _remove_processor(self)

    return AtFirstRequest()


def _remove_processor(processor: Any) -> None:
    """Take a processor whose work is done out of the provider's chain (it would be called
    three times per span for nothing); left in place if the SDK's chain is not as expected."""
    chain = getattr(state.provider, "_active_span_processor", None)
    lock = getattr(chain, "_lock", None)
    if lock is None or not isinstance(getattr(chain, "_span_processors", None), tuple):
        return
    with lock:
        chain._span_processors = tuple(p for p in chain._span_processors if p is not processor)


class _Sigaction(ctypes.Structure):
    """glibc's ``struct sigaction`` on Linux x86_64 and aarch64."""

    _fields_ = [
        ("handler", ctypes.c_void_p),
        ("mask", ctypes.c_ulong * (128 // ctypes.sizeof(ctypes.c_ulong))),
        ("flags", ctypes.c_int),
        ("restorer", ctypes.c_void_p),
    ]


def _mask_stop_signals_in_handlers() -> None:
    """Add the stop signals to the mask of uWSGI's SIGINT / SIGTERM / SIGHUP handlers.

    Those handlers call exit(), so the flush runs inside them.  A second, different stop signal
    (systemd's SIGTERM to the whole cgroup plus the master's SIGINT) arriving before the flush
    blocks it started a nested exit() that ended the process mid-flush.  Masked, it waits.
    """
    import platform

    if not sys.platform.startswith("linux") or platform.machine() not in ("x86_64", "aarch64"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            action = _Sigaction()
            if libc.sigaction(int(signum), None, ctypes.byref(action)) != 0:
                continue
            if action.handler in (None, 0, 1):  # SIG_DFL / SIG_IGN: not a uWSGI handler
                continue
            for other in EXIT_SIGNALS:
                libc.sigaddset(ctypes.byref(action.mask), int(other))
            libc.sigaction(int(signum), ctypes.byref(action), None)
    except (AttributeError, OSError, ValueError):
        logger.debug("otel-uwsgi: could not adjust the signal masks of uWSGI's handlers")


def _c_exit_handler(status: int, arg: Any) -> None:
    flush_at_exit()
