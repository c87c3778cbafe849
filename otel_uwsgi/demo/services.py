"""What the Flask and plain-WSGI demo apps call in ``/trace``, on the stack :mod:`.stack` chose: one
query through the database driver, a Redis get and set, and an HTTP call.  No Django here (the
Django site uses its ORM and cache); the HTTP call is shared with it.

Connections are made at the first request, in the worker: never in the uWSGI master, whose
sockets every forked worker would share.
"""

from __future__ import annotations

import importlib
import json
import os
import threading
from typing import Any, Optional

from otel_uwsgi.demo import stack

_local = threading.local()  # one DB connection per thread of a worker
_shared: dict[str, Any] = {}  # per process: the Redis client, the urllib3 pool


def worker_id() -> int:
    try:
        import uwsgi  # type: ignore[import-not-found]

        return uwsgi.worker_id()
    except ImportError:
        return 0


def _per_process(name: str, make: Any) -> Any:
    key = f"{name}:{os.getpid()}"
    if key not in _shared:
        _shared[key] = make()
    return _shared[key]


def _connect() -> Any:
    """A connection through the driver's module attribute, as the instrumentation wrapped it."""
    db = stack.current().db
    if db == "mysql":
        import MySQLdb  # type: ignore[import-not-found]

        p = stack.mysql_params()
        return MySQLdb.connect(host=p["host"], port=int(p["port"]), user=p["user"], passwd=p["password"],
                               db=p["name"], autocommit=True)
    if db == "postgres":
        driver = importlib.import_module(stack.postgres_driver() or "psycopg")
        p = stack.postgres_params()
        connection = driver.connect(host=p["host"], port=int(p["port"]), user=p["user"], password=p["password"],
                                    dbname=p["name"])
        connection.autocommit = True
        return connection
    from sqlite3 import dbapi2

    return dbapi2.connect(stack.sqlite_path())


def query() -> int:
    """``SELECT 1`` on this thread's connection: one DB client span."""
    if getattr(_local, "pid", None) != os.getpid():
        _local.connection, _local.pid = _connect(), os.getpid()
    cursor = _local.connection.cursor()
    try:
        cursor.execute("SELECT 1")
        return cursor.fetchone()[0]
    finally:
        cursor.close()


def cache_hits() -> Optional[int]:
    """Count this call in Redis (a GET and a SET: two client spans); None without Redis."""
    address = stack.current().redis
    if address is None:
        return None

    def client() -> Any:
        import redis

        return redis.Redis(host=address[0], port=address[1], socket_timeout=5)

    cache = _per_process("redis", client)
    hits = int(cache.get("otel-uwsgi-demo") or 0) + 1
    cache.set("otel-uwsgi-demo", hits)
    return hits


def call(url: str) -> Any:
    """GET ``url`` with the stack's HTTP client (a client span, ``traceparent`` sent on); its JSON."""
    client = stack.current().http
    if client == "requests":
        import requests

        return requests.get(url, timeout=5).json()
    if client == "urllib3":
        import urllib3

        return json.loads(_per_process("urllib3", urllib3.PoolManager).request("GET", url, timeout=5).data)
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


def whole_trace(host: str, downstream: Optional[str] = None) -> dict[str, Any]:
    """A query, the cache (a second query without Redis), and a call to ``downstream`` (default:
    this app's own ``/downstream`` on ``host``), whose server span joins this request's trace."""
    rows = [query()]
    hits = cache_hits()
    if hits is None:
        hits = query()
    answer = call(downstream or f"http://{host}/downstream")
    return {"rows": rows, "cache": hits, "downstream": answer, "pid": os.getpid(), "worker": worker_id()}


def downstream(traceparent: Optional[str]) -> dict[str, Any]:
    """The second service of :func:`whole_trace`: who answered, and the trace it was called in."""
    return {"pid": os.getpid(), "worker": worker_id(), "traceparent": traceparent}
