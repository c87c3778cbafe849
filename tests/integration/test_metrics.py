"""Metrics on real uWSGI (master + workers) against the real receiver (/v1/metrics, gzip protobuf):
per-worker HTTP server metrics with the worker's Resource, counts that survive a max-requests
recycle, and uWSGI's own server metrics exported once per instance (worker 1), reflecting a busy
worker and a harakiri."""

from __future__ import annotations

import threading
from itertools import pairwise

import pytest

from otel_uwsgi.tools.check import DEMO_INI
from otel_uwsgi.tools.receiver import ReceivedPoint

from ..conftest import wait_until

pytestmark = pytest.mark.integration

INTERVAL_MS = 500
METRICS = {"otel-metrics-exporter": "otlp", "otel-metric-export-interval": str(INTERVAL_MS)}
#: The HTTP server duration histogram under the old and the stable HTTP semantic conventions.
DURATION = ("http.server.duration", "http.server.request.duration")


def _stream(p: ReceivedPoint) -> tuple:
    return (p.name, p.resource.get("service.instance.id"), tuple(sorted(p.attributes.items())))


def latest(points: list[ReceivedPoint]) -> list[ReceivedPoint]:
    """The newest point of each stream (instance + attributes): a cumulative stream's final value."""
    newest: dict[tuple, ReceivedPoint] = {}
    for p in points:
        key = _stream(p)
        if key not in newest or p.time_ns >= newest[key].time_ns:
            newest[key] = p
    return list(newest.values())


def counted_by_pid(receiver) -> dict[int, int]:
    """Requests each worker pid counted in its HTTP server duration histogram (final cumulative counts)."""
    out: dict[int, int] = {}
    for p in latest([p for p in receiver.metric_points() if p.name in DURATION]):
        out[p.pid] = out.get(p.pid, 0) + int(p.value)
    return out


def server_points(receiver, name: str) -> list[ReceivedPoint]:
    return [p for p in receiver.metric_points(name) if p.scope == "otel_uwsgi.server"]


def server_total(receiver, name: str) -> int:
    return int(sum(p.value for p in latest(server_points(receiver, name))))


def assert_exported_once_per_interval(receiver, master_pid: int) -> None:
    """uwsgi.* points carry the instance Resource and each stream gets one point per interval:
    were several processes exporting them, points of one stream would arrive a few ms apart."""
    points = [p for p in receiver.metric_points() if p.name.startswith("uwsgi.")]
    assert points, "no uWSGI server metrics arrived"
    assert {p.pid for p in points} == {master_pid}
    assert {p.resource["uwsgi.process.type"] for p in points} == {"master"}
    assert len({p.resource["service.instance.id"] for p in points}) == 1
    assert all("uwsgi.worker.id" not in p.resource for p in points)
    streams: dict[tuple, list[int]] = {}
    for p in points:
        streams.setdefault(_stream(p), []).append(p.time_ns)
    for key, times in streams.items():
        times.sort()
        gaps_ms = [(b - a) / 1e6 for a, b in pairwise(times)]
        assert all(g >= INTERVAL_MS / 2 for g in gaps_ms), f"{key}: two exports within one interval: {gaps_ms}"
    lengths = [len(t) for t in streams.values()]
    span_s = (max(p.time_ns for p in points) - min(p.time_ns for p in points)) / 1e9
    assert max(lengths) <= span_s * 1000 / INTERVAL_MS + 1


def test_django_metrics_arrive_from_every_worker_with_its_resource(start_uwsgi, receiver, mysql):
    """Every worker pid exports the Django HTTP server metrics under its own Resource (pid, worker
    id, the same service.instance.id as its spans), and each pid's request count is exact."""
    server = start_uwsgi("django-mysql.ini", ready_path="/whoami", extra=METRICS)
    server.until_every_worker_served("/db")
    server.hammer("/db", 20)
    server.stop()
    served = server.uwsgi.served()  # complete once uWSGI is gone (a request is logged after its answer)
    assert wait_until(lambda: counted_by_pid(receiver) == served.requests, 10), (counted_by_pid(receiver), served)
    points = [p for p in receiver.metric_points() if p.name in DURATION or p.name == "http.server.active_requests"]
    assert {p.pid for p in points} == set(served.spawned) and len(served.spawned) == 4
    span_instances = {s.pid: s.resource["service.instance.id"] for s in receiver.server_spans()}
    for p in points:
        assert p.resource["uwsgi.worker.id"] == served.spawned[p.pid]
        assert p.resource["service.name"] == "demo-django"
        assert p.resource["process.parent_pid"] == server.uwsgi.pid
        assert p.resource["service.instance.id"] == span_instances[p.pid]
    active = latest([p for p in points if p.name == "http.server.active_requests"])
    assert active and all(p.value == 0 for p in active)
    delivered = latest([p for p in receiver.metric_points("otel_uwsgi.spans") if p.attributes["state"] == "exported"])
    assert {p.pid for p in delivered} == set(served.spawned)


