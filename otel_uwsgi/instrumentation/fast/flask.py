"""Switching the Flask fast path on: :func:`instrument_flask_fast` installs :mod:`.flask_request`
where :mod:`.verified` found its spans proven equal to the stock instrumentation's
(tests/unit/instrumentation/fast/test_flask_spans_equal_stock.py); elsewhere the registry leaves
Flask to the stock FlaskInstrumentor, with one line saying why.
"""

from __future__ import annotations

import os
from importlib.metadata import version


def instrument_flask_fast() -> None:
    """Trace every Flask app (created before or after this call) with the fast server span; call
    it where :mod:`.verified` found its spans proven equal to the stock instrumentation's."""
    from otel_uwsgi.instrumentation.fast import flask_request
    from otel_uwsgi.instrumentation.fast.http import HttpConfig
    from otel_uwsgi.instrumentation.fast.server_span import http_mode

    mode, default_mode, schema_url = http_mode()
    versions = flask_request.Versions(version("flask"), version("opentelemetry-instrumentation-flask"))
    http = HttpConfig.from_environ(os.environ, "FLASK")
    flask_request.install(flask_request.FlaskSetup(http, mode, default_mode, schema_url, versions))
