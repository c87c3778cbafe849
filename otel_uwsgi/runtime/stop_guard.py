"""The stop guard: a worker stopped while busy (SIGINT, or SIGTERM with ``die-on-term``) flushes
its spans on a thread made ready for it at start, instead of inside uWSGI's signal handler.

uWSGI's ``end_me`` calls ``exit()`` on whatever the signal interrupted; a flush from there
crashed (``PyObject_GC_UnTrack``) or deadlocked on malloc until ``worker-reload-mercy``.  The C
part (``_stop.c``, which says how) makes the signal only wake the stop thread and park the main
thread at its next bytecode; after the flush, uWSGI's handler runs as before.  Without the C
extension, or outside a uWSGI worker, nothing here is used and the exit hooks of
:mod:`.exit_flush` flush as before.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import Any, Optional

from otel_uwsgi.compat import extensions

logger = logging.getLogger("otel_uwsgi")

#: The signal number Python's own machinery uses to run :func:`_park` on the main thread.  Nobody
#: sends it: the C handler trips it with ``PyErr_SetInterruptEx`` (a real-time signal, so it is
#: none that uWSGI or an app uses).
PARK_SIGNAL = signal.SIGRTMAX - 2 if hasattr(signal, "SIGRTMAX") else None

_module: Any = None
_thread: Optional[threading.Thread] = None


def _load() -> Any:
    global _module
    if _module is None and not extensions.disabled():
        try:
            from otel_uwsgi.runtime import _stop

            _module = _stop
        except ImportError:
            _module = False
    return _module or None


def available() -> bool:
    """True when the C part is built and usable here (Linux with glibc)."""
    return _load() is not None and PARK_SIGNAL is not None


def start(flush: Callable[[], None], *, exit_wait_ms: int) -> bool:
    """Arm the guard in this worker and start its stop thread (call on the main thread, inside
    ``exit_signals_blocked()`` so the thread never takes a stop signal itself).

    ``flush`` runs on the stop thread when a stop signal arrives; ``exit_wait_ms`` bounds how
    long the worker waits for it before exiting the old way.  False when the guard cannot run
    here; the exit hooks then flush as before.
    """
    global _thread
    if not available():
        return False
    stop = _load()
    if _thread is not None and _thread.is_alive() and stop.status()["stage"] != "off":
        return True
    try:
        signal.signal(PARK_SIGNAL, _park)  # Python's table: what PyErr_SetInterruptEx runs
        if not stop.start(int(exit_wait_ms), int(PARK_SIGNAL)):
            return False
    except (OSError, ValueError) as exc:  # ValueError: not the main thread
        logger.debug("otel-uwsgi: stop guard not started in pid %d: %s", os.getpid(), exc)
        return False
    _thread = threading.Thread(target=_run, args=(stop, flush), name="otel-uwsgi-stop", daemon=True)
    _thread.start()
    return True


def guard() -> int:
    """Put the guard in front of uWSGI's SIGINT / SIGTERM handlers (once they are installed:
    at the first request).  Returns how many signals are guarded (0 when not started)."""
    stop = _load()
    if stop is None:
        return 0
    count = int(stop.guard())
    logger.debug("otel-uwsgi: pid %d: stop guard in front of %d of uWSGI's stop handlers", os.getpid(), count)
    return count


def register_exit(callback: Callable[[], None]) -> bool:
    """Run ``callback`` in every ``exit()`` (glibc ``on_exit``) unless the stop thread has already
    flushed: then the exit path runs no Python at all.  False when unavailable here."""
    stop = _load()
    return bool(stop is not None and stop.register_exit(callback))


def status() -> dict[str, Any]:
    stop = _load()
    return dict(stop.status()) if stop is not None else {}


def _run(stop: Any, flush: Callable[[], None]) -> None:
    try:
        signum = stop.wait()
    except OSError:
        logger.exception("otel-uwsgi: the stop thread of pid %d failed; the exit hooks will flush", os.getpid())
        return
    if signum is None:
        return
    try:
        flush()
        now = stop.status()
        logger.debug(
            "otel-uwsgi: pid %d: signal %d: flushed on the stop thread (main thread parked: %s); exiting",
            os.getpid(),
            signum,
            "yes" if now["parked"] else "no",
        )
    finally:
        stop.finish()  # never returns: the main thread's exit() ends the process


def _park(signum: int, frame: Any) -> None:
    """Python's handler for PARK_SIGNAL, run on the main thread at a bytecode boundary: while the
    stop thread flushes, the request stops here (it would end spans after the flush)."""
    stop = _load()
    if stop is not None:
        stop.park()  # returns at once unless a stop is under way
