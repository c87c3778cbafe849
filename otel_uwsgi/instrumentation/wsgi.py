"""A plain WSGI application (no framework): opentelemetry-instrumentation-wsgi's middleware.

Not for an app whose framework's instrumentation is on (Flask, Django): that one names server
spans by route and sets ``http.route``; wrapped too, the middleware's span is the server span,
named by URL (a backend sees one name per URL), without ``http.route``.  Such an app is returned
unchanged, with one warning naming where to remove the call.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any, Optional

from otel_uwsgi.instrumentation import late_import

logger = logging.getLogger(__name__)


def wrap_wsgi(application: Callable[..., Any]) -> Callable[..., Any]:
    """Trace a plain WSGI app: ``application = otel_uwsgi.wrap_wsgi(application)``."""
    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

    if isinstance(application, OpenTelemetryMiddleware):
        return application
    traced = traced_framework(application)
    if traced is not None:
        framework, module = traced
        logger.warning(
            "otel-uwsgi: wrap_wsgi() returned the %s app of %r unchanged: %s's instrumentation traces it "
            "(server spans named by route, with http.route), and wrapping it too would name them by URL; "
            "remove otel_uwsgi.wrap_wsgi() from %s",
            framework,
            module,
            framework,
            late_import.caller_file() or "the wsgi file",
        )
        return application
    return OpenTelemetryMiddleware(application)


def traced_framework(application: Any) -> Optional[tuple[str, str]]:
    """(framework, the app's module) when ``application`` is a Flask app or a Django handler whose
    framework's instrumentation is on in this process; else None.

    Types are compared, never ``isinstance()``: that asks a lazy proxy for its ``__class__``."""
    target = getattr(application, "__self__", application)  # a bound app.wsgi_app counts as the app
    kind = type(target)
    flask = sys.modules.get("flask.app")
    if flask is not None and issubclass(kind, flask.Flask):
        return ("Flask", str(target.import_name)) if _flask_traced(target) else None
    handlers = sys.modules.get("django.core.handlers.wsgi")
    if handlers is not None and issubclass(kind, handlers.WSGIHandler):
        traced = _django_traced() and not late_import.built_before(target)
        return ("Django", os.environ.get("DJANGO_SETTINGS_MODULE", "the project")) if traced else None
    return None


def _flask_traced(app: Any) -> bool:
    """The stock instrumentation marks each app it traces (made from its Flask subclass, or given
    to ``instrument_app``); an app made before it is not.  otel-uwsgi's fast path adopts them all."""
    from otel_uwsgi.instrumentation.registry import on_fast_path

    return bool(app.__dict__.get("_is_instrumented_by_opentelemetry")) or "flask" in on_fast_path()


def _django_traced() -> bool:
    """Whether Django's requests are traced here: by otel-uwsgi's registry (stock or fast path),
    or by a DjangoInstrumentor the app ran itself."""
    from otel_uwsgi.instrumentation.registry import instrument

    if "django" in instrument(("none",)):  # "none" instruments nothing and returns what is instrumented
        return True
    try:
        from opentelemetry.instrumentation.django import DjangoInstrumentor
    except ImportError:
        return False
    return bool(DjangoInstrumentor().is_instrumented_by_opentelemetry)
