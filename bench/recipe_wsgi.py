"""The demo app traced the way the copied recipe does it (``sdk-recipe`` in ``bench/run.py``): the
stock SDK and contrib instrumentations, a TracerProvider built in each worker at ``@postfork``,
OTLP/HTTP with gzip through a BatchSpanProcessor. No otel-uwsgi code runs: the Django site
(default), or the demo Flask app (``OTEL_UWSGI_DEMO_APP=flask``) with its ``import otel_uwsgi.auto``
made a no-op and FlaskInstrumentor instead.

Beyond the recipe's Django + MySQL, the instrumentations the whole-stack view needs (psycopg,
Redis, requests) are added the same stock way, so every configuration traces the same calls.
"""

import os
import socket
import sys
import types

import uwsgi
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from uwsgidecorators import postfork

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "otel_uwsgi.demo.settings")


def _option(name: str, default: str) -> str:
    value = uwsgi.opt.get(name)
    return value.decode() if isinstance(value, bytes) else (value or default)


@postfork
def instrument() -> None:
    resource = Resource.create(
        {
            "service.name": _option("otel-service-name", "recipe"),
            "host.name": socket.gethostname(),
            "process.pid": os.getpid(),
        }
    )
    provider = TracerProvider(resource=resource)
    endpoint = _option("otel-exporter-otlp-endpoint", "http://127.0.0.1:4318").rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, compression=Compression.Gzip)))
    trace.set_tracer_provider(provider)


for module, name in (
    ("opentelemetry.instrumentation.psycopg", "PsycopgInstrumentor"),
    ("opentelemetry.instrumentation.redis", "RedisInstrumentor"),
    ("opentelemetry.instrumentation.requests", "RequestsInstrumentor"),
):
    try:
        instrumentor = getattr(__import__(module, fromlist=[name]), name)
    except ImportError:
        continue
    instrumentor().instrument()

if os.environ.get("OTEL_UWSGI_DEMO_APP") == "flask":
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    FlaskInstrumentor().instrument()  # before the app's `from flask import Flask`, as its docs say
    sys.modules["otel_uwsgi.auto"] = types.ModuleType("otel_uwsgi.auto")  # the app's `import otel_uwsgi.auto`
    from otel_uwsgi.demo.flask_app import application
else:
    import MySQLdb
    from django.core.wsgi import get_wsgi_application
    from opentelemetry.instrumentation.dbapi import trace_integration
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    DjangoInstrumentor().instrument()
    trace_integration(MySQLdb, "connect", "mysql")
    application = get_wsgi_application()
