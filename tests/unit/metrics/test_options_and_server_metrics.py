"""Metrics options, temporality, and the pure parts of uWSGI server metrics."""

from __future__ import annotations

import re

import pytest
from opentelemetry.sdk.metrics import Counter, Histogram, ObservableCounter, UpDownCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality

from otel_uwsgi.config.settings import ConfigError, load
from otel_uwsgi.metrics import server as server_metrics
from otel_uwsgi.metrics import stats_server
from otel_uwsgi.metrics.provider import temporality


def test_metrics_and_logs_are_off_by_default():
    """Upgrading keeps sending traces only: metrics and logs are opt-in (documented deviation from the SDK)."""
    settings = load({}, {})
    assert settings["otel-metrics-exporter"] == "none"
    assert settings["otel-logs-exporter"] == "none"
    assert settings["otel-metric-export-interval"] == 60000
    assert settings["otel-uwsgi-server-metrics"] is True


def test_standard_environment_variables_turn_them_on():
    """OTEL_METRICS_EXPORTER / OTEL_LOGS_EXPORTER / OTEL_METRIC_EXPORT_INTERVAL work as in the SDK."""
    settings = load({}, {"OTEL_METRICS_EXPORTER": "otlp", "OTEL_LOGS_EXPORTER": "console",
                         "OTEL_METRIC_EXPORT_INTERVAL": "500", "OTEL_PYTHON_LOG_CORRELATION": "true"})
    assert settings["otel-metrics-exporter"] == "otlp"
    assert settings["otel-logs-exporter"] == "console"
    assert settings["otel-metric-export-interval"] == 500
    assert settings["otel-python-log-correlation"] is True


def test_bad_metrics_value_in_ini_stops_startup_with_the_option_named():
    """A typo in the ini names the option and what is accepted."""
    with pytest.raises(ConfigError, match=r"otel-metrics-exporter .*accepted: otlp, console, none"):
        load({"otel-metrics-exporter": b"prometheus"}, {})
    with pytest.raises(ConfigError, match=r"otel-metric-export-interval"):
        load({"otel-metric-export-interval": b"10"}, {})






def test_temporality_preferences_follow_the_specification():
    """delta: counters and histograms delta, up-down counters cumulative; lowmemory: observable counters cumulative."""
    delta, low, cumulative = temporality("delta"), temporality("lowmemory"), temporality("cumulative")
    assert delta[Counter] is delta[Histogram] is delta[ObservableCounter] is AggregationTemporality.DELTA
    assert delta[UpDownCounter] is AggregationTemporality.CUMULATIVE
    assert low[Counter] is AggregationTemporality.DELTA and low[ObservableCounter] is AggregationTemporality.CUMULATIVE
    assert set(cumulative.values()) == {AggregationTemporality.CUMULATIVE}


def test_only_worker_one_owns_server_metrics():
    """Exactly one process of an instance exports uwsgi.*: worker 1 (not the master, mules, spooler, others)."""
    assert server_metrics.owns_server_metrics("worker", 1)
    for kind, wid in (("worker", 2), ("master", None), ("mule", None), ("spooler", None), ("process", None)):
        assert not server_metrics.owns_server_metrics(kind, wid)




def test_listen_overflows_reads_the_kernel_counter(tmp_path):
    """ListenOverflows is found by its header name, whatever its position."""
    path = tmp_path / "netstat"
    path.write_text("TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 0 7 9\nIpExt: InNoRoutes\nIpExt: 0\n")
    assert server_metrics.listen_overflows(str(path)) == 7
    assert server_metrics.listen_overflows(str(tmp_path / "missing")) is None


@pytest.mark.parametrize(
    ("address", "expected"),
    [("127.0.0.1:9191", ("127.0.0.1", 9191)), (":9191", ("127.0.0.1", 9191)), ("[::1]:9191", ("::1", 9191)),
     ("/run/uwsgi/stats.sock", "/run/uwsgi/stats.sock")],
)
def test_stats_server_addresses(address, expected):
    """uWSGI's `stats` value is a TCP address or a unix socket path."""
    assert stats_server.parse_stats_address(address)[1] == expected


def test_server_instruments_follow_the_naming_and_unit_conventions():
    """uwsgi.* names, UCUM units (By, s) or {annotations}, and a description for the docs/METRICS.md table."""
    names = [i[0] for i in server_metrics.INSTRUMENTS]
    assert len(names) == len(set(names))
    for name, kind, unit, callback, description in server_metrics.INSTRUMENTS:
        assert re.fullmatch(r"uwsgi(\.[a-z_]+)+", name), name
        assert unit in ("By", "s") or re.fullmatch(r"\{[a-z]+\}", unit), unit
        assert kind in ("counter", "updowncounter", "gauge") and description
        assert callable(getattr(server_metrics.ServerState, callback))


def test_worker_status_is_a_state_set():
    """Each worker reports 1 for its current state and 0 for the others; sigN counts as signal."""
    state = server_metrics.ServerState((None, False), ttl_s=60)
    state._snapshot = server_metrics.Snapshot(workers=[{"id": 1, "status": "busy"}, {"id": 2, "status": "sig9"}])
    state._at = float("inf")
    points = {(o.attributes["uwsgi.worker.id"], o.attributes["uwsgi.worker.status"]): o.value
              for o in state.worker_status(None)}
    assert points[(1, "busy")] == 1 and points[(1, "idle")] == 0
    assert points[(2, "signal")] == 1 and sum(v for (w, _), v in points.items() if w == 2) == 1
    state.closing = True
    assert state.worker_status(None) == [] and state.overflows(None) == []






