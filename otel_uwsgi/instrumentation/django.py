"""Django: instrumented when Django builds its middleware chain, so settings exist by then.

``DjangoInstrumentor().instrument()`` before settings are configured would configure empty
settings; after ``get_wsgi_application()`` it yields no server spans at all.  Hooking
``BaseHandler.load_middleware`` runs it at the one right moment, whatever the wsgi file's order.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Optional

from otel_uwsgi.instrumentation.missing import fast_unavailable, missing

logger = logging.getLogger(__name__)


def instrument_django(
    explicit: bool, fast: Optional[tuple[str, str]] = None, options: Optional[dict[str, Any]] = None
) -> bool:
    """Instrument Django when it builds its middleware chain: the stock DjangoInstrumentor with
    ``options`` (``request_hook``, ``response_hook``, ``is_sql_commentor_enabled`` ...), or given
    ``fast`` (the stock scope, name and version, its spans report), otel-uwsgi's middleware.  False
    when Django or its instrumentation is missing."""
    try:
        from django.core.handlers import base
        from opentelemetry.instrumentation.django import DjangoInstrumentor
    except ImportError as exc:
        missing("django", explicit, "otel-uwsgi[django]", exc)
        return False

    def instrument_now() -> None:
        if fast is not None:  # the fast path: otel-uwsgi's own middleware instead of the stock one
            try:
                from otel_uwsgi.instrumentation.fast.enable import add_middleware

                add_middleware(fast)
                return
            except ImportError as error:  # an instrumentation release it was not built for
                fast_unavailable(error)
        instrumentor = DjangoInstrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(**(options or {}))

    from django.apps import apps

    if apps.ready:
        # The app may already have built its middleware chain: those handlers stay untraced.
        from otel_uwsgi.instrumentation.late_import import django_message

        logger.warning("%s", django_message())
        instrument_now()
        return True

    original = base.BaseHandler.load_middleware
    if getattr(original, "_otel_uwsgi", False):
        return True

    @functools.wraps(original)
    def load_middleware(self: Any, *args: Any, **kwargs: Any) -> Any:
        # Settings are configured by now (django.setup() ran), so the instrumentor sees the real
        # MIDDLEWARE instead of configuring empty settings, as it would at import time.
        try:
            instrument_now()
        except Exception:  # noqa: BLE001 - a tracing problem must not stop the app
            logger.exception("otel-uwsgi: could not instrument Django")
        return original(self, *args, **kwargs)

    load_middleware._otel_uwsgi = True  # type: ignore[attr-defined]
    base.BaseHandler.load_middleware = load_middleware
    return True
