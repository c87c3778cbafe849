"""A plain WSGI app that logs inside each request, for the log-correlation tests."""

import logging
import os

import otel_uwsgi
import otel_uwsgi.auto  # noqa: F401

logger = logging.getLogger("app.requests")


def _app(environ, start_response):
    path = environ.get("PATH_INFO")
    logger.info("handled %s in pid %d", path, os.getpid())
    if path == "/fail":
        try:
            raise ValueError("broken on purpose")
        except ValueError:
            logger.exception("request failed")
    body = b"ok\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


application = otel_uwsgi.wrap_wsgi(_app)
