"""`otel_uwsgi.setup()` traces a non-uWSGI process and flushes its queue at exit."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_setup_exports_from_a_plain_process(receiver):
    code = (
        "import otel_uwsgi\n"
        "assert otel_uwsgi.setup(instrumentations=('none',))\n"
        "from opentelemetry import trace\n"
        "with trace.get_tracer('script').start_as_current_span('job'):\n"
        "    pass\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SERVICE_NAME": "script",
                "OTEL_BSP_SCHEDULE_DELAY": "60000"})
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert receiver.wait_for(lambda s: any(x.name == "job" for x in s), 10)
    span = next(s for s in receiver.snapshot() if s.name == "job")
    assert span.resource["service.name"] == "script" and span.resource["process.pid"] != os.getpid()
    assert span.resource["uwsgi.process.type"] == "process"
