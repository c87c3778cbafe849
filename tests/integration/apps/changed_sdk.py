"""A plain WSGI app on an OpenTelemetry whose private parts moved, as an upgrade can do.

Before ``import otel_uwsgi.auto``, with ``CHANGED_SDK`` in the environment:

* ``hidden``: the private modules otel-uwsgi's fast code imports are gone
  (``opentelemetry.sdk.trace._tracer_metrics``, the exporter's ``_urllib3`` transport and
  ``_common``), and ``opentelemetry.sdk.trace`` no longer offers ``SynchronousMultiSpanProcessor``
  or ``BoundedList`` to importers (the SDK's own code still sees them: only importers are fooled).
* ``broken``: the instrumentation registry raises, as a bug in otel-uwsgi would.
"""

import os
import sys
import types

MODE = os.environ.get("CHANGED_SDK", "")

if MODE == "hidden":
    import opentelemetry.exporter.otlp.proto.http.trace_exporter  # noqa: F401 - the SDK keeps what it holds
    import opentelemetry.sdk.trace as real
    import opentelemetry.sdk.util as real_util

    for name in (
        "opentelemetry.sdk.trace._tracer_metrics",
        "opentelemetry.exporter.http.transport._urllib3",
        "opentelemetry.exporter.otlp.proto.http._common",
    ):
        sys.modules[name] = None  # type: ignore[assignment]  # importing it raises ImportError

    def _without(module: types.ModuleType, names: set) -> types.ModuleType:
        proxy = types.ModuleType(module.__name__, module.__doc__)
        proxy.__dict__.update({k: v for k, v in vars(module).items() if k not in names})
        sys.modules[module.__name__] = proxy
        return proxy

    _without(real, {"SynchronousMultiSpanProcessor"})
    _without(real_util, {"BoundedList"})
elif MODE == "broken":
    import otel_uwsgi.instrumentation.registry as registry

    def _broken(*args, **kwargs):
        raise RuntimeError("a bug planted by the test")

    registry.instrument = _broken

import otel_uwsgi  # noqa: E402
import otel_uwsgi.auto  # noqa: E402,F401


def _app(environ, start_response):
    body = f"ok from {os.getpid()}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


application = otel_uwsgi.wrap_wsgi(_app)
