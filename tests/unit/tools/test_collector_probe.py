"""The check's probe of the ini's own collector (tools/collector.py): one real export per signal
through the SDK's exporters, each answer said precisely, no secret in what it says."""

from __future__ import annotations

import requests

from otel_uwsgi.config.settings import load
from otel_uwsgi.tools.collector import Probe, judge, mask_url, mask_urls, probe
from otel_uwsgi.tools.harness import free_port
from otel_uwsgi.tools.receiver import Fault, Receiver

TOKEN = "s3cr3t-token-value"


def test_credentials_and_query_values_in_an_endpoint_are_masked():
    assert mask_url("https://user:tok@collector:4318/v1/traces") == "https://***@collector:4318/v1/traces"
    assert mask_url("http://tok@c:4318?api_key=abc&x") == "http://***@c:4318?api_key=***&x"
    assert mask_url("http://collector:4318") == "http://collector:4318"
    text = "invalid value for otel-exporter-otlp-endpoint: 'http://u:pw@h:1/p?k=v'; accepted: a URL"
    assert mask_urls(text) == "invalid value for otel-exporter-otlp-endpoint: 'http://***@h:1/p?k=***'; accepted: a URL"


def _settings(endpoint: str, **options: str):
    return load({"otel-exporter-otlp-endpoint": endpoint, "otel-exporter-otlp-headers": f"x-api-key={TOKEN}",
                 **options}, {})


def _said(probes: list[Probe]) -> str:
    return "\n".join(str(p.as_dict()) for p in probes)


def test_a_healthy_collector_gets_a_probe_of_each_signal_with_the_inis_headers():
    with Receiver() as receiver:
        port = receiver.port
        settings = _settings(f"http://user:pw@127.0.0.1:{port}", **{"otel-metrics-exporter": "otlp",
                                                                             "otel-logs-exporter": "otlp"})
        probes = probe(settings)
        assert [(p.signal, p.ok, p.answer) for p in probes] == [
            (signal, True, "accepted (HTTP 200 OK)") for signal in ("traces", "metrics", "logs")
        ]
        assert [s.name for s in receiver.spans] == ["otel-uwsgi check: collector probe"]
        assert receiver.signal_requests == {"/v1/metrics": 1, "/v1/logs": 1}
        assert receiver.last_headers["x-api-key"] == TOKEN and receiver.last_headers["content-encoding"] == "gzip"
    assert probes[0].endpoint == f"http://***@127.0.0.1:{port}/v1/traces"
    assert TOKEN not in _said(probes) and "pw" not in probes[0].line


def test_a_refusing_collector_is_named_with_its_status_and_advice():
    with Receiver() as receiver:
        receiver.fault = Fault(status=401)
        [unauthorized] = probe(_settings(receiver.endpoint))
        receiver.fault = Fault(status=503)
        [unavailable] = probe(_settings(receiver.endpoint))
    assert not unauthorized.ok and unauthorized.answer == "refused: HTTP 401 Unauthorized"
    assert "check the headers" in unauthorized.advice and TOKEN not in unauthorized.line
    assert not unavailable.ok and unavailable.answer == "refused: HTTP 503 Service Unavailable"


def test_nothing_listening_a_hanging_collector_and_tls_to_plain_http_are_told_apart():
    [dead] = probe(_settings(f"http://127.0.0.1:{free_port()}"))
    assert not dead.ok and dead.answer == "nothing listening (connection refused)"
    with Receiver() as receiver:
        [tls] = probe(_settings(f"https://127.0.0.1:{receiver.port}"))
        receiver.fault = Fault(hang=True)
        [slow] = probe(_settings(receiver.endpoint, **{"otel-exporter-otlp-timeout": "0.5"}))
    assert tls.answer.startswith("TLS error: ") and not tls.ok
    assert slow.answer == "no answer within 0.5 s (timeout)" and not slow.ok


def test_judge_reads_the_status_of_a_response():
    response = requests.Response()
    response.status_code, response.reason = 403, "Forbidden"
    ok, answer, advice = judge(response, 10, "metrics")
    assert not ok and answer == "refused: HTTP 403 Forbidden" and "otel-exporter-otlp-metrics-headers" in advice
    response.status_code, response.reason = 404, "Not Found"
    assert "4318" in judge(response, 10, "traces")[2]


def test_nothing_is_probed_when_no_signal_is_exported():
    assert probe(load({"otel-traces-exporter": "none"}, {})) == []
    assert probe(load({"otel-sdk-disabled": "true"}, {})) == []
