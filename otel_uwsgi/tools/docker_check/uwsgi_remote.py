"""Talking to a uWSGI in another container: its stats server's JSON as a :class:`Served`, and its
master FIFO."""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from typing import Any, Optional

from otel_uwsgi.metrics.stats_server import StatsError
from otel_uwsgi.tools.harness import Served


def served_from_stats(stats: Mapping[str, Any], statuses: Optional[Mapping[int, int]] = None) -> Served:
    """A :class:`Served` from the uWSGI stats server's JSON.

    ``spawned`` maps each running worker's pid to its worker id, ``requests`` each pid to the
    requests uWSGI counted for that worker.  Workers without a pid (not running, e.g. between
    a death and its respawn) are left out.  The stats server knows only the current process of
    each worker id: requests served by an earlier, respawned process are counted under the
    current pid.  ``statuses`` (HTTP status -> count) is what the load generator saw; the
    stats server has no per-status counts.
    """
    served = Served()
    workers = stats.get("workers")
    if not isinstance(workers, list):
        raise StatsError("stats JSON has no 'workers' list (is this the uWSGI stats server?)")
    for worker in workers:
        if not isinstance(worker, Mapping):
            continue
        try:
            pid = int(worker.get("pid") or 0)
            wid = int(worker.get("id") or 0)
            requests = int(worker.get("requests") or 0)
        except (TypeError, ValueError):
            continue
        if pid <= 0 or wid <= 0:
            continue
        served.spawned[pid] = wid
        served.requests[pid] = requests
    served.statuses = dict(statuses or {})
    return served


def worker_count(stats: Mapping[str, Any]) -> int:
    """How many workers uWSGI is configured with (running or not): the stats ``workers`` list."""
    workers = stats.get("workers")
    return len(workers) if isinstance(workers, list) else 0


def parse_hostport(text: str, default_port: int) -> tuple[str, int]:
    """``host:port``, ``host`` or ``:port`` (host empty -> ``0.0.0.0``)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        return text or "0.0.0.0", default_port
    if not port.isdigit():
        raise ValueError(f"not host:port: {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def send_fifo(path: str, command: bytes = b"q") -> None:
    """Write ``command`` to uWSGI's master FIFO (fails at once when no master reads it)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise OSError(f"{path}: no uWSGI master has it open (ENXIO)") from None
        raise
    try:
        os.write(fd, command)
    finally:
        os.close(fd)
