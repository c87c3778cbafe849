"""A plain WSGI application (no framework): opentelemetry-instrumentation-wsgi's middleware."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def wrap_wsgi(application: Callable[..., Any]) -> Callable[..., Any]:
    """Trace a plain WSGI app: ``application = otel_uwsgi.wrap_wsgi(application)``."""
    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

    if isinstance(application, OpenTelemetryMiddleware):
        return application
    return OpenTelemetryMiddleware(application)
