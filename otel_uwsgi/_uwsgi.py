"""The only module that talks to uWSGI: options, process identity, hooks, and the checks that
explain a misconfigured server.

Importing it outside uWSGI is fine; :func:`available` then returns False.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any, Callable, NoReturn, Optional

from otel_uwsgi.options import Settings

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


def _last_text(value: Any) -> Any:
    """A uwsgi.opt value with a repeated key's list reduced to its last item and bytes decoded."""
    if isinstance(value, list):
        value = value[-1] if value else None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value


def config_file(opt: dict[str, Any]) -> str:
    """Name the configuration for messages: the ini file when there is one."""
    for key in ("ini", "yaml", "json", "xml"):
        value = _last_text(opt.get(key))
        if isinstance(value, str):
            return value
    return "the uWSGI options"


def _opt_flag(opt: dict[str, Any], key: str) -> bool:
    value = _last_text(opt.get(key))
    if value is True:
        return True
    return isinstance(value, str) and value.strip().lower() in ("", "true", "1", "yes", "on")


def _opt_int(opt: dict[str, Any], key: str, default: int) -> int:
    value = _last_text(opt.get(key))
    try:
        return int(value) if isinstance(value, str) else default
    except ValueError:
        return default


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


def check(settings: Settings) -> tuple[list[str], list[str]]:
    """Inspect the uWSGI setup: (fatal problems, warnings), each a one-line message."""
    opt = options()
    fatal: list[str] = []
    warnings: list[str] = []
    if not getattr(uwsgi, "has_threads", True):
        fatal.append(
            "otel-uwsgi: Python threads are disabled in this uWSGI, so spans would never be exported; "
            "add `enable-threads = true` (or `threads = N`) to the [uwsgi] section"
        )
    numproc = getattr(uwsgi, "numproc", 1)
    if master_pid() == 0 and numproc > 1:
        warnings.append(
            "otel-uwsgi: `master` is not enabled with several processes; set `master = true` so each "
            "worker gets its own tracer after fork"
        )
    mercy = _opt_int(opt, "worker-reload-mercy", 60)
    flush_ms = settings["otel-exit-flush-timeout"]
    if flush_ms >= (mercy - 1) * 1000:
        message = (
            f"otel-uwsgi: otel-exit-flush-timeout ({flush_ms} ms) must be below worker-reload-mercy "
            f"({mercy} s) minus 1 s, or uWSGI kills workers before their spans are flushed; "
            "lower otel-exit-flush-timeout or raise worker-reload-mercy"
        )
        (fatal if settings.source("otel-exit-flush-timeout") == "uwsgi" else warnings).append(message)
    if _opt_flag(opt, "skip-atexit"):
        warnings.append(
            "otel-uwsgi: `skip-atexit` is set; spans are still flushed at exit through a C exit handler, "
            "but not if uWSGI ends the worker with _exit"
        )
    return fatal, warnings


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


# --------------------------------------------------------------------------- server state (for server_metrics)


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
        value = _last_text(opt.get(key))
        if isinstance(value, str) and value.strip():
            return value.strip(), _opt_flag(opt, "stats-http")
    return None, False
