"""Telemetry never stops the app (issue 23): on an OpenTelemetry whose private parts the fast code
relies on have moved, the app loads and serves from every worker, traced by the SDK's own code,
with one info line per part that steps aside; a failure inside otel-uwsgi at import is one logged
error and the app serves untraced."""

from __future__ import annotations

import pytest

from ..conftest import ROOT

pytestmark = pytest.mark.integration

APP = {"module": "tests.integration.apps.changed_sdk:application", "pythonpath": str(ROOT)}


def test_moved_private_sdk_names_leave_the_app_serving_and_traced(start_uwsgi, receiver):
    server = start_uwsgi("minimal.ini", extra=APP, env={"CHANGED_SDK": "hidden"})
    server.until_every_worker_served("/")
    answers = server.hammer("/", 40)
    server.stop()
    served = server.uwsgi.served()
    assert all(status == 200 for status, _ in answers)
    assert receiver.wait_for(lambda s: sum(x.kind == "SERVER" for x in s) >= served.total, 10)
    assert {s.pid for s in receiver.server_spans()} == set(served.spawned)
    assert receiver.stats.encodings == {"gzip"}
    log = server.uwsgi.log()
    assert "Traceback" not in log, log[-3000:]
    # each part that stepped aside says so, once per worker at most (a worker makes one exporter)
    for line in ("the lean span start is unavailable", "otel-fast-export is unavailable"):
        assert 1 <= log.count(line) <= len(served.spawned), (line, log[-3000:])


def test_a_failure_inside_otel_uwsgi_at_import_leaves_the_app_serving(start_uwsgi, receiver):
    server = start_uwsgi("minimal.ini", extra=APP, env={"CHANGED_SDK": "broken"})
    answers = server.hammer("/", 20)
    server.stop()
    assert all(status == 200 for status, _ in answers)
    log = server.uwsgi.log()
    assert log.count("could not set up tracing") == 1, log[-3000:]
    assert "RuntimeError: a bug planted by the test" in log
    assert receiver.snapshot() == []
