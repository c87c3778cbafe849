"""CPU time and memory of one uWSGI instance, read from /proc, and its request counters.

The instance runs in its own session (``UwsgiServer`` starts it with ``start_new_session``), so
its master, workers and every thread they own (export threads included) share one process
group; wrk and the receiver live elsewhere and are not counted.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcStat:
    pid: int
    ppid: int
    pgrp: int
    cpu_s: float  # utime + stime of the whole thread group


def _read_stat(pid: int) -> ProcStat | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone meanwhile
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
    ppid, pgrp = int(fields[1]), int(fields[2])
    utime, stime = int(fields[11]), int(fields[12])
    return ProcStat(pid, ppid, pgrp, (utime + stime) / CLK_TCK)


def group(pgrp: int) -> list[ProcStat]:
    """Every live process of process group ``pgrp``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _read_stat(int(entry))
            if stat is not None and stat.pgrp == pgrp:
                found.append(stat)
    return found


def group_cpu(pgrp: int) -> float:
    """Seconds of CPU (user + system) used so far by the live processes of ``pgrp``."""
    return sum(s.cpu_s for s in group(pgrp))


def rss_kib(pid: int) -> int | None:
    """VmRSS of ``pid`` in KiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def uwsgi_stats(port: int, timeout: float = 5.0) -> dict:
    """The JSON document uWSGI's stats server (``stats = 127.0.0.1:port``) sends on connect."""
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return json.loads(b"".join(chunks))


def served(stats: dict) -> int:
    """Requests served so far by all workers."""
    return sum(int(w.get("requests", 0)) for w in stats.get("workers", []))


def worker_pids(stats: dict) -> list[int]:
    return [int(w["pid"]) for w in stats.get("workers", []) if int(w.get("pid", 0)) > 0]
