"""A Flask app in the two orders users write: ``OTEL_UWSGI_TEST_ORDER=late`` creates the app before
``import otel_uwsgi.auto``; ``wrapped`` imports it first and wraps the app with wrap_wsgi, as the
stock WSGI docs show.  Both end with ``application = otel_uwsgi.wrap_wsgi(app)``."""

# ruff: noqa: E402, I001 - the import order is the point

import os

LATE = os.environ.get("OTEL_UWSGI_TEST_ORDER") == "late"
if not LATE:
    import otel_uwsgi.auto  # noqa: F401

from flask import Flask

app = Flask(__name__)


@app.route("/item/<int:item_id>")
def item(item_id: int):
    return {"item": item_id}


@app.route("/user/<name>")
def user(name: str):
    return {"user": name}


if LATE:
    import otel_uwsgi.auto  # noqa: F401

import otel_uwsgi

application = otel_uwsgi.wrap_wsgi(app)
