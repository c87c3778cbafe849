"""Logs on real uWSGI (master + 4 workers) against the real receiver (/v1/logs, gzip protobuf):
records written inside a traced request carry its trace and span ids, in uWSGI's log and over
OTLP, from every worker, and none is lost when the workers exit."""

from __future__ import annotations

import re

import pytest

from ..conftest import ROOT, wait_until

pytestmark = pytest.mark.integration

APP = {"module": "tests.integration.apps.logging_app:application", "pythonpath": str(ROOT)}
_LINE = re.compile(r"\[app\.requests\] .*trace_id=([0-9a-f]{32}) span_id=([0-9a-f]{16}) .* - handled /hello")


def _server_span_ids(receiver) -> dict[tuple[str, str], int]:
    return {(s.trace_id, s.span_id): s.pid for s in receiver.server_spans()}


def test_log_lines_and_otlp_records_are_correlated_with_their_request_span(start_uwsgi, receiver):
    """With otel-python-log-correlation, each line in uWSGI's log names its request's trace and span;
    with otel-logs-exporter = otlp the same records arrive with those ids, from every worker pid."""
    extra = {**APP, "otel-logs-exporter": "otlp", "otel-python-log-correlation": "true",
             "otel-python-log-level": "info"}
    server = start_uwsgi("minimal.ini", extra=extra, ready_path="/ready")
    server.until_every_worker_served("/hello")
    server.hammer("/hello", 20)
    server.stop()
    served = server.uwsgi.served()
    hello = served.total - 1  # less the readiness probe
    assert receiver.wait_for(lambda s: sum(x.kind == "SERVER" for x in s) >= served.total, 10)
    spans = _server_span_ids(receiver)

    in_log = _LINE.findall(server.uwsgi.log())
    assert len(in_log) == hello and set(in_log) <= set(spans), "log lines without their request's span ids"

    def exported():
        return [r for r in receiver.log_records() if str(r.body).startswith("handled /hello")]

    assert wait_until(lambda: len(exported()) >= hello, 10), len(exported())
    records = exported()
    assert len(records) == hello
    assert {(r.trace_id, r.span_id) for r in records} == set(in_log)
    for r in records:
        assert r.pid == spans[(r.trace_id, r.span_id)], "a record's resource is not its worker's"
        assert r.severity_text == "INFO" and r.scope == "app.requests"
        assert r.resource["service.name"] == "demo-plain"
    assert {r.pid for r in records} == set(served.spawned) and len(served.spawned) == 4


def test_exceptions_are_exported_with_their_stacktrace_and_nothing_without_the_option(start_uwsgi, receiver):
    """logger.exception() inside a request arrives with exception.* attributes; records outside a
    span carry no ids; the SDK's own loggers are never exported (a failing export cannot feed itself)."""
    server = start_uwsgi("minimal.ini", extra={**APP, "otel-logs-exporter": "otlp"}, ready_path="/ready")
    server.until_every_worker_served("/ready")  # no worker is still starting when the stop comes
    server.get("/fail")
    server.stop()
    assert wait_until(lambda: any(r.body == "request failed" for r in receiver.log_records()), 10), (
        receiver.log_records(), server.uwsgi.log()[-3000:])
    failed = [r for r in receiver.log_records() if r.body == "request failed"][0]
    assert failed.attributes["exception.type"] == "ValueError"
    assert "broken on purpose" in failed.attributes["exception.stacktrace"]
    assert failed.severity_text == "ERROR" and failed.trace_id != "0" * 32
    # without otel-python-log-level the root logger stays at WARNING: the INFO lines are not exported
    assert not [r for r in receiver.log_records() if str(r.body).startswith("handled")]
    assert not [r for r in receiver.log_records() if r.scope.startswith("opentelemetry")]
