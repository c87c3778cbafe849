"""Switching the fast path on: the middleware into ``settings.MIDDLEWARE``, DB spans on Django's
connections."""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)

MIDDLEWARE = "otel_uwsgi.instrumentation.fast.middleware.ServerSpanMiddleware"


def _position(length: int) -> int:
    """``OTEL_PYTHON_DJANGO_MIDDLEWARE_POSITION`` as the stock instrumentor reads it (default 0)."""
    try:
        position = int(os.environ.get("OTEL_PYTHON_DJANGO_MIDDLEWARE_POSITION", ""))
    except ValueError:
        return 0
    return position if 0 <= position <= length else 0


def add_middleware(scope: tuple[str, str]) -> bool:
    """Read the settings and put the server-span middleware into ``settings.MIDDLEWARE``; its spans
    carry the instrumentation ``scope`` (name, version).

    Call once Django's settings are configured, before the handler loads its middleware.
    """
    if os.environ.get("OTEL_PYTHON_DJANGO_INSTRUMENT") == "False":
        logger.info("otel-uwsgi: OTEL_PYTHON_DJANGO_INSTRUMENT=False: Django requests are not traced")
        return False
    from django.conf import settings

    from otel_uwsgi.instrumentation.fast.http import HttpConfig
    from otel_uwsgi.instrumentation.fast.middleware import Setup, configure
    from otel_uwsgi.instrumentation.fast.server_span import http_mode

    mode, default_mode, schema_url = http_mode()
    configure(Setup(HttpConfig.from_environ(os.environ), mode, default_mode, schema_url, scope))
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    if MIDDLEWARE not in middleware:
        middleware.insert(_position(len(middleware)), MIDDLEWARE)
        settings.MIDDLEWARE = middleware
    return True


def install_db(system: str, connection_attributes: dict[str, str], scope: tuple[str, str]) -> bool:
    """Trace Django's ``system`` (``mysql``, ``postgresql``, ``sqlite``) queries, with the
    instrumentation ``scope`` (name, version); False without Django."""
    from otel_uwsgi.instrumentation.fast.db import install

    return install(system, connection_attributes, scope)
