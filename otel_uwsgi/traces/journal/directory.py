"""Where the journals of one uWSGI instance live, and which of them nobody owns any more.

``<otel-span-journal-dir>/<service>/<instance>/<kind>-<pid>.journal``: one directory per service
name (journals of another service are never read), one per uWSGI instance inside it (the master's
pid and start time), one file per process.  Every process of an instance holds a shared ``flock``
on ``<instance>/instance.lock`` (the master takes it before fork and the workers inherit it;
with ``lazy-apps`` each process takes its own); the kernel drops it with the last of them.  So:

* a journal whose own lock is free has a dead owner: anyone may ship it, the first to lock it;
* an instance directory whose lock is free is a previous run of the same service that ended
  without shipping everything (``kill -9`` of the whole group, a crash of the master): its
  journals are shipped by the next run, under their own (dead) processes' resource, then the
  directory is removed.  They are the user's spans, still unsent; shipping them late beats
  losing them, and each carries its own resource and timestamps.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from typing import Optional

logger = logging.getLogger(__name__)

SUFFIX = ".journal"
_LOCK = "instance.lock"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: ``<kind>-<pid>.journal`` as :meth:`Instance.journal_path` names it (kind: worker, mule<n>, spooler)
_OWNED = re.compile(r"[A-Za-z]+[0-9]*-([1-9][0-9]*)\.journal")


def default_base() -> str:
    """``/dev/shm/otel-uwsgi`` (memory, no disk writes) where it is writable, else the temp dir's."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
        return os.path.join(shm, "otel-uwsgi")
    return os.path.join(tempfile.gettempdir(), "otel-uwsgi")


def service_dir(base: Optional[str], service_name: str) -> str:
    """The directory of one service's instances (its name made safe for a path)."""
    name = _UNSAFE.sub("_", service_name or "unknown_service").strip("._") or "unknown_service"
    return os.path.join(base or default_base(), f"{name}-{os.getuid()}")


class Instance:
    """One uWSGI instance's journal directory, with this process's shared hold on it."""

    def __init__(self, service: str, key: str) -> None:
        self.service, self.key = service, key
        self.path = os.path.join(service, key)
        self._lock_fd: Optional[int] = None

    def hold(self) -> None:
        """Create the directory and take this process's shared hold (idempotent; inherited at fork)."""
        if self._lock_fd is not None:
            return
        os.makedirs(self.path, mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(self.path, _LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_SH)
        self._lock_fd = fd

    def journal_path(self, kind: str, pid: int) -> str:
        return os.path.join(self.path, f"{kind}-{pid}{SUFFIX}")

    def journals(self, *, skip_living: bool = False) -> list[str]:
        """The journal files of this instance (any owner, alive or dead; ``skip_living``: not those
        whose owner surely lives, see :func:`owner_exists`)."""
        return journals_in(self.path, skip_living=skip_living)

    def previous_runs(self) -> Iterator[str]:
        """Instance directories of the same service whose every process is dead (lock free)."""
        try:
            names = os.listdir(self.service)
        except FileNotFoundError:
            return
        for name in names:
            path = os.path.join(self.service, name)
            if name == self.key or not os.path.isdir(path):
                continue
            if _nobody_holds(os.path.join(path, _LOCK)):
                yield path


def journals_in(path: str, *, skip_living: bool = False) -> list[str]:
    """The journal files in the instance directory ``path`` (none when it is gone); ``skip_living``:
    not those whose owner surely lives (:func:`owner_exists`)."""
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        if name.endswith(SUFFIX) and not (skip_living and owner_exists(name)):
            found.append(os.path.join(path, name))
    return sorted(found)


def owner_exists(name: str) -> bool:
    """Whether the process named in a journal's file name still exists: a cheap pre-filter for the
    shipping thread's look once a second, which would otherwise open every living process's journal
    only to find its lock taken.  The lock stays the authority: a journal whose pid is gone (ESRCH),
    or whose name is not ``<kind>-<pid>.journal`` (one set aside as ``<kind>-<pid>-<ns>.journal``
    carries a later process's pid), is opened and its lock tried; the looks that open every journal
    (each minute's, the master's at exit, a later run's) stay.  A worker that died but is not reaped
    yet is a zombie and still exists: uWSGI's master reaps it within its loop of about a second, so
    its journal waits that much longer.  An owner whose pid an unrelated process took since, or one
    nobody reaps, waits for the minute's look."""
    match = _OWNED.fullmatch(name)
    return match is not None and process_exists(int(match[1]))


def process_exists(pid: int) -> bool:
    """Whether a process ``pid`` surely exists (signal 0 sends nothing): a zombie does, so does
    another user's (EPERM); ESRCH, or any other answer, is no such certainty."""
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True
    except (OSError, OverflowError):  # ESRCH; or a pid beyond pid_t
        return False
    return True


def remove_if_empty(path: str) -> None:
    """Remove a previous run's directory once its journals are shipped (and its lock file)."""
    if journals_in(path):
        return
    try:
        os.unlink(os.path.join(path, _LOCK))
        os.rmdir(path)
    except OSError:
        pass


def _nobody_holds(lock_path: str) -> bool:
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return True  # a directory left without its lock file: nobody can hold it
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
