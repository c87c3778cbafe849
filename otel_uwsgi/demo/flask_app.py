"""The demo Flask app (``ini/flask.ini``): the one-line integration, nothing else.

``import otel_uwsgi.auto`` comes first: the Flask instrumentation then traces every app created
after it, naming server spans by route (``GET /item/<int:id>``) with ``http.route``.
"""

# ruff: noqa: I001 - the import order is the point: otel_uwsgi.auto before Flask

import otel_uwsgi.auto  # noqa: F401  (first: instruments Flask before the app exists)

import os  # noqa: E402

from flask import Flask, jsonify, request  # noqa: E402

app = Flask(__name__)


@app.route("/")
def index():
    return "ok\n"


@app.route("/item/<int:item_id>")
def item(item_id: int):
    return jsonify({"item": item_id, "pid": os.getpid()})


@app.route("/whoami")
def whoami():
    return jsonify({"pid": os.getpid(), "traceparent": request.headers.get("traceparent")})


@app.route("/call")
def call():
    """An outgoing call with requests to ``?url=`` (default: this app's /whoami): a client span,
    and ``traceparent`` sent on with this request's trace id."""
    import requests

    url = request.args.get("url") or f"http://{request.host}/whoami"
    return jsonify({"answer": requests.get(url, timeout=5).json(), "pid": os.getpid()})


application = app
