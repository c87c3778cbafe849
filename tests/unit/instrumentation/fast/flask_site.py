"""The Flask app the Flask fast-path equivalence test drives (one process per instrumentation):
routes with converters, a blueprint with its own hook, app hooks and an error handler, errors,
``abort()``, a view reporting its context, a copied request context, a streamed response."""

from __future__ import annotations

from typing import Any

import flask

from tests.unit.instrumentation.fast.spans import SHARED_CASES, TRACEPARENT, wsgi_environ


def make_app() -> Any:
    """The app, created after instrumenting (the stock instrumentor replaces ``flask.Flask``)."""
    from opentelemetry import baggage, context, trace

    app = flask.Flask("site")
    app.config["TRUSTED_HOSTS"] = ["testserver", "127.0.0.1"]
    tracer = trace.get_tracer("test")
    api = flask.Blueprint("api", "site", url_prefix="/api")

    @app.before_request
    def short_circuit():
        if flask.request.path.startswith("/short/"):
            return "short-circuited", 403
        return None

    @app.teardown_request
    def app_teardown(exc):
        with tracer.start_as_current_span("app-teardown"):  # the request span is still current here
            pass

    @app.errorhandler(KeyError)
    def handled(error):
        return "handled", 418

    @app.route("/")
    def index():
        return "ok"

    @app.route("/items/<int:item_id>", methods=["GET", "PUT"])
    def item(item_id):
        response = flask.make_response(f"item {item_id}")
        response.headers["X-Resp-Secret"] = "s3cret"
        response.headers["X-Resp-Plain"] = "visible"
        return response

    @app.route("/files/<path:name>")
    def files(name):
        with tracer.start_as_current_span("child"):
            return name

    @app.route("/error")
    def boom():
        raise RuntimeError("demo error")

    @app.route("/handled")
    def handled_error():
        raise KeyError("k")

    @app.route("/unavailable")
    def unavailable():
        flask.abort(503)

    @app.route("/short/<int:n>")
    def short(n):
        return "unreachable"

    @app.route("/health")
    def health():
        return "healthy"

    @app.route("/context")
    def seen_context():
        """What the view's context holds: the span, the baggage, the sqlcommenter tags."""
        span = trace.get_current_span()
        tags = context.get_value("SQLCOMMENTER_ORM_TAGS_AND_VALUES")
        return flask.jsonify(name=span.name, baggage=dict(baggage.get_all()), tags=tags)

    @app.route("/copied")
    def copied():
        @flask.copy_current_request_context
        def in_a_copy():
            return flask.request.path

        path = in_a_copy()  # pushes and pops a copy of the request context: its teardown must not end the span
        with tracer.start_as_current_span("after-copy"):
            return path

    @app.route("/stream")
    def stream():
        def chunks():
            with tracer.start_as_current_span("chunk"):
                yield "a"
            yield flask.request.path

        return flask.Response(flask.stream_with_context(chunks()))

    @api.before_request
    def api_before():
        with tracer.start_as_current_span("api-before"):
            pass

    @api.route("/")
    def api_index():
        return "api"

    @api.route("/v1/<slug>")
    def api_v1(slug):
        return slug

    app.register_blueprint(api)
    return app


CASES: dict[str, dict[str, Any]] = {
    "trivial": wsgi_environ("/"),
    "route": wsgi_environ("/items/42", query="a=1&b=2"),
    "put": wsgi_environ("/items/42", method="PUT", CONTENT_LENGTH="0"),
    "path-converter": wsgi_environ("/files/a/b.txt"),
    "blueprint": wsgi_environ("/api/v1/hello"),
    "blueprint-index": wsgi_environ("/api/"),
    "redirect": wsgi_environ("/api"),  # strict slashes: 308 before any view
    "404": wsgi_environ("/nope"),
    "405": wsgi_environ("/items/1", method="POST", CONTENT_LENGTH="0"),
    "options": wsgi_environ("/items/1", method="OPTIONS"),
    "head": wsgi_environ("/items/1", method="HEAD"),
    "other-method": wsgi_environ("/", method="FOO"),
    "error": wsgi_environ("/error"),
    "handled-error": wsgi_environ("/handled"),
    "abort-503": wsgi_environ("/unavailable"),
    "short-circuit": wsgi_environ("/short/3"),
    "context": wsgi_environ("/context", HTTP_TRACEPARENT=TRACEPARENT, HTTP_BAGGAGE="b=1"),
    "copied-context": wsgi_environ("/copied"),
    "stream": wsgi_environ("/stream"),
    **SHARED_CASES,
    "mounted-404": wsgi_environ("/nope", SCRIPT_NAME="/mount", REQUEST_URI="/mount/nope"),
    "excluded": wsgi_environ("/health"),
    "inside-span": wsgi_environ("/files/x"),  # served while another span is current: INTERNAL, not SERVER
}
