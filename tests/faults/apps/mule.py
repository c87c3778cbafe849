"""A uWSGI mule (``mule = tests/faults/apps/mule.py``): one span per message, a child of the
request that sent it.  The provider is otel-uwsgi's, built in this mule by the post-fork hook."""

import json

import uwsgi  # type: ignore[import-not-found]
from opentelemetry import propagate, trace

tracer = trace.get_tracer("otel_uwsgi.tests.mule")

while True:
    carrier = json.loads(uwsgi.mule_get_msg())
    with tracer.start_as_current_span("mule-task", context=propagate.extract(carrier)) as span:
        span.set_attribute("task.id", carrier.get("task", ""))
    print(f"mule-task {carrier.get('task', '')} ended", flush=True)
