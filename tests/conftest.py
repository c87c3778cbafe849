"""Shared fixtures: a real OTLP/HTTP receiver, real uWSGI from the sample inis, real MariaDB."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import pytest

from otel_uwsgi.native.accel import NO_EXTENSIONS
from otel_uwsgi.tools.harness import UwsgiServer, free_port, owned_overrides, prepare_ini
from otel_uwsgi.tools.receiver import Receiver
from otel_uwsgi.tools.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
INI = ROOT / "ini"
MYSQL = ("127.0.0.1", 3306)
POSTGRES = ("127.0.0.1", 5432)
REDIS = ("127.0.0.1", 6379)


def answers(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1):
            return True
    except OSError:
        return False


def mysql_available() -> bool:
    return answers(MYSQL)


def _require(address: tuple[str, int], what: str, start: str) -> None:
    """Fail (or skip, with OTEL_UWSGI_TESTS_ALLOW_NO_<WHAT>) when ``what`` does not answer."""
    if answers(address):
        return
    message = f"no {what} server answers on {address[0]}:{address[1]}; start one (e.g. `{start}`)"
    if os.environ.get(f"OTEL_UWSGI_TESTS_ALLOW_NO_{what.split('/')[0].upper()}"):
        pytest.skip(message)
    pytest.fail(message)


@pytest.fixture(scope="session")
def mysql() -> None:
    """The MariaDB/MySQL server the Django + MySQL tests need (root, empty password, database `test`)."""
    _require(MYSQL, "MySQL/MariaDB", "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd")


@pytest.fixture(scope="session")
def postgres() -> None:
    """The PostgreSQL server the Django + PostgreSQL tests need (trust auth, user postgres, database `test`)."""
    _require(POSTGRES, "PostgreSQL", "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start")


@pytest.fixture(scope="session")
def redis() -> None:
    """The Redis server the cache tests need."""
    _require(REDIS, "Redis", "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save ''")


class Downstream:
    """Another service the app calls over HTTP: records each request's path and headers, answers JSON."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        calls = self.calls = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802
                calls.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                body = b'{"downstream": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/called"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def downstream() -> Iterator[Downstream]:
    """A real HTTP server the app calls (stopped at teardown)."""
    service = Downstream()
    yield service
    service.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


class Server:
    """A started uWSGI from a sample ini plus helpers to talk to it."""

    def __init__(self, uwsgi: UwsgiServer, port: int, workers: int, journal_dir: str = "", endpoint: str = "") -> None:
        self.uwsgi, self.port, self.workers = uwsgi, port, workers
        self.journal_dir, self.endpoint = journal_dir, endpoint
        self.answered = 0  # responses received by get(); uWSGI logs each just *after* answering
        self._lock = threading.Lock()

    def get(self, path: str = "/", headers: Optional[dict[str, str]] = None, timeout: float = 30) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path, headers=headers or {})
            response = conn.getresponse()
            answer = response.status, response.read()
            with self._lock:
                self.answered += 1
            return answer
        finally:
            conn.close()

    def get_json(self, path: str, headers: Optional[dict[str, str]] = None) -> dict:
        status, body = self.get(path, headers)
        assert status == 200, body[:500]
        return json.loads(body)

    def hammer(self, path: str, count: int, concurrency: int = 8) -> list[tuple[int, bytes]]:
        with ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(lambda _: self.get(path), range(count)))

    def until_every_worker_served(self, path: str, timeout: float = 30, at_least: int = 1) -> None:
        """Send concurrent batches until uWSGI's log shows every worker id served ``at_least`` requests."""

        def every_worker_served() -> bool:
            self.hammer(path, self.workers * 4, concurrency=self.workers * 2)
            served = self.uwsgi.served()
            return (
                len({served.spawned.get(pid) for pid, n in served.requests.items() if n >= at_least}) >= self.workers
            )

        if not wait_until(every_worker_served, timeout, interval=0):
            raise AssertionError(f"not every worker served a request in {timeout}s:\n{self.uwsgi.log()[-3000:]}")

    def logged(self, timeout: float = 10) -> bool:
        """Wait until uWSGI's request log holds every request get() saw answered: it writes the
        line after the response, so a stop right after the last answer can race it."""
        return wait_until(lambda: self.uwsgi.served().total >= self.answered, timeout)

    def stop(self, signum: int = signal.SIGINT, kill_after: float = 30) -> Optional[int]:
        self.logged()
        return self.uwsgi.stop(signum, kill_after)

    def ship_leftovers(self) -> int:
        """After a stop, what the next start of the same service does: ship the journals its
        workers left to the receiver (their spans under their own pids); the spans shipped.

        uWSGI writes a request's log line, then marks the worker idle; a stop signal in between
        finds it busy and its exit flush does not run (docs/JOURNAL.md).  Without lazy-apps the
        master ships such a journal at its exit; with lazy-apps it waits for the next start, which
        this stands in for.  A test of lazy-apps that wants every span calls it after the stop."""
        from otel_uwsgi.export.span_exporter import FastOTLPSpanExporter
        from otel_uwsgi.traces.journal import adopt, directory

        paths = [str(p) for p in Path(self.journal_dir).rglob(f"*{directory.SUFFIX}")] if self.journal_dir else []
        if not paths:
            return 0
        exporter = FastOTLPSpanExporter(endpoint=self.endpoint + "/v1/traces", timeout=5)
        try:
            return adopt.ship_dead_journals(paths, exporter, batch=512, deadline=None, ack_first=False).spans
        finally:
            exporter.shutdown()


@pytest.fixture
def start_uwsgi(receiver: Receiver, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start uWSGI from ``ini/<name>`` with the socket and endpoint replaced; stopped by pid at teardown."""
    started: list[UwsgiServer] = []

    def start(
        name: str,
        workers: int = 4,
        extra: Optional[dict[str, str]] = None,
        env: Optional[dict[str, str]] = None,
        wait: bool = True,
        ready_path: str = "/",
        endpoint_in_env: bool = False,
    ) -> Server:
        port = free_port()
        overrides = owned_overrides(port, receiver.endpoint, str(tmp_path / "journal"))
        if endpoint_in_env:  # for `strict = true`, where otel-* ini keys are rejected
            del overrides["otel-exporter-otlp-endpoint"]
            env = {**(env or {}), "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}
        overrides.update({"processes": str(workers), **(extra or {})})
        text = prepare_ini(INI / name, overrides)
        # OTEL_* settings come from the ini; OTEL_UWSGI_NO_EXTENSIONS is this run's, and uWSGI's.
        environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") or k == NO_EXTENSIONS}
        environ.update(env or {})
        uwsgi = UwsgiServer(text, env=environ, cwd=str(ROOT), workdir=str(tmp_path / f"uwsgi-{len(started)}"))
        started.append(uwsgi.start())
        server = Server(uwsgi, port, workers, str(tmp_path / "journal"), receiver.endpoint)
        if wait:
            assert uwsgi.wait_workers(workers, 30), uwsgi.log()[-3000:]

            def ready() -> bool:
                try:
                    return server.get(ready_path, timeout=5)[0] < 500
                except OSError:
                    return False

            assert wait_until(ready, 30), uwsgi.log()[-3000:]
        return server

    yield start
    for uwsgi in started:
        uwsgi.stop(signal.SIGINT, kill_after=15)
