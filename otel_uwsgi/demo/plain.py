"""A plain WSGI app (no framework): the documented one-line wrap."""

import json
import os

import otel_uwsgi
import otel_uwsgi.auto  # noqa: F401


def _app(environ, start_response):
    try:
        import uwsgi  # type: ignore[import-not-found]

        worker = uwsgi.worker_id()
    except ImportError:
        worker = 0
    body = json.dumps({"pid": os.getpid(), "worker": worker, "path": environ.get("PATH_INFO")}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


application = otel_uwsgi.wrap_wsgi(_app)
