"""The server span of a Django request, computed once per request.

Same span as opentelemetry-instrumentation-django's middleware (name, kind, parent, attributes,
status, exception event), without its per-request overhead: the absolute URI is built at most
once (only when URLs are excluded), the URL is resolved once (by Django; the span is renamed
from ``request.resolver_match`` when the view is known), the header-capture settings are read at
setup, and nothing is recorded to a meter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

from django.conf import settings
from django.urls import Resolver404, resolve
from opentelemetry.instrumentation import propagators

from otel_uwsgi.instrumentation.fast.http import KNOWN_METHODS, native_request_attributes
from otel_uwsgi.instrumentation.fast.server_span import (
    ServerSetup,
    attributes_of,
    close_server_span,
    open_server_span,
    record_error,
    set_error_status,
    start_server_span,
    warn_once,
)
from otel_uwsgi.native import accel
from otel_uwsgi.native.sdk_layout import LEAN_SPAN_CLASSES
from otel_uwsgi.traces.context_ops import attach, detach_failed, reset, with_span

_STATE = "_otel_uwsgi_span"
#: Where the stock middleware keeps the request's span in ``request.META`` while the request runs;
#: set too, for views that read it (``trace.get_current_span()`` is the documented way).
SPAN_KEY = "opentelemetry-instrumentor-django.span_key"
_LIMIT = 256


class Setup(ServerSetup):
    """Everything read once: settings from the environment, semantic-convention mode, tracer."""

    def __init__(
        self, http: Any, mode: Any, default_mode: bool, schema_url: str, scope: tuple[str, str]
    ) -> None:
        super().__init__(http, mode, default_mode, schema_url, scope[0], scope[1])
        #: Whether a request's end may be close_server_span's (C): default mode, no response headers to capture.
        self.plain_end = default_mode and not self.capture_response_headers
        # read per request, so kept here as one attribute each
        self.capture_all = http.capture_all_methods
        self.native_attributes = default_mode and native_request_attributes is not None
        self.request_extras = self.capture_request_headers or bool(http.traced_request_attrs)


_setup: Optional[Setup] = None


def configure(setup: Setup) -> None:
    """Use ``setup`` for the requests that follow (called when Django loads its middleware)."""
    global _setup
    _setup = setup


class _PyRequest:
    """What one traced request carries from its start to its end (``request._otel_uwsgi_span``):
    its span, the context token, whether the span is SERVER, whether it has its final name, the
    ``http.method`` as the stock helpers normalise it, the exception Django handled, and
    ``http.route`` once the view is known.  Filled by ServerSpanMiddleware._open (no __init__:
    one Python call less per request)."""

    __slots__ = ("span", "token", "server", "named", "method", "exception", "route")
    span: Any
    token: object
    server: bool
    named: bool
    method: str
    exception: Optional[BaseException]
    route: Optional[str]


_native = accel.load()
#: otel_uwsgi.native._accel.RequestState (the same fields, in C) where built.
_Request: Any = getattr(_native, "RequestState", None) or _PyRequest
#: The C base of ServerSpanMiddleware: __call__ and process_view for the common request (_django.c).
_Base: Any = getattr(_native, "DjangoMiddleware", None) or object


def _name(request: Any, method: str, match: Any) -> str:
    route = getattr(match, "route", None)
    if route:
        return f"{method} {route}"
    url_name = getattr(match, "url_name", None)
    if url_name:
        return f"{method} {url_name}"
    return request.method


def _name_from_path(request: Any, method: str, urlconf: Optional[str] = None) -> str:
    """The name the stock middleware gives: it resolves ``request.path`` against the default
    URLconf when the request arrives."""
    try:
        return _name(request, method, resolve(request.path, urlconf))
    except Resolver404:
        return request.method


_MISSING = object()
_PROPAGATOR_GLOBAL = hasattr(propagators, "_RESPONSE_PROPAGATOR")
#: server_span.close_server_span where the response propagator is read where the API keeps it, else None.
_close_span = close_server_span if _PROPAGATOR_GLOBAL else None
_response_propagator = propagators.get_global_response_propagator


def _settings_cache() -> dict[str, Any]:
    """The dict where Django's LazySettings keeps each setting after its first read (emptied when
    the settings are replaced, as override_settings does), or an empty dict for another kind of
    ``settings``: a read there skips LazyObject.__getattribute__, whose ``getattr(value,
    "_mask_wrapped", True)`` raises and catches an AttributeError per read (~4k instructions)."""
    try:
        cache = object.__getattribute__(settings, "__dict__")
    except AttributeError:
        return {}
    return cache if type(cache) is dict else {}


class _Hosts:
    """Hosts already accepted by ``request.get_host()`` (which the stock middleware calls on
    every request: a Host outside ALLOWED_HOSTS raises DisallowedHost before any span exists).
    ServerSpanMiddleware.__call__ looks a request's Host up here itself (one call less per
    request); :meth:`accept` is the rest, for a Host not seen yet."""

    def __init__(self) -> None:
        self.allowed: Any = None
        self.seen: set[Any] = set()
        self.settings = _settings_cache()

    def accept(self, request: Any, key: Any, allowed: Any) -> None:
        """``request.get_host()`` (raises DisallowedHost), then remember ``key`` as accepted
        under ``allowed`` (ALLOWED_HOSTS as read now: a new list forgets the old answers)."""
        if allowed is not self.allowed:
            self.allowed, self.seen = allowed, set()
        request.get_host()
        if key is not None:
            if len(self.seen) >= _LIMIT:
                self.seen.clear()
            self.seen.add(key)


def _host_key(cached: dict[str, Any], meta: dict[str, Any]) -> tuple[Any, Any]:
    """(what identifies the request's Host: HTTP_HOST, with X-Forwarded-Host when
    USE_X_FORWARDED_HOST; ALLOWED_HOSTS), settings read where LazySettings caches them."""
    key = meta.get("HTTP_HOST")
    forwarded = cached.get("USE_X_FORWARDED_HOST", _MISSING)
    if forwarded is _MISSING:
        forwarded = settings.USE_X_FORWARDED_HOST
    if key is not None and forwarded:
        key = (meta.get("HTTP_X_FORWARDED_HOST"), key)
    allowed = cached.get("ALLOWED_HOSTS", _MISSING)
    if allowed is _MISSING:
        allowed = settings.ALLOWED_HOSTS
    return key, allowed


class ServerSpanMiddleware(_Base):
    """Django middleware (first in ``MIDDLEWARE``) opening and closing the request's server span.

    Where the C extension is built, Django calls its C base (otel_uwsgi/native/_django.c), which runs
    :meth:`_call` and :meth:`_process_view` for any request that is not the common one; without it
    they are ``__call__`` and ``process_view`` themselves."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self._hosts = _Hosts()

    # _call's steps: skip excluded URLs (or check the Host as the stock middleware's get_host()
    # does), name, attributes, start, make current, keep the state; the span's end.
    def _call(self, request: Any) -> Any:
        setup = _setup
        state = None
        if setup is not None:
            excluded = setup.http.excluded
            if excluded is None:  # _Hosts.check, inline for a Host seen before
                hosts = self._hosts
                meta = request.META
                key = meta.get("HTTP_HOST")
                cached = hosts.settings
                if cached.get("USE_X_FORWARDED_HOST", True) is not False or "ALLOWED_HOSTS" not in cached:
                    key, allowed = _host_key(cached, meta)
                else:
                    allowed = cached["ALLOWED_HOSTS"]
                if key is None or allowed is not hosts.allowed or key not in hosts.seen:
                    hosts.accept(request, key, allowed)
            if excluded is None or not excluded.url_disabled(request.build_absolute_uri("?")):
                try:
                    state = self._open(request, setup)
                except Exception:  # noqa: BLE001 - telemetry never fails a request
                    warn_once("starting a request span")
        if state is None:
            return self.get_response(request)
        try:
            response = self.get_response(request)
        except BaseException as exc:  # Django turns Exceptions into responses; this is the rest
            self._end(request, state, None, exc if isinstance(exc, Exception) else None)
            raise
        if (
            _close_span is not None
            and state.named
            and state.exception is None
            and setup.plain_end
            and propagators._RESPONSE_PROPAGATOR is None
            and _close_span(state.span, state.token, request.META, SPAN_KEY, state.route, response.status_code)
        ):  # the common end, in C: _end's steps for a 1xx-4xx response of a lean span
            return response
        self._end(request, state, response, state.exception)
        return response

    def _open(self, request: Any, setup: Setup) -> _Request:
        meta = request.META
        raw = request.method  # HttpConfig.method(), without its call (a known method is its own strip().upper())
        if raw not in KNOWN_METHODS:
            raw = raw.strip().upper()
        method = raw if raw in KNOWN_METHODS or setup.capture_all else "_OTHER"
        named = True
        if method == "_OTHER":
            name = "HTTP"
        elif request.path != request.path_info:  # mounted under SCRIPT_NAME: resolve like the stock code
            name = _name_from_path(request, method)
        else:  # renamed in process_view from Django's own resolution, or in _end if never reached
            name, named = request.method, False
        attributes = None
        if setup.native_attributes:
            attributes = native_request_attributes(meta, setup.capture_all)
        if attributes is None:
            attributes = attributes_of(setup, meta)
        opened = None
        if open_server_span is not None:  # C: start_server_span, with_span and attach in one call
            opened = open_server_span(setup.tracer, setup.extract, meta, name, attributes)
        if opened is None:  # no C, or not the common request: its Python twins
            span, ctx, server = start_server_span(setup, meta, name, attributes)
            token = attach(with_span(span, ctx))
        else:
            span, token, server = opened
        state = _Request.__new__(_Request)  # fields set here, not by an __init__ call
        state.span, state.token, state.server = span, token, server
        state.named, state.method, state.exception, state.route = named, method, None, None
        request._otel_uwsgi_span = state  # _STATE
        meta[SPAN_KEY] = span
        if setup.request_extras and span.is_recording():
            extra: dict[str, Any] = {}
            if state.server and setup.capture_request_headers:
                extra.update(setup.request_headers.from_environ(meta))
            for attr in setup.http.traced_request_attrs:
                value = getattr(request, attr, None)
                if value is not None:
                    extra[attr] = str(value)
            if extra:
                span.set_attributes(extra)
        return state

    def _process_view(self, request: Any, view_func: Any, view_args: Any, view_kwargs: Any) -> None:
        state: Any = getattr(request, _STATE, None)
        if state is None:
            return None
        try:
            span = state.span
            match = request.resolver_match
            if match:
                state.route = getattr(match, "route", None)  # set with the status code, in one call
            if not state.named:
                state.named = True
                method = state.method
                if hasattr(request, "urlconf"):  # Django resolved with another URLconf than the stock code
                    name = _name_from_path(request, method, settings.ROOT_URLCONF)
                elif state.route:  # _name(), inline
                    name = f"{method} {state.route}"
                else:
                    url_name = getattr(match, "url_name", None)
                    name = f"{method} {url_name}" if url_name else request.method
                if name != request.method:
                    span.update_name(name)
        except Exception:  # noqa: BLE001
            warn_once("naming a request span")
        return None

    if _Base is object:  # no C base: the Python steps are Django's hooks themselves
        __call__ = _call
        process_view = _process_view

    def process_exception(self, request: Any, exception: Exception) -> None:
        state: Optional[_Request] = getattr(request, _STATE, None)
        if state is not None:
            state.exception = exception
        return None

    def _end(self, request: Any, state: _Request, response: Any, exception: Optional[BaseException]) -> None:
        span = state.span
        setup = _setup
        try:
            if not state.named:  # no view was reached (404, or a middleware answered first)
                state.named = True
                name = _name_from_path(request, state.method, settings.ROOT_URLCONF)
                if name != request.method:
                    span.update_name(name)
            # span.is_recording() of an SDK span, without its call: not ended yet
            recording = span._end_time is None if type(span) in LEAN_SPAN_CLASSES else span.is_recording()
            if recording:  # http.route and (default mode) http.status_code in one call
                final: dict[str, Any] = {"http.route": state.route} if state.route else {}
                code: Any = _MISSING
                if response is not None and setup.default_mode:
                    code = final["http.status_code"] = response.status_code
                if final:  # set_checked(), inline
                    if type(span) in LEAN_SPAN_CLASSES:
                        span.set_checked_attributes(final)
                    else:
                        span.set_attributes(final)
                if code is not _MISSING and not (type(code) is int and 100 <= code < 500):
                    set_error_status(span, code)
            if response is not None:
                if not setup.default_mode:
                    from opentelemetry.instrumentation.wsgi import add_response_attributes

                    add_response_attributes(
                        span,
                        f"{response.status_code} {response.reason_phrase}",
                        response.items(),
                        duration_attrs={},
                        sem_conv_opt_in_mode=setup.mode,
                    )
                if recording and state.server and setup.capture_response_headers:
                    captured = setup.response_headers.from_items(response.items())
                    if captured:
                        span.set_attributes(captured)
                # get_global_response_propagator(), read where it keeps it
                propagator = propagators._RESPONSE_PROPAGATOR if _PROPAGATOR_GLOBAL else _response_propagator()
                if propagator:
                    propagator.inject(response)
            if exception is not None and recording:
                record_error(span, exception)
        except Exception:  # noqa: BLE001
            warn_once("closing a request span")
        finally:
            request.META.pop(SPAN_KEY, None)
            try:  # context_ops.detach(), inline
                reset(state.token)
            except Exception:  # noqa: BLE001 - logged as the API does
                detach_failed()
            span.end()


def _derive(setup: Setup) -> tuple[bool, bool, Any, Any]:
    """What the C base reads of a Setup once: whether its steps may run (nothing excluded, captured
    or added, the default semantic conventions, the C attributes, start and end), whether every
    method is captured, the lazy tracer and the extractor."""
    fast = bool(
        setup.http.excluded is None
        and setup.plain_end
        and setup.native_attributes
        and not setup.request_extras
        and open_server_span is not None
        and _close_span is not None
    )
    return fast, bool(setup.capture_all), setup.tracer, setup.extract


if _Base is not object:
    _native.configure_django(globals(), _derive, KNOWN_METHODS, vars(propagators), warn_once, SPAN_KEY)
