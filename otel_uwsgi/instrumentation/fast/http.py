"""The server span's HTTP attributes and header capture, with what the stock instrumentations read
from the environment on every request read once.

The stock Django middleware re-reads the header-capture variables and re-compiles their regexes
per request; here they are parsed once, at setup, with the stock parsers (so a value means the
same thing), and the per-request helpers below only look up small caches.  Nothing here imports
Django, so it is unit-tested against the stock helpers directly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Optional

from opentelemetry.util.http import (
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS,
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST,
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE,
    OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS,
    detect_synthetic_user_agent,
    normalize_user_agent,
    parse_excluded_urls,
    redact_url,
    sanitize_method,
)

from otel_uwsgi.native import accel

_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY")


def _known_methods() -> frozenset[str]:
    """The methods the installed stock helper keeps (QUERY joined its list in a later release), read
    from the helper itself with capture-all-methods off: any other becomes ``_OTHER``."""
    saved = os.environ.pop(OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS, None)
    try:
        return frozenset(method for method in _METHODS if sanitize_method(method) == method)
    finally:
        if saved is not None:
            os.environ[OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS] = saved


#: Methods the stock instrumentations keep; any other becomes ``_OTHER`` (span name ``HTTP``).
KNOWN_METHODS = _known_methods()
_CACHE_LIMIT = 512  # entries per lookup cache; a full cache is emptied (keys may come from clients)
_REDACTED = "[REDACTED]"


def _list(value: Optional[str]) -> list[str]:
    """The stock ``a, b`` list format: split on commas, strip each item (empty items kept)."""
    return [item.strip() for item in value.split(",")] if value else []


def _pattern(items: list[str]) -> Optional[re.Pattern[str]]:
    return re.compile("|".join(items), re.IGNORECASE) if items else None


@dataclass(frozen=True)
class HttpConfig:
    """The server-span settings, as the stock Django and Flask instrumentations read them."""

    excluded: Any  # opentelemetry.util.http.ExcludeList, or None when nothing is excluded
    traced_request_attrs: tuple[str, ...]
    request_headers: Optional[re.Pattern[str]]
    response_headers: Optional[re.Pattern[str]]
    sanitize: Optional[re.Pattern[str]]
    capture_all_methods: bool

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], framework: str = "DJANGO") -> HttpConfig:
        """Read ``OTEL_PYTHON_<framework>_*`` / ``OTEL_PYTHON_*`` and the header-capture variables
        (traced request attributes: Django's only)."""
        excluded = environ.get(f"OTEL_PYTHON_{framework}_EXCLUDED_URLS", environ.get("OTEL_PYTHON_EXCLUDED_URLS", ""))
        exclude_list = parse_excluded_urls(excluded) if excluded else None
        traced = environ.get("OTEL_PYTHON_DJANGO_TRACED_REQUEST_ATTRS") if framework == "DJANGO" else None
        return cls(
            excluded=exclude_list,
            traced_request_attrs=tuple(_list(traced)),
            request_headers=_pattern(_list(environ.get(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST))),
            response_headers=_pattern(_list(environ.get(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE))),
            sanitize=_pattern(_list(environ.get(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS))),
            capture_all_methods=bool(environ.get(OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS)),
        )

    def method(self, raw: str) -> str:
        """``http.method`` as the stock helpers normalise it (``_OTHER`` for unknown methods)."""
        upper = raw.upper()
        return upper if self.capture_all_methods or upper in KNOWN_METHODS else "_OTHER"


def _memo(cache: dict[Any, Any], key: Any, compute: Callable[[Any], Any]) -> Any:
    """``cache[key]``, computed on a miss; a full cache starts over (keys may come from clients)."""
    try:
        return cache[key]
    except KeyError:
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        value = cache[key] = compute(key)
        return value


_user_agents: dict[str, Optional[str]] = {}  # User-Agent -> user_agent.synthetic.type
_ports: dict[str, int] = {}  # SERVER_PORT -> its number (int() of a str costs more than the look-up)


def _load_native_attributes() -> Optional[Callable[[Any, bool], Optional[dict[str, Any]]]]:
    """The C twin of :func:`request_attributes` for a common environ (``server_attributes(environ,
    capture_all_methods)``, None when Python must decide), sharing this module's caches; None
    without the extension."""
    native = accel.load()
    if native is None:
        return None
    native.set_http_helpers(KNOWN_METHODS, _ports, _user_agents, detect_synthetic_user_agent, _CACHE_LIMIT)
    return native.server_attributes


#: ``server_attributes(environ, capture_all_methods)`` of otel_uwsgi.native._accel, or None.
native_request_attributes = _load_native_attributes()


def request_attributes(environ: Mapping[str, Any], config: HttpConfig) -> dict[str, Any]:
    """Server-span attributes of a WSGI request in the default (pre-1.21) semantic conventions.

    The same keys, values and order as ``opentelemetry.instrumentation.wsgi.collect_request_attributes``
    in its default mode.  A request with what every WSGI server sends (method, server name and
    port, scheme, Host, target, peer address) gets those in one dict display and the optional
    rest after them; anything else is built key by key by :func:`_request_attributes`.
    """
    get = environ.get
    method = config.method(get("REQUEST_METHOD", "")).strip()
    server_name, scheme, host, port = get("SERVER_NAME"), get("wsgi.url_scheme"), get("HTTP_HOST"), get("SERVER_PORT")
    target = get("RAW_URI")
    if target is None:
        target = get("REQUEST_URI")
    remote_addr = get("REMOTE_ADDR")
    if not (method and server_name is not None and scheme and host and port and target and remote_addr):
        return _request_attributes(environ, config)
    try:
        host_port = _memo(_ports, port, int)
    except (TypeError, ValueError):
        return _request_attributes(environ, config)
    attrs = {
        "http.method": method,
        "http.server_name": server_name,
        "http.scheme": scheme,
        "net.host.name": host,
        "http.host": host,
        "net.host.port": host_port,
        "http.target": target,
        "net.peer.ip": remote_addr,
    }
    _peer_and_rest(attrs, get, remote_addr)
    return attrs


def _peer_and_rest(attrs: dict[str, Any], get: Callable[..., Any], remote_addr: Any) -> None:
    """The attributes after ``net.peer.ip``: peer port and name, user agent, flavor."""
    remote_port = get("REMOTE_PORT")
    if remote_port:
        try:
            attrs["net.peer.port"] = int(remote_port)
        except (TypeError, ValueError):
            pass
    remote_host = get("REMOTE_HOST")
    if remote_host and remote_host != remote_addr:
        attrs["net.peer.name"] = remote_host
    user_agent = get("HTTP_USER_AGENT")
    if user_agent:
        if not isinstance(user_agent, str):
            user_agent = normalize_user_agent(user_agent)
        if user_agent:
            attrs["http.user_agent"] = user_agent
            synthetic = _memo(_user_agents, user_agent, detect_synthetic_user_agent)
            if synthetic:
                attrs["user_agent.synthetic.type"] = synthetic
    flavor = get("SERVER_PROTOCOL", "")
    if flavor.upper().startswith("HTTP/"):
        flavor = flavor[5:]
    if flavor:
        attrs["http.flavor"] = flavor


def _request_attributes(environ: Mapping[str, Any], config: HttpConfig) -> dict[str, Any]:
    """:func:`request_attributes` key by key, for any environ."""
    get = environ.get
    attrs: dict[str, Any] = {}
    method = config.method(get("REQUEST_METHOD", "")).strip()
    if method:
        attrs["http.method"] = method
    server_name = get("SERVER_NAME")
    if server_name is not None:
        attrs["http.server_name"] = server_name
    scheme = get("wsgi.url_scheme")
    if scheme:
        attrs["http.scheme"] = scheme
    host = get("HTTP_HOST")
    if host:
        attrs["net.host.name"] = attrs["http.host"] = host
    port = get("SERVER_PORT")
    if port:
        try:
            attrs["net.host.port"] = int(port)
        except ValueError:
            pass
    target = get("RAW_URI")
    if target is None:
        target = get("REQUEST_URI")
    if target:
        attrs["http.target"] = target
    else:
        from wsgiref.util import request_uri

        attrs["http.url"] = redact_url(request_uri(environ))  # type: ignore[arg-type]
    remote_addr = get("REMOTE_ADDR")
    if remote_addr:
        attrs["net.peer.ip"] = remote_addr
    _peer_and_rest(attrs, get, remote_addr)
    return attrs


class HeaderCapture:
    """Captured request/response headers as span attributes, decided once per header name.

    Names are matched with ``fullmatch`` and redacted with ``search``, case-insensitively, as the
    stock helpers do; the verdict for each name is cached.
    """

    def __init__(self, pattern: Optional[re.Pattern[str]], sanitize: Optional[re.Pattern[str]], prefix: str) -> None:
        self._pattern, self._sanitize, self._prefix = pattern, sanitize, prefix
        self._verdicts: dict[str, Optional[tuple[str, bool]]] = {}

    def __bool__(self) -> bool:
        return self._pattern is not None

    def _verdict(self, cache_key: str, name: str) -> Optional[tuple[str, bool]]:
        """``(attribute key, redact)`` for a header name as the stock code sees it, or None."""
        if len(self._verdicts) >= _CACHE_LIMIT:
            self._verdicts.clear()
        verdict: Optional[tuple[str, bool]] = None
        if self._pattern is not None and self._pattern.fullmatch(name):
            redact = bool(self._sanitize and self._sanitize.search(name))
            verdict = (self._prefix + name.lower().replace("-", "_"), redact)
        self._verdicts[cache_key] = verdict
        return verdict

    def from_environ(self, environ: Mapping[str, Any]) -> dict[str, list[str]]:
        """Request headers (``HTTP_*`` keys; the stock code names them ``X-CUSTOM-A``)."""
        out: dict[str, list[str]] = {}
        if self._pattern is None:
            return out
        verdicts = self._verdicts
        for key, value in environ.items():
            if not key.startswith("HTTP_"):
                continue
            try:
                verdict = verdicts[key]
            except KeyError:
                verdict = self._verdict(key, key[5:].replace("_", "-"))
            if verdict is not None:
                out[verdict[0]] = [_REDACTED if verdict[1] else value]
        return out

    def from_items(self, items: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
        """Response headers; repeated names are joined with commas first, as the stock code does."""
        out: dict[str, list[str]] = {}
        if self._pattern is None:
            return out
        verdicts = self._verdicts
        for name, value in items:
            name = name.lower()
            verdict = verdicts.get(name, False)
            if verdict is False:
                verdict = self._verdict(name, name)
            if verdict is None:
                continue
            key, redact = verdict  # type: ignore[misc]
            if key in out:
                if not redact:
                    out[key][0] += "," + value
            else:
                out[key] = [_REDACTED if redact else value]
        return out
