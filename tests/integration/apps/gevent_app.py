"""A plain WSGI app for uWSGI's gevent loop engine.

``/call?url=U`` calls ``U`` with requests (a client span under the request's server span);
``/hang?s=S`` writes ``busy-<pid>`` into ``OTEL_UWSGI_PROBE_DIR`` and sleeps (cooperatively, as
gevent patched ``time``), for a stop that finds the worker busy.

``OTEL_UWSGI_TEST_PATCH_FIRST=1``: the app applies gevent's patch itself, as its first line, before
``import otel_uwsgi.auto`` (the other way to patch before anything imports ssl or starts a thread).
"""

# ruff: noqa: E402, I001 - the import order is the point: gevent's patch, then otel_uwsgi.auto

import os

if os.environ.get("OTEL_UWSGI_TEST_PATCH_FIRST"):
    from gevent import monkey

    monkey.patch_all()

import otel_uwsgi
import otel_uwsgi.auto  # noqa: F401

import json
import time
from urllib.parse import parse_qs

MARKS = os.environ.get("OTEL_UWSGI_PROBE_DIR", "")


def _app(environ, start_response):
    query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    path = environ.get("PATH_INFO", "/")
    answer = {"pid": os.getpid()}
    if path == "/call":
        import requests

        answer["called"] = requests.get(query["url"], timeout=10).status_code
    elif path == "/hang":
        if MARKS:
            with open(os.path.join(MARKS, f"busy-{os.getpid()}"), "w"):
                pass
        time.sleep(float(query.get("s", "30")))
    body = json.dumps(answer).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


application = otel_uwsgi.wrap_wsgi(_app)
