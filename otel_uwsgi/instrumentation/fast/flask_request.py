"""The server span of a Flask request: opentelemetry-instrumentation-flask's span, made once.

The stock instrumentation wraps each app's ``wsgi_app``, opens the span in the app's first
``before_request`` function (after URL matching: the span is named ``GET /items/<int:id>`` from
``request.url_rule``), sets the response's attributes in ``start_response`` and ends the span in
the app's last ``teardown_request`` function, recording the request's exception.  Here the same
three places do the same, without what it repeats per request: the request attributes collected
twice, the full URL built for the exclusion check when nothing is excluded, the header-capture
settings re-read from the environment, the ``use_span`` generator, and the meter calls when no
MeterProvider is set.

``Flask.__init__`` and ``Flask.wsgi_app`` are replaced on the class, so apps created after
:func:`install` (whatever name ``Flask`` was imported under) and before it (at their first request)
are traced; an app the stock instrumentation traces (``FlaskInstrumentor.instrument_app``, or
``FlaskInstrumentor().instrument()`` called anyway) is left to it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from functools import partial
from time import time_ns
from timeit import default_timer
from typing import Any, NamedTuple, Optional

from flask import Flask
from flask.globals import request_ctx
from opentelemetry.instrumentation import propagators
from opentelemetry.instrumentation.wsgi import add_response_attributes, default_response_propagation_setter

from otel_uwsgi.instrumentation.fast.http import KNOWN_METHODS, HttpConfig
from otel_uwsgi.instrumentation.fast.server_metrics import ServerMetrics
from otel_uwsgi.instrumentation.fast.server_span import (
    ServerSetup,
    attributes_of,
    open_server_span,
    record_error,
    set_error_status,
    set_status_code,
    start_server_span,
    warn_once,
)
from otel_uwsgi.native.sdk_layout import LEAN_SPAN_CLASSES
from otel_uwsgi.traces import context_ops
from otel_uwsgi.traces.context_ops import detach_failed, reset

#: The stock instrumentation's scope: a backend grouping spans by scope sees no change.
SCOPE = "opentelemetry.instrumentation.flask"
_KEY = "otel-uwsgi.flask"  # environ key of the request's _Request
_APP = "_otel_uwsgi_fast"  # app attribute: True traced here, False left to another instrumentation
_SQLCOMMENTER = "SQLCOMMENTER_ORM_TAGS_AND_VALUES"  # the context value the stock one sets for sqlcommenter
_TAGS = "_otel_uwsgi_sqlcommenter"  # url rule attribute: its sqlcommenter tags


def _request_context_getter() -> Callable[[], Any]:
    """The current request context: the ``ContextVar`` behind ``flask.request_ctx`` read directly
    (Flask 3.0 and 3.1 keep it as ``flask.globals._cv_request``), else through the proxy."""
    import flask.globals

    var = getattr(flask.globals, "_cv_request", None)
    return var.get if var is not None and hasattr(var, "get") else request_ctx._get_current_object


_current_request_context = _request_context_getter()

# get_global_response_propagator(), read where the API keeps it (one Python call less per request)
_PROPAGATOR_GLOBAL = hasattr(propagators, "_RESPONSE_PROPAGATOR")
_response_propagator = propagators.get_global_response_propagator


class Versions(NamedTuple):
    flask: str
    instrumentation: str  # opentelemetry-instrumentation-flask's: the spans' scope version


class FlaskSetup(ServerSetup):
    """The server-span setup, the stock meters, and the ``framework`` sqlcommenter tag."""

    def __init__(self, http: HttpConfig, mode: Any, default_mode: bool, schema_url: str, versions: Versions) -> None:
        super().__init__(http, mode, default_mode, schema_url, SCOPE, versions.instrumentation)
        self.metrics = ServerMetrics(SCOPE, versions.instrumentation, schema_url, mode)
        self.framework = f"flask:{versions.flask}"
        self.no_rule_tags = {"framework": self.framework}  # the sqlcommenter tags of a request without a rule


class _Request:
    """One request, from ``wsgi_app`` to ``teardown_request`` (``environ["otel-uwsgi.flask"]``)."""

    __slots__ = ("start", "span", "token", "ctx", "server", "excluded", "metric_attributes", "rule")

    def __init__(self, start: Optional[int]) -> None:
        self.start = start
        self.span: Any = None
        self.token: Any = None
        self.ctx: Any = None  # the request context that opened the span; None once it ended
        self.server = False
        self.excluded: Optional[bool] = None  # None: not decided (before_request did not run)
        self.metric_attributes: Optional[dict[str, Any]] = None  # with a MeterProvider only
        self.rule: Any = None


_setup: Optional[FlaskSetup] = None
_original: Any = None
_lock = threading.Lock()


def install(setup: FlaskSetup) -> None:
    """Trace every Flask app's requests with ``setup`` from now on."""
    global _setup, _original
    _setup = setup
    if _original is None:
        _original = Flask.wsgi_app
        setattr(Flask, _APP, None)
        Flask.wsgi_app = functools.wraps(_original)(_wsgi_app)  # type: ignore[method-assign]
        original_init = Flask.__init__

        @functools.wraps(original_init)
        def __init__(self: Flask, *args: Any, **kwargs: Any) -> None:
            original_init(self, *args, **kwargs)
            _adopt(self)  # at creation, as the stock instrumentation's Flask subclass registers its hooks

        Flask.__init__ = __init__  # type: ignore[method-assign]


