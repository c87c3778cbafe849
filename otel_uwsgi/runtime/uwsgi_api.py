"""The only module that imports ``uwsgi`` and ``uwsgidecorators``: options, process identity,
fork and exit hooks, stopping startup, and the server state that server metrics read.

Importing it outside uWSGI is fine; :func:`available` then returns False.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any, NoReturn, Optional

from otel_uwsgi.config import uwsgi_opt

logger = logging.getLogger(__name__)

try:  # pragma: no cover - only inside uWSGI
    import uwsgi  # type: ignore[import-not-found]
except ImportError:  # not running under uWSGI
    uwsgi = None


def available() -> bool:
    """True inside a uWSGI process (master, worker, mule or spooler)."""
    return uwsgi is not None


def options() -> dict[str, Any]:
    """``uwsgi.opt`` as a dict (str keys; bytes, True or list values)."""
    return dict(uwsgi.opt) if uwsgi is not None else {}


def identity() -> tuple[str, Optional[int], Optional[int]]:
    """(process type, worker id, mule id) of this process: ``master`` before fork,
    ``worker``, ``mule`` or ``spooler`` after."""
    if uwsgi is None:
        return "process", None, None
    mule_id = uwsgi.mule_id() if hasattr(uwsgi, "mule_id") else 0
    if mule_id:
        return "mule", None, mule_id
    if hasattr(uwsgi, "i_am_the_spooler") and uwsgi.i_am_the_spooler():
        return "spooler", None, None
    worker_id = uwsgi.worker_id()
    if worker_id > 0:
        return "worker", worker_id, None
    return "master", None, None


def master_pid() -> int:
    return uwsgi.masterpid() if uwsgi is not None else 0


def harakiri_seconds() -> int:
    """``harakiri`` as configured (0: off); what a request that ran that long was killed by."""
    raw = options().get("harakiri")
    if isinstance(raw, list):
        raw = raw[-1] if raw else None
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    try:
        return max(0, int(str(raw).strip())) if raw not in (None, True) else 0
    except ValueError:
        return 0


def version() -> tuple[int, ...]:
    """uWSGI's version as numbers (``2.0.21-debian`` -> ``(2, 0, 21)``); () when unknown."""
    raw = getattr(uwsgi, "version", b"")
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw)
    numbers = []
    for part in text.split("-")[0].split("."):
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers)


def has_threads() -> bool:
    """Whether Python threads run in this uWSGI (the real state, not ``enable-threads`` as written)."""
    return bool(getattr(uwsgi, "has_threads", True))


def process_count() -> int:
    """How many worker processes uWSGI is configured with."""
    return int(getattr(uwsgi, "numproc", 1))


def register_postfork(hook: Callable[[], None]) -> None:
    """Run ``hook`` in every process uWSGI forks (workers, mules, spooler).

    uwsgidecorators' chain is used when it can be imported (it needs ``master``), so a later
    ``@postfork`` of the user's does not replace ours; otherwise ``uwsgi.post_fork_hook`` is
    chained by hand.
    """
    try:
        import uwsgidecorators  # type: ignore[import-not-found]

        uwsgidecorators.postfork(hook)
        return
    except Exception:  # noqa: BLE001 - uwsgidecorators raises a bare Exception without master
        pass
    previous = getattr(uwsgi, "post_fork_hook", None)

    def chained() -> None:
        if previous is not None:
            previous()
        hook()

    uwsgi.post_fork_hook = chained


def after_each_spooler_task(hook: Callable[[], None]) -> bool:
    """Run ``hook`` after every task of the spooler function the app set (``uwsgi.spooler``, as
    ``@spool`` does), whatever the task returned; False when there is none in this process."""
    original = getattr(uwsgi, "spooler", None)
    if not callable(original) or getattr(original, "_otel_uwsgi", False):
        return False

    def spooler(env: Any) -> Any:
        try:
            return original(env)
        finally:
            hook()

    spooler._otel_uwsgi = True  # type: ignore[attr-defined]
    uwsgi.spooler = spooler
    return True


def register_atexit(hook: Callable[[], None]) -> None:
    """Chain ``hook`` onto ``uwsgi.atexit`` (called before Python finalises, idle workers only)."""
    previous = getattr(uwsgi, "atexit", None)

    def chained() -> None:
        try:
            hook()
        finally:
            if previous is not None:
                previous()

    uwsgi.atexit = chained


def stop_startup(message: str) -> NoReturn:
    """Stop uWSGI with one line on stderr and no traceback.

    In the master (app loaded before fork) ``SystemExit`` makes uWSGI exit with status 1.  In a
    worker (``lazy-apps``) exiting would only make the master respawn it forever, so the master
    is asked to shut down first.
    """
    print(message, file=sys.stderr, flush=True)
    kind = identity()[0]
    if kind != "master" and master_pid() and master_pid() != os.getpid():
        try:
            os.kill(master_pid(), signal.SIGINT)
        except OSError:
            pass
    raise SystemExit(1) from None


# --------------------------------------------------------------------------- server state (for metrics.server)


def started_on() -> int:
    """When this uWSGI instance (re)started, epoch seconds; a graceful reload changes it."""
    return int(getattr(uwsgi, "started_on", 0) or 0)


def workers() -> list[dict[str, Any]]:
    """A copy of ``uwsgi.workers()`` (uWSGI's shared-memory worker table), text values decoded.

    uWSGI refills the same dicts on every call, so they are copied before anything else runs.
    """
    if uwsgi is None:
        return []
    rows = []
    for raw in uwsgi.workers():
        row = {k: v for k, v in raw.items() if k != "apps"}
        if isinstance(row.get("status"), bytes):
            row["status"] = row["status"].decode("ascii", "replace")
        rows.append(row)
    return rows


def listen_fds() -> list[int]:
    """File descriptors of the sockets uWSGI accepts on, inherited by every worker."""
    return [int(fd) for fd in getattr(uwsgi, "sockets", ()) or ()] if uwsgi is not None else []


def stats_server() -> tuple[Optional[str], bool]:
    """(address of uWSGI's stats server or None, whether it speaks HTTP), from ``stats``/``stats-server``."""
    opt = options()
    for key in ("stats", "stats-server"):
        value = uwsgi_opt.first_text(opt, key)
        if value is not None and value.strip():
            return value.strip(), uwsgi_opt.flag(opt, "stats-http")
    return None, False
