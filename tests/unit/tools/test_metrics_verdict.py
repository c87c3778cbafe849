"""The metrics/logs verdict of `otel-uwsgi check` on synthetic receiver data."""

from __future__ import annotations

from otel_uwsgi.config.settings import load
from otel_uwsgi.tools.metrics_verdict import evaluate_signals, ini_options, settings_of
from otel_uwsgi.tools.receiver import ReceivedPoint

ON = load({"otel-metrics-exporter": "otlp", "otel-metric-export-interval": "1000"}, {})


def point(name: str, pid: int, t_ms: int, kind: str = "worker", **attrs) -> ReceivedPoint:
    resource = {"process.pid": pid, "uwsgi.process.type": kind, "service.instance.id": f"i{pid}"}
    return ReceivedPoint(name=name, kind="sum", unit="1", value=1, attributes=attrs, resource=resource,
                         scope="s", time_ns=t_ms * 1_000_000, start_ns=0)


def server(t_ms: int, master: int = 10) -> ReceivedPoint:
    return point("uwsgi.worker.requests", master, t_ms, kind="master", **{"uwsgi.worker.id": 1})


def test_one_exporter_per_interval_and_every_pid_is_ok():
    """Each serving pid exported metrics and worker 1's stream has one point per interval: no problem."""
    points = [point("http.server.duration", pid, 0) for pid in (1, 2)] + [server(t) for t in (0, 1000, 2000)]
    report = evaluate_signals(points, [], [1, 2], settings=ON, window_s=3)
    assert report.problems == [] and report.server_exports == 3 and report.server_pids == [10]


def test_two_exporters_are_duplicates():
    """Two processes exporting server metrics put two points of one stream within an interval."""
    points = [server(t) for t in (0, 5, 1000, 1004)]
    report = evaluate_signals(points, [], [], settings=ON, window_s=3)
    assert report.server_duplicates == 2 and "more than one process" in report.problems[0]


def test_a_silent_worker_and_missing_server_metrics_fail():
    """A pid that served requests without exporting metrics, and no server metrics in a long run, are problems."""
    report = evaluate_signals([point("x", 1, 0)], [], [1, 2], settings=ON, window_s=5)
    assert any("sent no metrics (2)" in p for p in report.problems)
    assert any("no uWSGI server metrics" in p for p in report.problems)


def test_metrics_off_judges_nothing():
    """Without otel-metrics-exporter nothing about metrics is required."""
    report = evaluate_signals([], [], [1, 2], settings=load({}, {}), window_s=60)
    assert report.problems == [] and not report.metrics


def test_ini_options_read_plain_keys_and_strict_placeholders():
    """A strict-mode ini's `set-ph = otel-...=value` counts like an otel-* key; the last one wins."""
    text = "[uwsgi]\notel-metrics-exporter = none\nset-ph = otel-metrics-exporter=otlp\nmaster = true\n"
    assert ini_options(text) == {"otel-metrics-exporter": "otlp"}
    assert settings_of(text, {})["otel-metrics-exporter"] == "otlp"
    assert settings_of("[uwsgi]\notel-metrics-exporter = bogus\n", {}) is None
