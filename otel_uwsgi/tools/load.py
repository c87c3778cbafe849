"""Request load for the checks: concurrent GETs until every worker has served and enough requests
were answered."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from typing import Optional

from otel_uwsgi.tools.harness import Served
from otel_uwsgi.tools.waiting import wait_until


def http_get(host: str, port: int, path: str, timeout: float = 30.0) -> int:
    """One GET on its own connection; the status code."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def progress_line(served: Served, workers: int, arrived: int) -> str:
    """What a running check can see: the requests uWSGI logged, and their server spans: those that
    arrived, the rest waiting in the workers' queues (exported in batches, and all at the stop)."""
    line = f"running: {len(served.covered)}/{workers} workers served {served.total} requests"
    if not served.total:
        return line
    line += "; server spans: "
    queued = max(0, served.total - arrived)
    if not arrived:
        return line + f"{queued} queued in the workers, sent at stop"
    return line + f"{arrived} exported, {queued} queued in the workers (sent at stop)"


#: One GET: ``(host, port, path) -> status``; raises OSError when the connection fails.
Get = Callable[[str, int, str], int]


class Load:
    """Concurrent GETs (one connection each), counting statuses; concurrency spreads them over workers.
    ``get`` sends one (default: over HTTP; :func:`otel_uwsgi.tools.uwsgi_client.get` speaks the
    uwsgi protocol)."""

    def __init__(self, host: str, port: int, path: str, concurrency: int, get: Optional[Get] = None) -> None:
        self.host, self.port, self.path = host, port, path
        self.get: Get = get or http_get
        self.stop = threading.Event()
        self.statuses: dict[int, int] = {}
        self.errors = 0
        self.last_error = ""
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, name=f"load-{i}", daemon=True) for i in range(concurrency)]

    @property
    def completed(self) -> int:
        with self._lock:
            return sum(self.statuses.values())

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                status = self.get(self.host, self.port, self.path)
            except OSError as exc:
                with self._lock:
                    self.errors += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                self.stop.wait(0.1)
                continue
            with self._lock:
                self.statuses[status] = self.statuses.get(status, 0) + 1

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(35)


def load_until_covered(
    read: Callable[[], Optional[Served]],
    *,
    workers: int,
    requests: int,
    deadline: float,
    also: Callable[[], bool] = lambda: True,
    progress: Callable[[Served, bool], None] = lambda served, done: None,
    step: float = 0.1,
    running: Callable[[], bool] = lambda: True,
) -> bool:
    """Poll ``read`` (what uWSGI says it served; None when it cannot say now) until ``workers``
    worker ids have served, ``requests`` were served in all and ``also`` holds, or ``deadline``
    (``time.monotonic()``) passes or ``running`` turns false.  True when the load was enough.
    ``progress`` sees each reading.  The load itself (:class:`Load`) runs meanwhile."""

    def enough() -> bool:
        served = read()
        if served is None:
            return False
        done = len(served.covered) >= workers and served.total >= requests and also()
        progress(served, done)
        return done

    return wait_until(enough, deadline - time.monotonic(), step, alive=running)