def _adopt(app: Flask) -> bool:
    """Register the span's two hooks on ``app``, first as the stock instrumentation has them:
    first ``before_request`` (its span starts before the app's own), first ``teardown_request``
    (so it runs last).  False, and nothing done, for an app the stock instrumentation traces."""
    with _lock:
        adopted = app.__dict__.get(_APP)
        if adopted is None:
            adopted = not (getattr(app, "_is_instrumented_by_opentelemetry", False) or _stock_class(app))
            if adopted:
                app.before_request_funcs.setdefault(None, []).insert(0, _before_request)
                app.teardown_request_funcs.setdefault(None, []).insert(0, _teardown_request)
                app._is_instrumented_by_opentelemetry = True  # type: ignore[attr-defined]
            setattr(app, _APP, adopted)
    return adopted


def _stock_class(app: Flask) -> bool:
    """An app of the stock instrumentation's Flask subclass (``FlaskInstrumentor().instrument()``
    was called after all), which registers its own hooks once Flask's ``__init__`` returns."""
    return any(cls.__module__ == "opentelemetry.instrumentation.flask" for cls in type(app).__mro__)


def _wsgi_app(self: Flask, environ: dict, start_response: Callable[..., Any]) -> Any:
    adopted = getattr(self, _APP)
    if adopted is None:
        adopted = _adopt(self)
    setup = _setup
    if not adopted or setup is None:
        return _original(self, environ, start_response)
    state = environ[_KEY] = _Request(time_ns())
    respond = partial(_start_response, setup, state, start_response)  # one frame, where a closure is two
    instruments = setup.metrics.get()
    if instruments is None:
        return _original(self, environ, respond)
    start = default_timer()
    attributes = state.metric_attributes = attributes_of(setup, environ)
    active = instruments.active_attributes(attributes)
    instruments.active.add(1, active)
    try:
        result = _original(self, environ, respond)
        if not state.excluded:
            instruments.record_duration(default_timer() - start, attributes, state.rule, state.span)
        return result
    finally:
        instruments.active.add(-1, active)


def _excluded(setup: FlaskSetup, request: Any) -> bool:
    """Whether the URL is excluded; with none excluded, the Host is still checked against
    ``TRUSTED_HOSTS`` (a SecurityError, as the stock instrumentation's ``request.url`` raises)."""
    excluded = setup.http.excluded
    if excluded is not None:
        return bool(excluded.url_disabled(request.url))
    if request.trusted_hosts is not None:
        request.host  # noqa: B018 - validated once, then cached by werkzeug
    return False


def _before_request() -> None:
    setup = _setup
    if setup is None:
        return
    ctx = _current_request_context()
    request = ctx.request
    environ = request.environ
    state = environ.get(_KEY)
    if state is None:  # a request context wsgi_app did not push (test_request_context)
        state = environ[_KEY] = _Request(None)
    state.excluded = True  # until decided: an untrusted Host raises below, as in the stock code
    if (setup.http.excluded is not None or request.trusted_hosts is not None) and _excluded(setup, request):
        return
    state.excluded = False
    try:
        _open(setup, state, ctx, request, environ)
    except Exception:  # noqa: BLE001 - telemetry never fails a request
        warn_once("starting a Flask request span")


