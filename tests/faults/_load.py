"""A steady request load for the fault tests: a fixed request rate, spread over a few threads,
with each request's latency recorded, so a sick collector's effect on the application shows as
a shift in p50 / p99 rather than in throughput.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional


def percentile(values: list[float], q: float) -> float:
    """The ``q``-quantile (0..1) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


@dataclass
class Latencies:
    """Milliseconds per request, and what went wrong."""

    ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    late: int = 0  # requests that started behind schedule (the server could not keep up)

    @property
    def p50(self) -> float:
        return percentile(self.ms, 0.50)

    @property
    def p99(self) -> float:
        return percentile(self.ms, 0.99)


class SteadyLoad:
    """``rate`` requests per second on ``path`` from ``threads`` threads, each on its own schedule.

    Open-loop within the limits of the threads: a thread that falls behind its schedule sends the
    next request at once (and counts it ``late``) instead of bursting to catch up.  A second, slow
    stream samples ``/whoami`` (the serving worker's delivery counts) every ``sample_every`` s.
    """

    def __init__(
        self,
        port: int,
        path: str,
        rate: float,
        threads: int = 6,
        sample_path: Optional[str] = "/whoami",
        sample_every: float = 0.1,
    ) -> None:
        self.port, self.path = port, path
        self.interval = threads / rate
        self.result = Latencies()
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), name=f"load-{i}", daemon=True) for i in range(threads)
        ]
        if sample_path:
            self._threads.append(
                threading.Thread(target=self._sample, args=(sample_path, sample_every), name="sample", daemon=True)
            )

    def _get(self, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def _run(self, index: int) -> None:
        next_at = time.monotonic() + self.interval * index / len(self._threads)
        while not self._stop.is_set():
            now = time.monotonic()
            if next_at > now:
                if self._stop.wait(next_at - now):
                    return
                late = False
            else:
                late = next_at < now - self.interval
                next_at = now
            next_at += self.interval
            started = time.perf_counter()
            try:
                status, _ = self._get(self.path)
            except OSError:
                with self._lock:
                    self.result.errors += 1
                continue
            took = (time.perf_counter() - started) * 1000
            with self._lock:
                self.result.ms.append(took)
                self.result.statuses[status] = self.result.statuses.get(status, 0) + 1
                self.result.late += late

    def _sample(self, path: str, every: float) -> None:
        while not self._stop.wait(every):
            try:
                status, body = self._get(path)
            except OSError:
                continue
            if status == 200:
                with self._lock:
                    self.samples.append(json.loads(body))

    def start(self) -> SteadyLoad:
        for t in self._threads:
            t.start()
        return self

    def finish(self) -> Latencies:
        """Stop and wait for the threads."""
        self._stop.set()
        for t in self._threads:
            t.join(35)
        return self.result
