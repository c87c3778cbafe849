"""A plain WSGI app that shows which exit hooks ran in which process, and traces work handed to
the spooler and to a mule (trace context passed along with the task).

``OTEL_UWSGI_PROBE_DIR``: a directory where marker files ``<hook>-<pid>`` are written:
``uwsgi-atexit`` (uWSGI's ``uwsgi.atexit``), ``python-atexit`` (Python's ``atexit``), and
``busy-<pid>`` while a ``/slow``, ``/spin`` or ``/hold`` request runs.

``/spin?ms=N`` keeps the interpreter busy (bytecode) for N ms; ``/hold?n=N`` stays in one C call
that holds the GIL and never checks for signals (``sum(range(N))``), as a long C extension call
does: the two ways a stop signal can find a busy worker besides a blocking call (``/slow``).
"""

import atexit
import json
import logging
import os
import time
from urllib.parse import parse_qs

import uwsgi  # type: ignore[import-not-found]
from opentelemetry import propagate, trace

import otel_uwsgi
import otel_uwsgi.auto  # noqa: F401  (first: it instruments and hooks fork)

MARKS = os.environ.get("OTEL_UWSGI_PROBE_DIR", "")
#: Set: every request logs one line through the root logger (with log export on, through the
#: same handler the exit flush's log export uses).
LOG_EVERY = os.environ.get("OTEL_UWSGI_PROBE_LOG", "")
tracer = trace.get_tracer("otel_uwsgi.tests.probe")


def mark(name: str) -> str:
    path = os.path.join(MARKS, f"{name}-{os.getpid()}")
    if MARKS:
        with open(path, "w"):
            pass
    return path


_previous_atexit = getattr(uwsgi, "atexit", None)


def _uwsgi_atexit() -> None:
    mark("uwsgi-atexit")
    if _previous_atexit is not None:
        _previous_atexit()


uwsgi.atexit = _uwsgi_atexit
atexit.register(lambda: mark("python-atexit"))


def spooler_task(env: dict) -> int:
    """Runs in the spooler process: one span, a child of the request that spooled the task."""
    carrier = {k.decode(): v.decode() for k, v in env.items() if isinstance(k, bytes) and isinstance(v, bytes)}
    with tracer.start_as_current_span("spooler-task", context=propagate.extract(carrier)) as span:
        span.set_attribute("task.id", carrier.get("task", ""))
    return uwsgi.SPOOL_OK


uwsgi.spooler = spooler_task


def _json(start_response, data: dict, status: str = "200 OK") -> list:
    body = json.dumps(data).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if LOG_EVERY:
        logging.getLogger().warning("probe request %s in pid %d", path, os.getpid())
    query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    me = {"pid": os.getpid(), "worker": uwsgi.worker_id()}
    if path == "/slow":
        busy = mark("busy")
        time.sleep(float(query.get("s", "1")))
        if MARKS:
            os.unlink(busy)
    elif path == "/spin":
        busy = mark("busy")
        until = time.monotonic() + float(query.get("ms", "100")) / 1000
        with tracer.start_as_current_span("spin"):
            while time.monotonic() < until:
                pass
        if MARKS:
            os.unlink(busy)
    elif path == "/hold":
        busy = mark("busy")
        me["sum"] = sum(range(int(query.get("n", "100000000"))))
        if MARKS:
            os.unlink(busy)
    elif path == "/spool":
        carrier = {"task": query.get("task", "")}
        propagate.inject(carrier)
        uwsgi.spool({k.encode(): v.encode() for k, v in carrier.items()})
    elif path == "/mule":
        carrier = {"task": query.get("task", "")}
        propagate.inject(carrier)
        uwsgi.mule_msg(json.dumps(carrier).encode(), 1)
    elif path == "/whoami":
        me["delivery"] = otel_uwsgi.delivery_counts()
    return _json(start_response, me)


application = otel_uwsgi.wrap_wsgi(_app)