def _open(setup: FlaskSetup, state: _Request, ctx: Any, request: Any, environ: dict) -> None:
    rule = state.rule = request.url_rule
    method = environ.get("REQUEST_METHOD", "").strip().upper()  # HttpConfig.method, inline
    if method not in KNOWN_METHODS and not setup.http.capture_all_methods:
        method = "_OTHER"
    if rule is not None:
        name = f"{'HTTP' if method == '_OTHER' else method} {rule.rule}"
    elif method == "_OTHER":
        name = "HTTP"
    else:  # 404, 405, redirect: the stock WSGI span name
        path = environ.get("PATH_INFO", "").strip()
        name = f"{method} {path}" if method and path else method
    attributes = state.metric_attributes
    attributes = attributes_of(setup, environ) if attributes is None else dict(attributes)
    if rule is not None:
        attributes["http.route"] = rule.rule
    tags = setup.no_rule_tags if rule is None else getattr(rule, _TAGS, None)
    if tags is None:  # the url rule's, made at its first request (werkzeug rules are not hashable)
        tags = {"framework": setup.framework}
        if rule.endpoint:
            tags["controller"] = rule.endpoint
        if rule.rule:
            tags["route"] = rule.rule
        setattr(rule, _TAGS, tags)
    opened = None
    if open_server_span is not None:  # C: start, with_span and attach in one call (None: not the common request)
        opened = open_server_span(
            setup.tracer, setup.extract, environ, name, attributes, _SQLCOMMENTER, tags, state.start
        )
    if opened is not None:
        span, state.token, server = opened
    else:
        span, parent, server = start_server_span(setup, environ, name, attributes, state.start)
        state.token = context_ops.attach(context_ops.with_span(span, parent, (_SQLCOMMENTER, tags)))
    state.span, state.ctx, state.server = span, ctx, server
    if server and setup.request_headers and span.is_recording():
        captured = setup.request_headers.from_environ(environ)
        if captured:
            span.set_attributes(captured)


def _start_response(
    setup: FlaskSetup,
    state: _Request,
    start_response: Callable[..., Any],
    status: str,
    headers: list[tuple[str, str]],
    *args: Any,
    **kwargs: Any,
) -> Any:
    """The server's ``start_response``, called with the traceresponse header, the status and the
    captured response headers added first (bound to the request with ``partial`` in ``_wsgi_app``)."""
    try:
        excluded = state.excluded
        if excluded is None:  # before_request did not run: decided now, as the stock code does
            excluded = state.excluded = _excluded(setup, request_ctx.request)
        span = None
        if not excluded:
            if state.metric_attributes is not None:
                state.rule = request_ctx.request.url_rule
            propagator = propagators._RESPONSE_PROPAGATOR if _PROPAGATOR_GLOBAL else _response_propagator()
            if propagator:
                propagator.inject(headers, setter=default_response_propagation_setter)
            span = state.span
        if span is not None:
            code = None
            if setup.default_mode and state.metric_attributes is None:  # the status line's code: "200 OK" -> 200
                number, space, _ = status.partition(" ")
                if space and number.isdigit() and number.isascii():
                    code = int(number)
            if code is None:  # the new conventions, metrics, or an odd status line: the stock helper
                attributes = {} if state.metric_attributes is None else state.metric_attributes
                add_response_attributes(span, status, headers, attributes, setup.mode)
            elif type(span) not in LEAN_SPAN_CLASSES:
                if span.is_recording():
                    set_status_code(span, code, {})
            elif span.is_recording():  # set_status_code(span, code, {}), inline
                span.set_checked_attributes({"http.status_code": code})
                if not 100 <= code < 500:
                    set_error_status(span, code)
            if state.server and setup.response_headers and span.is_recording():
                captured = setup.response_headers.from_items(headers)
                if captured:
                    span.set_attributes(captured)
    except Exception:  # noqa: BLE001
        warn_once("adding a Flask response's attributes")
    return start_response(status, headers, *args, **kwargs)


def _teardown_request(exc: Optional[BaseException]) -> None:
    try:
        ctx = _current_request_context()
        request = ctx.request
        state = request.environ.get(_KEY)
        if state is None or state.ctx is not ctx:  # no span, ended, or a copied request context
            return
        state.ctx = None
        span = state.span
        if exc is not None and _streaming(request):  # the stock code ends these without the exception
            exc = None
    except Exception:  # noqa: BLE001
        warn_once("ending a Flask request span")
        return
    try:
        try:  # context_ops.detach(), inline
            reset(state.token)
        except Exception:  # noqa: BLE001 - the API's behaviour: logged, never raised
            detach_failed()
        if exc is not None and isinstance(exc, Exception) and span.is_recording():
            record_error(span, exc)
    finally:
        span.end()


def _streaming(request: Any) -> bool:
    """``request.response.stream``, which the stock teardown checks on Flask 3.1+."""
    response = getattr(request, "response", None)
    return bool(response and getattr(response, "stream", None))
