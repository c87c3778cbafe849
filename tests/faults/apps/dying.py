"""A plain WSGI app whose requests end spans and then die in the ways workers die in production.

``OTEL_UWSGI_PROBE_DIR``: ``busy-<pid>`` is written there while a request is about to die (so a
test knows which worker to watch or kill).

``/work?n=N`` ends N child spans and answers; ``/hang?s=S`` ends a child span, then sleeps in
``wait_for_the_lock`` (what harakiri's stack must show); ``/segv`` ends a child span and crashes
in C; ``/exit`` ends one and calls ``os._exit``; ``/grow?mb=M`` ends one, takes M MB and sleeps
(for ``evil-reload-on-rss``; ``keep=1`` holds it past the request, for ``reload-on-rss``).
"""

import ctypes
import json
import os
import time
from urllib.parse import parse_qs

import uwsgi  # type: ignore[import-not-found]
from opentelemetry import trace

import otel_uwsgi
import otel_uwsgi.auto  # noqa: F401  (first: it instruments and hooks fork)

MARKS = os.environ.get("OTEL_UWSGI_PROBE_DIR", "")
tracer = trace.get_tracer("otel_uwsgi.tests.dying")
KEPT = []  # /grow?keep=1: memory held past the request (reload-on-rss measures it after the request)


def mark(name: str) -> None:
    if MARKS:
        with open(os.path.join(MARKS, f"{name}-{os.getpid()}"), "w"):
            pass


def wait_for_the_lock(seconds: float) -> None:
    time.sleep(seconds)


def _app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path not in ("/work", "/"):
        with tracer.start_as_current_span("before-" + path.strip("/")):
            pass
        mark("busy")
    if path == "/work":
        for i in range(int(query.get("n", "3"))):
            with tracer.start_as_current_span(f"step-{i}"):
                pass
    elif path == "/hang":
        wait_for_the_lock(float(query.get("s", "30")))
    elif path == "/segv":
        ctypes.string_at(0)
    elif path == "/exit":
        os._exit(3)
    elif path == "/grow":
        hold = bytearray(int(query.get("mb", "300")) * 1024 * 1024)
        for i in range(0, len(hold), 4096):
            hold[i] = 1
        if query.get("keep"):
            KEPT.append(hold)
        time.sleep(float(query.get("s", "30")))
    body = json.dumps({"pid": os.getpid(), "worker": uwsgi.worker_id()}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


application = otel_uwsgi.wrap_wsgi(_app)
