"""Under `opentelemetry-instrument uwsgi ...` the agent builds its providers in the master and puts
a LoggingHandler on the root logger, which used to swallow otel-uwsgi's warning: it is in
uWSGI's log now, once, and the app serves."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from otel_uwsgi.tools.harness import UwsgiServer, find_uwsgi, free_port, owned_overrides, prepare_ini
from otel_uwsgi.tools.load import http_get

from ..conftest import INI, ROOT, wait_until

pytestmark = pytest.mark.integration


def test_the_warning_about_the_agents_provider_reaches_uwsgis_log(tmp_path, receiver):
    agent = shutil.which("opentelemetry-instrument", path=str(Path(sys.executable).parent)) or shutil.which(
        "opentelemetry-instrument"
    )
    if agent is None:
        pytest.fail("opentelemetry-instrument is not installed: pip install opentelemetry-distro (in otel-uwsgi[test])")
    port = free_port()
    overrides = owned_overrides(port, receiver.endpoint, str(tmp_path / "journal"))
    text = prepare_ini(INI / "minimal.ini", {**overrides, "processes": "2"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_SERVICE_NAME": "agent",
        }
    )
    server = UwsgiServer(text, env=env, cwd=str(ROOT), workdir=str(tmp_path / "uwsgi"))
    server.command = [agent, find_uwsgi()]
    server.start()
    try:
        assert server.wait_workers(2, 30), server.log()[-3000:]

        def answers() -> bool:
            try:
                return http_get("127.0.0.1", port, "/", 5) == 200
            except OSError:
                return False

        assert wait_until(answers, 30), server.log()[-3000:]
    finally:
        server.stop()
    log = server.log()
    warning = "otel-uwsgi: WARNING: a TracerProvider (opentelemetry.sdk.trace.TracerProvider) was already set"
    assert log.count(warning) == 1, log[-3000:]
