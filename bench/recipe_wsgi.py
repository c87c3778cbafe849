"""The demo Django site traced the way the copied recipe does it (``sdk-recipe`` in ``bench/run.py``):
the stock SDK and contrib instrumentations, a TracerProvider built in each worker at
``@postfork``, OTLP/HTTP with gzip through a BatchSpanProcessor. No otel-uwsgi code runs.

Beyond the recipe's Django + MySQL, the instrumentations the whole-stack view needs (psycopg,
Redis, requests) are added the same stock way, so every configuration traces the same calls.
"""

import os
import socket

import uwsgi
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.dbapi import trace_integration
from opentelemetry.instrumentation.django import DjangoInstrumentor
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


import MySQLdb  # noqa: E402

DjangoInstrumentor().instrument()
trace_integration(MySQLdb, "connect", "mysql")
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

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
