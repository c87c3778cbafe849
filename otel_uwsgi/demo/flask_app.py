"""The demo Flask app (``ini/flask.ini``, and ``otel-uwsgi demo`` where Flask is the stack): the
one-line integration, nothing else; ``/trace`` makes a whole trace (:mod:`.services`).

``import otel_uwsgi.auto`` comes first: the Flask instrumentation then traces every app created
after it, naming server spans by route (``GET /item/<int:id>``) with ``http.route``.
"""

# ruff: noqa: I001 - the import order is the point: otel_uwsgi.auto before Flask

import otel_uwsgi.auto  # noqa: F401  (first: instruments Flask before the app exists)

import os  # noqa: E402

from flask import Flask, jsonify, request  # noqa: E402

from otel_uwsgi.demo import services  # noqa: E402

app = Flask(__name__)


@app.route("/")
def index():
    return "ok\n"


@app.route("/item/<int:item_id>")
def item(item_id: int):
    return jsonify({"item": item_id, "pid": os.getpid()})


@app.route("/trace")
def whole_trace():
    return jsonify(services.whole_trace(request.host, request.args.get("downstream")))


@app.route("/downstream")
def downstream():
    return jsonify(services.downstream(request.headers.get("traceparent")))


@app.route("/whoami")
def whoami():
    return jsonify({"pid": os.getpid(), "traceparent": request.headers.get("traceparent")})


@app.route("/error")
def error():
    """An unhandled exception: a 500 whose server span records it (ERROR status, exception event)."""
    raise RuntimeError("demo error")


@app.route("/call")
def call():
    """An outgoing call to ``?url=`` (default: this app's /whoami) with ``?client=`` requests
    (default), httpx, urllib3 or urllib: a client span, and ``traceparent`` sent on with this
    request's trace id."""
    url = request.args.get("url") or f"http://{request.host}/whoami"
    client = request.args.get("client", "requests")
    if client == "httpx":
        import httpx

        body = httpx.get(url, timeout=5).json()
    elif client == "urllib3":
        import urllib3

        body = urllib3.PoolManager().request("GET", url, timeout=5).json()
    elif client == "urllib":
        import json
        import urllib.request

        with urllib.request.urlopen(url, timeout=5) as answer:
            body = json.loads(answer.read())
    else:
        import requests

        body = requests.get(url, timeout=5).json()
    return jsonify({"answer": body, "client": client, "pid": os.getpid()})


application = app
