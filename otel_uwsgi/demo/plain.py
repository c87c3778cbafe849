"""A plain WSGI app (no framework): the documented one-line wrap.  ``/trace`` makes a whole trace
(:mod:`.services`), ``/downstream`` is its second service; any other path says who served it."""

import json
import os
from urllib.parse import parse_qs

import otel_uwsgi
import otel_uwsgi.auto  # noqa: F401
from otel_uwsgi.demo import services


def _app(environ, start_response):
    path = environ.get("PATH_INFO")
    if path == "/trace":
        downstream = parse_qs(environ.get("QUERY_STRING", "")).get("downstream", [None])[0]
        answer = services.whole_trace(environ.get("HTTP_HOST", "127.0.0.1"), downstream)
    elif path == "/downstream":
        answer = services.downstream(environ.get("HTTP_TRACEPARENT"))
    else:
        answer = {"pid": os.getpid(), "worker": services.worker_id(), "path": path}
    body = json.dumps(answer).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


application = otel_uwsgi.wrap_wsgi(_app)
