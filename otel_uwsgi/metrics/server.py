"""uWSGI's own health as OpenTelemetry metrics (``uwsgi.*``), exported once per uWSGI instance.

**Who exports.**  Worker 1, and only it.  The master runs no Python after fork (and a thread
there would be copied, half-locked, into every worker); a mule needs the user's configuration;
every worker exporting would multiply each number by the worker count.  uWSGI reuses a worker
id only after the previous process with that id has been reaped, so at most one process holds
id 1 at any moment: there is never a second exporter.  Worker 1's respawn (``max-requests``,
harakiri) leaves at most one interval without these points; the exiting worker 1 does not
export them at exit (the instance lives on), so no interval gets two.

**Whose numbers.**  The instance's, read from uWSGI's shared memory: ``uwsgi.workers()`` (all
workers' status, requests, exceptions, respawns, average response time), the listening
sockets' accept queues (``TCP_INFO`` on the inherited listening sockets: ``uwsgi.listen_queue()``
returns the master's private copy, which reads 0 in a worker), ``/proc`` for memory and the
kernel's listen-queue overflow count, and uWSGI's stats server, when ``stats`` is configured,
for the harakiri count (no Python API has it).  The points carry an instance Resource, not
worker 1's: ``process.pid`` is the master's and ``service.instance.id`` is derived from host,
master pid and start time, so a respawned worker 1 continues the same series.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider

from otel_uwsgi.config.settings import Settings
from otel_uwsgi.metrics.stats_server import read_stats_server
from otel_uwsgi.semconv.attributes import SOCKET_ADDRESS, WORKER_ID, WORKER_STATUS

logger = logging.getLogger(__name__)

SCOPE = "otel_uwsgi.server"
#: uWSGI worker states (``uwsgi.workers()[i]["status"]``; ``sigN`` is reported as ``signal``).
STATUSES = ("idle", "busy", "cheap", "pause", "signal")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def owns_server_metrics(process_type: str, worker_id: Optional[int]) -> bool:
    """Whether this process exports the instance's server metrics: worker 1 only."""
    return process_type == "worker" and worker_id == 1


# --------------------------------------------------------------------------- reading the state


@dataclass
class Snapshot:
    """One reading of the instance, shared by every callback of one collection."""

    workers: list[dict[str, Any]] = field(default_factory=list)
    harakiri: dict[int, int] = field(default_factory=dict)  # worker id -> count (stats server only)
    queues: dict[str, tuple[int, int]] = field(default_factory=dict)  # socket -> (queued, limit)
    overflows: Optional[int] = None


def status_of(raw: str) -> str:
    return "signal" if raw.startswith("sig") else raw