def test_request_count_is_exact_across_max_requests_recycle(start_uwsgi, receiver):
    """Workers recycled by max-requests export their final counts on the way out: the per-pid
    counts add up to the requests sent, and uWSGI's own counters agree, without duplicate exports."""
    extra = {**METRICS, "max-requests": "10", "min-worker-lifetime": "0"}
    server = start_uwsgi("minimal.ini", workers=2, extra=extra)
    answers = server.hammer("/", 60, concurrency=4)
    sent = sum(1 for status, _ in answers if status == 200)
    assert wait_until(lambda: len(server.uwsgi.served().spawned) > 2, 20), "no worker was recycled"
    # uWSGI logs a request after answering it; the fixture's readiness probe is the one more
    assert wait_until(lambda: server.uwsgi.served().total == sent + 1, 10)
    served = server.uwsgi.served()
    assert wait_until(lambda: server_total(receiver, "uwsgi.worker.requests") == served.total, 10)
    assert server_total(receiver, "uwsgi.worker.respawns") >= len(served.spawned) - 2
    server.stop()
    assert wait_until(lambda: sum(counted_by_pid(receiver).values()) == served.total, 10), counted_by_pid(receiver)
    assert counted_by_pid(receiver) == served.requests
    assert_exported_once_per_interval(receiver, server.uwsgi.pid)


def test_server_metrics_show_a_busy_worker_and_a_harakiri(start_uwsgi, receiver, tmp_path):
    """A slow request in flight shows its worker busy; a request killed by harakiri is counted
    (harakiri via uWSGI's stats server) with the respawn it caused; all exported once per interval."""
    stats = tmp_path / "stats.sock"
    server = start_uwsgi(str(DEMO_INI), ready_path="/whoami", extra={**METRICS, "stats": str(stats), "harakiri": "4"})

    def busy_now() -> set[int]:
        newest = latest(server_points(receiver, "uwsgi.worker.status"))
        return {p.attributes["uwsgi.worker.id"] for p in newest
                if p.attributes["uwsgi.worker.status"] == "busy" and p.value == 1}

    assert wait_until(lambda: server_points(receiver, "uwsgi.worker.status") and not busy_now(), 15)
    slow = threading.Thread(target=server.get, args=("/slow?s=2.5",), daemon=True)
    slow.start()
    assert wait_until(lambda: len(busy_now()) == 1, 10), "no worker shown busy during a slow request"
    slow.join(10)
    assert wait_until(lambda: not busy_now(), 10), "the worker stayed busy after its request ended"
    assert server_total(receiver, "uwsgi.worker.harakiris") == 0

    killed = threading.Thread(target=lambda: _ignore_errors(server.get, "/slow?s=30"), daemon=True)
    killed.start()
    assert wait_until(lambda: server_total(receiver, "uwsgi.worker.harakiris") == 1, 20), server.uwsgi.log()[-2000:]
    assert wait_until(lambda: server_total(receiver, "uwsgi.worker.respawns") >= 1, 10)
    assert "HARAKIRI" in server.uwsgi.log()
    killed.join(5)
    rss = latest(server_points(receiver, "uwsgi.worker.memory.rss"))
    assert len(rss) == 4 and all(p.value > 1_000_000 for p in rss)
    queue = latest(server_points(receiver, "uwsgi.listen_queue.limit"))
    assert queue and all(p.value > 0 for p in queue)
    server.stop()
    assert_exported_once_per_interval(receiver, server.uwsgi.pid)


def _ignore_errors(fn, *args):
    try:
        fn(*args)
    except OSError:
        pass


def test_otel_uwsgi_check_verifies_metrics():
    """`otel-uwsgi check --metrics` passes on the sample ini and reports metrics from every worker pid
    and server metrics exported several times without a duplicate."""
    from otel_uwsgi.tools.check import run_check

    from ..conftest import INI

    report, log = run_check(str(INI / "minimal.ini"), requests=50, timeout=60,
                            extra={"otel-metrics-exporter": "otlp"}, test_collector=False)
    assert report.ok, (report.problems, log[-2000:])
    signals = report.signals
    assert {int(pid) for pid in signals["metric_points"]} == {r.pid for r in report.rows if r.requests}
    assert signals["server_exports"] >= 3 and signals["server_duplicates"] == 0
    assert signals["server_instances"] == 1 and signals["interval_ms"] == 1000


def test_traces_metrics_and_logs_share_one_exit_deadline(start_uwsgi, receiver):
    """With a collector that hangs, a stop with traces, metrics and logs all on ends about when a
    traces-only stop does (measured: timeout + 2-3 s of exit and reaping): the three flushes run
    against one deadline; one after the other they would add two more timeouts."""
    import signal
    import time

    from ..conftest import ROOT

    extra = {**METRICS, "otel-logs-exporter": "otlp", "otel-python-log-level": "info",
             "otel-exit-flush-timeout": "2000", "module": "tests.integration.apps.logging_app:application",
             "pythonpath": str(ROOT)}
    server = start_uwsgi("minimal.ini", extra=extra)
    server.until_every_worker_served("/")
    receiver.fault.hang = True
    server.hammer("/", 20)
    started = time.monotonic()
    server.uwsgi.send(signal.SIGINT)
    assert server.uwsgi.wait(30) is not None
    took = time.monotonic() - started
    assert took < 3 * 2.0, f"stop took {took:.1f}s with a hanging collector"
    log = server.uwsgi.log()
    assert "gave up flushing spans" in log and "gave up flushing metrics" in log
