"""Switching the Flask fast path on, where its spans were proven equal to the stock ones.

:func:`instrument_flask_fast` installs :mod:`.flask_request` for the Flask and
opentelemetry-instrumentation-flask releases and semantic-convention modes the equivalence test
(tests/unit/instrumentation/fast/test_flask_spans_equal_stock.py) ran with; anywhere else, or
with options meant for the stock instrumentor, it says why in one line and the caller
instruments with the stock FlaskInstrumentor.
"""

from __future__ import annotations

import logging
import os
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Optional

logger = logging.getLogger("otel_uwsgi.instrumentation")

#: Release series (major.minor) of Flask, and releases of opentelemetry-instrumentation-flask, the
#: spans were proven equal with (Flask 3.0.3 and 3.1.3); widen only after the equivalence test
#: passes with the new one (another release first on PYTHONPATH: the test's subprocesses keep it).
VERIFIED_FLASK = ("3.0", "3.1")
VERIFIED_INSTRUMENTATION = ("0.66b1",)
#: OTEL_SEMCONV_STABILITY_OPT_IN modes (for HTTP) the test covers.
VERIFIED_MODES = ("default", "http", "http/dup")


def instrument_flask_fast(options: Optional[dict[str, Any]] = None) -> bool:
    """Trace every Flask app (created before or after this call) with the fast server span.

    False, with one info line naming the reason, where its spans are not proven equal to the
    stock instrumentation's: ``options`` for the stock instrumentor (hooks, excluded URLs,
    sqlcommenter options, providers), another Flask or instrumentation release, another
    semantic-convention mode.  Then nothing is changed: instrument with the stock one.
    """
    reason = _unverified(options or {})
    if reason is None:
        try:
            from otel_uwsgi.instrumentation.fast import flask_request
            from otel_uwsgi.instrumentation.fast.http import HttpConfig
            from otel_uwsgi.instrumentation.fast.server_span import http_mode

            mode, default_mode, schema_url = http_mode()
            if mode.value not in VERIFIED_MODES:
                reason = f"OTEL_SEMCONV_STABILITY_OPT_IN gives the HTTP mode {mode.value!r}, not one verified"
        except ImportError as error:
            reason = f"{type(error).__name__}: {error}"
    if reason is not None:
        logger.info("otel-uwsgi: Flask is traced by the stock instrumentation, not the fast path: %s", reason)
        return False
    versions = flask_request.Versions(version("flask"), version("opentelemetry-instrumentation-flask"))
    http = HttpConfig.from_environ(os.environ, "FLASK")
    flask_request.install(flask_request.FlaskSetup(http, mode, default_mode, schema_url, versions))
    return True


def _unverified(options: dict[str, Any]) -> Optional[str]:
    """Why the fast spans are not known to equal the stock ones here, or None."""
    if options:
        return f"instrumentation_options('flask', {', '.join(sorted(options))}) are for the stock instrumentor"
    try:
        flask, instrumentation = version("flask"), version("opentelemetry-instrumentation-flask")
    except PackageNotFoundError as error:
        return f"{error.name} is not installed"
    if ".".join(flask.split(".")[:2]) not in VERIFIED_FLASK:
        return f"Flask {flask} is not a release it was verified with ({', '.join(VERIFIED_FLASK)}.x)"
    if instrumentation not in VERIFIED_INSTRUMENTATION:
        return (
            f"opentelemetry-instrumentation-flask {instrumentation} is not a release it was verified with "
            f"({', '.join(VERIFIED_INSTRUMENTATION)})"
        )
    return None