def rss_bytes(pid: int) -> Optional[int]:
    """Resident memory of ``pid`` from ``/proc/<pid>/statm`` (uWSGI fills its own only with memory-report)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def listen_queues(fds: list[int]) -> dict[str, tuple[int, int]]:
    """(connections waiting to be accepted, backlog) per listening TCP socket, from ``TCP_INFO``.

    On a listening socket Linux reports the accept queue in ``tcpi_unacked`` and its limit in
    ``tcpi_sacked`` (what uWSGI's master reads too).  Unix sockets have no such counter.
    """
    queues: dict[str, tuple[int, int]] = {}
    tcp_info = getattr(socket, "TCP_INFO", None)
    if tcp_info is None:
        return queues
    for fd in fds:
        try:
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        try:
            if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
                continue
            raw = sock.getsockopt(socket.IPPROTO_TCP, tcp_info, 104)
            queued, limit = struct.unpack_from("II", raw, 24)
            host, port = sock.getsockname()[:2]
            queues[f"[{host}]:{port}" if ":" in host else f"{host}:{port}"] = (queued, limit)
        except (OSError, struct.error):
            continue
        finally:
            sock.close()
    return queues


def listen_overflows(path: str = "/proc/net/netstat") -> Optional[int]:
    """The kernel's ``TcpExt ListenOverflows``: connections refused or dropped for a full accept queue.

    Counted for the whole network namespace (in a container: usually just this uWSGI).  uWSGI's
    own ``listen_queue_errors`` stat exists but nothing in uWSGI 2.0 increments it.
    """
    try:
        with open(path) as f:
            lines = [line.split() for line in f if line.startswith("TcpExt:")]
        header, values = lines[0], lines[1]
        return int(values[header.index("ListenOverflows")])
    except (OSError, ValueError, IndexError):
        return None


class ServerState:
    """Reads the instance at most once per collection (callbacks of one collect share a snapshot)."""

    def __init__(self, stats: tuple[Optional[str], bool], ttl_s: float, server: Any = None) -> None:
        self.stats_address, self.stats_http = stats
        self.server = server  # uWSGI's worker table and listening sockets (otel_uwsgi.runtime.uwsgi_api)
        self.ttl_s = ttl_s
        self.closing = False
        self._lock = threading.Lock()
        self._at = -float("inf")
        self._snapshot = Snapshot()
        self._stats_warned = False

    def snapshot(self) -> Snapshot:
        with self._lock:
            now = time.monotonic()
            if now - self._at >= self.ttl_s:
                self._snapshot, self._at = self._read(), now
            return self._snapshot

    def _read(self) -> Snapshot:
        snap = Snapshot(
            workers=self.server.workers() if self.server is not None else [],
            queues=listen_queues(self.server.listen_fds() if self.server is not None else []),
            overflows=listen_overflows(),
        )
        if self.stats_address:
            try:
                stats = read_stats_server(self.stats_address, self.stats_http)
                snap.harakiri = {int(w["id"]): int(w.get("harakiri_count", 0)) for w in stats.get("workers", [])}
            except (OSError, ValueError, KeyError, TypeError) as exc:
                if not self._stats_warned:
                    self._stats_warned = True
                    logger.warning(
                        "otel-uwsgi: cannot read uWSGI's stats server at %s (%s); uwsgi.worker.harakiris is "
                        "not reported until it answers",
                        self.stats_address,
                        exc,
                    )
        return snap

    # -- callbacks (each returns nothing once the exporting worker is exiting)
    def _rows(self) -> list[dict[str, Any]]:
        return [] if self.closing else self.snapshot().workers

    def worker_status(self, options: CallbackOptions) -> list[Observation]:
        out = []
        for row in self._rows():
            current = status_of(str(row.get("status", "")))
            for status in STATUSES:
                out.append(Observation(int(status == current), {WORKER_ID: row["id"], WORKER_STATUS: status}))
        return out

    def _per_worker(self, key: str, scale: float = 1) -> list[Observation]:
        return [Observation(row.get(key, 0) * scale, {WORKER_ID: row["id"]}) for row in self._rows()]

    def requests(self, options: CallbackOptions) -> list[Observation]:
        return self._per_worker("requests")

    def exceptions(self, options: CallbackOptions) -> list[Observation]:
        return self._per_worker("exceptions")

    def respawns(self, options: CallbackOptions) -> list[Observation]:
        return self._per_worker("respawn_count")

    def response_time(self, options: CallbackOptions) -> list[Observation]:
        return self._per_worker("avg_rt", 1e-6)  # uWSGI keeps microseconds

    def harakiris(self, options: CallbackOptions) -> list[Observation]:
        if self.closing:
            return []
        snap = self.snapshot()
        return [Observation(count, {WORKER_ID: wid}) for wid, count in sorted(snap.harakiri.items())]

    def memory(self, options: CallbackOptions) -> list[Observation]:
        out = []
        for row in self._rows():
            pid = int(row.get("pid") or 0)
            value = int(row.get("rss") or 0) or (rss_bytes(pid) if pid > 0 else None)
            if value:
                out.append(Observation(value, {WORKER_ID: row["id"]}))
        return out

    def queue_usage(self, options: CallbackOptions) -> list[Observation]:
        if self.closing:
            return []
        return [Observation(q, {SOCKET_ADDRESS: name}) for name, (q, _) in self.snapshot().queues.items()]

    def queue_limit(self, options: CallbackOptions) -> list[Observation]:
        if self.closing:
            return []
        return [Observation(lim, {SOCKET_ADDRESS: name}) for name, (_, lim) in self.snapshot().queues.items()]

    def overflows(self, options: CallbackOptions) -> list[Observation]:
        value = None if self.closing else self.snapshot().overflows
        return [] if value is None else [Observation(value)]


#: (name, kind, unit, ServerState callback, description): docs/METRICS.md's table is written from this.
INSTRUMENTS = (
    ("uwsgi.worker.status", "updowncounter", "{worker}", "worker_status",
     "1 for the state each worker is in (idle, busy, cheap, pause, signal), 0 for the others."),
    ("uwsgi.worker.requests", "counter", "{request}", "requests", "Requests each worker id has served."),
    ("uwsgi.worker.exceptions", "counter", "{exception}", "exceptions",
     "Unhandled exceptions raised by the app in each worker id."),
    ("uwsgi.worker.harakiris", "counter", "{harakiri}", "harakiris",
     "Times uWSGI killed each worker id for exceeding `harakiri` (needs uWSGI's `stats` server)."),
    ("uwsgi.worker.respawns", "counter", "{respawn}", "respawns",
     "Times each worker id was respawned (max-requests, reload-on-*, harakiri, crash)."),
    ("uwsgi.worker.memory.rss", "updowncounter", "By", "memory", "Resident memory of each running worker."),
    ("uwsgi.worker.response_time.average", "gauge", "s", "response_time",
     "uWSGI's running average response time of each worker id."),
    ("uwsgi.listen_queue.usage", "updowncounter", "{connection}", "queue_usage",
     "Connections waiting in a listening TCP socket's accept queue (no worker free to take them)."),
    ("uwsgi.listen_queue.limit", "updowncounter", "{connection}", "queue_limit",
     "Size of that accept queue (`listen`, capped by net.core.somaxconn)."),
    ("uwsgi.listen_queue.overflows", "counter", "{connection}", "overflows",
     "Connections the kernel dropped or refused because an accept queue was full (whole network namespace)."),
)


class ServerMetrics:
    """The server-metrics MeterProvider of worker 1; shutting down skips the final export."""

    def __init__(self, provider: MeterProvider, state: ServerState) -> None:
        self.provider, self.state = provider, state

    def shutdown(self) -> None:
        self.state.closing = True
        self.provider.shutdown()


def register(provider: MeterProvider, state: ServerState) -> None:
    meter = provider.get_meter(SCOPE)
    create = {
        "counter": meter.create_observable_counter,
        "updowncounter": meter.create_observable_up_down_counter,
        "gauge": meter.create_observable_gauge,
    }
    for name, kind, unit, callback, description in INSTRUMENTS:
        create[kind](name, callbacks=[getattr(state, callback)], unit=unit, description=description)


def start_server_metrics(settings: Settings, provider: MeterProvider, server: Any) -> ServerMetrics:
    """The ``uwsgi.*`` instruments on ``provider`` (a MeterProvider with the instance's Resource),
    reading ``server`` (:mod:`otel_uwsgi.runtime.uwsgi_api`: ``workers()``, ``listen_fds()``,
    ``stats_server()``); call it in the one process that :func:`owns_server_metrics`."""
    stats = server.stats_server()
    if stats[0] is None:
        logger.info(
            "otel-uwsgi: uwsgi.worker.harakiris needs uWSGI's stats server; add e.g. "
            "`stats = /run/uwsgi/stats.sock` to the [uwsgi] section to report it"
        )
    state = ServerState(stats, ttl_s=min(1.0, settings["otel-metric-export-interval"] / 2000), server=server)
    register(provider, state)
    logger.debug("otel-uwsgi: uWSGI server metrics exported from worker 1 (pid %d)", os.getpid())
    return ServerMetrics(provider, state)
