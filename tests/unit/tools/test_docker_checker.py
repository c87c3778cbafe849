"""The Docker checker's pure parts: uWSGI stats JSON -> Served, and the extra verdicts.

No Docker, no uWSGI: the stats documents are shaped like uWSGI 2.0's stats server output.
"""

from __future__ import annotations

import json
import os
import socket
import threading

import pytest

from otel_uwsgi.metrics.stats_server import StatsError, read_stats_server
from otel_uwsgi.tools.docker_check.uwsgi_remote import parse_hostport, send_fifo, served_from_stats, worker_count
from otel_uwsgi.tools.harness import Served
from otel_uwsgi.tools.metrics_verdict import server_export_gaps
from otel_uwsgi.tools.receiver import ReceivedSpan
from otel_uwsgi.tools.verdict import db_spans, evaluate, extra_problems, merge


def _worker(wid: int, pid: int, requests: int, **extra: object) -> dict:
    data = {
        "id": wid,
        "pid": pid,
        "accepting": 1,
        "requests": requests,
        "delta_requests": requests,
        "exceptions": 0,
        "harakiri_count": 0,
        "signals": 0,
        "status": "idle",
        "rss": 0,
        "vsz": 0,
        "running_time": 1234,
        "respawn_count": 1,
        "tx": 100,
        "avg_rt": 900,
        "apps": [],
        "cores": [{"id": 0, "requests": requests}],
    }
    data.update(extra)
    return data


def _stats(*workers: dict) -> dict:
    return {
        "version": "2.0.31",
        "listen_queue": 0,
        "pid": 1,
        "uid": 0,
        "gid": 0,
        "cwd": "/srv",
        "locks": [],
        "sockets": [],
        "workers": list(workers),
    }


def _span(pid: int, kind: str = "SERVER", **attributes: object) -> ReceivedSpan:
    return ReceivedSpan(
        name="GET",
        kind=kind,
        trace_id="t",
        span_id=f"{pid}-{kind}",
        parent_span_id="",
        attributes=dict(attributes),
        resource={"process.pid": pid, "service.instance.id": f"i{pid}"},
        scope="s",
        status_code=0,
        events=(),
    )


def test_served_from_stats_maps_pids_to_worker_ids_and_requests():
    stats = _stats(_worker(1, 7, 58), _worker(2, 8, 70), _worker(3, 9, 0), _worker(4, 10, 48))
    served = served_from_stats(stats, {200: 176})
    assert served.spawned == {7: 1, 8: 2, 9: 3, 10: 4}
    assert served.requests == {7: 58, 8: 70, 9: 0, 10: 48}
    assert served.total == 176
    assert served.worker_ids == {1, 2, 3, 4}
    assert served.statuses == {200: 176}
    assert served.covered == {1, 2, 4}
    assert worker_count(stats) == 4


def test_served_from_stats_skips_workers_without_a_pid_and_junk():
    stats = _stats(_worker(1, 7, 5), _worker(2, 0, 3), {"id": "x", "pid": 9}, "not a worker", _worker(0, 11, 1))
    served = served_from_stats(stats)
    assert served.spawned == {7: 1}
    assert served.requests == {7: 5}
    assert served.statuses == {}
    # worker_count counts the configured slots, running or not
    assert worker_count(stats) == 5


def test_served_from_stats_rejects_a_document_without_workers():
    with pytest.raises(StatsError, match="workers"):
        served_from_stats({"version": "2.0.31"})
    assert worker_count({}) == 0


def test_served_from_stats_round_trips_through_json_and_feeds_evaluate():
    stats = json.loads(json.dumps(_stats(_worker(1, 7, 2), _worker(2, 8, 1))))
    served = served_from_stats(stats, {200: 3})
    spans = [_span(7), _span(7), _span(8)]
    report = evaluate(served, spans, expected_workers=2)
    assert report.ok, report.problems
    assert [(r.worker_id, r.pid, r.requests, r.spans, r.lost) for r in report.rows] == [
        (1, 7, 2, 2, 0),
        (2, 8, 1, 1, 0),
    ]


def test_evaluate_names_the_silent_workers_from_stats():
    served = served_from_stats(_stats(_worker(1, 7, 3), _worker(2, 8, 4), _worker(3, 9, 2), _worker(4, 10, 5)))
    report = evaluate(served, [_span(7)] * 3 + [_span(9)] * 2, expected_workers=4)
    assert not report.ok
    assert report.reason.startswith("2 of 4 workers sent no spans (worker 2, 4)")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("app:9191", ("app", 9191)),
        (":4318", ("0.0.0.0", 4318)),
        ("0.0.0.0:1", ("0.0.0.0", 1)),
        ("app", ("app", 9191)),
        ("[::1]:9191", ("::1", 9191)),
    ],
)
def test_parse_hostport(text, expected):
    assert parse_hostport(text, 9191) == expected


def test_parse_hostport_rejects_a_bad_port():
    with pytest.raises(ValueError):
        parse_hostport("app:http", 9191)


def test_error_statuses_fail_every_check_and_connection_errors_the_docker_one():
    """A 5xx (or 4xx) answer fails the verdict both checks share; the Docker checker adds failed
    connections.  Each is said once."""
    served = Served(spawned={7: 1}, requests={7: 10}, statuses={200: 8, 500: 2})
    assert "2 of 10 responses were errors (2 x 500): see the app's log" in evaluate(served, [], 1).problems
    assert extra_problems(served, [], load_errors=3) == ["3 requests failed at the connection level"]
    assert extra_problems(Served(spawned={7: 1}, requests={7: 2}, statuses={200: 1, 302: 1}), []) == []
    merged = merge(evaluate(served, [], 1), extra_problems(served, [], load_errors=3))
    assert sum("responses were errors" in p for p in merged.problems) == 1


def test_extra_problems_shutdown():
    served = Served(spawned={7: 1}, requests={7: 1}, statuses={200: 1})
    assert "master FIFO" in extra_problems(served, [], fifo_error="ENXIO")[0]
    assert "did not stop" in extra_problems(served, [], stopped=False)[0]


def test_extra_problems_expected_db_spans():
    served = Served(spawned={7: 1}, requests={7: 1}, statuses={200: 1})
    mysql = _span(7, "CLIENT", **{"db.system": "mysql"})
    sqlite = _span(7, "CLIENT", **{"db.system.name": "sqlite"})
    assert extra_problems(served, [mysql], expect_db="mysql") == []
    assert extra_problems(served, [sqlite], expect_db="mysql") == [
        "no mysql DB spans arrived (is the demo on mysql, the driver instrumented?)"
    ]
    assert db_spans([mysql, sqlite, _span(7)]) == [mysql, sqlite]
    assert db_spans([mysql, sqlite], "SQLite") == [sqlite]


def test_merge_turns_an_ok_report_into_a_failure_with_the_first_extra_reason():
    served = Served(spawned={7: 1}, requests={7: 1})
    report = evaluate(served, [_span(7)], expected_workers=1)
    assert report.ok
    assert merge(report, []) is report
    failed = merge(report, ["a", "b"])
    assert not failed.ok and failed.reason == "a" and failed.problems == ["a", "b"]
    again = merge(failed, ["c"])
    assert again.reason == "a" and again.problems == ["a", "b", "c"]


def test_stats_server_is_read_until_close():
    document = json.dumps(_stats(*[_worker(i, 100 + i, i) for i in range(1, 65)])).encode()
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve(payload: bytes) -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(payload)

    try:
        thread = threading.Thread(target=serve, args=(document,))
        thread.start()
        stats = read_stats_server(f"127.0.0.1:{port}")
        thread.join()
        assert worker_count(stats) == 64
        thread = threading.Thread(target=serve, args=(b"HTTP/1.0 400\r\n\r\n",))
        thread.start()
        with pytest.raises(StatsError, match="no JSON"):
            read_stats_server(f"127.0.0.1:{port}")
        thread.join()
    finally:
        server.close()


def test_send_fifo_writes_to_a_reader_and_fails_fast_without_one(tmp_path):
    fifo = tmp_path / "master.fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="no uWSGI master"):
        send_fifo(str(fifo))
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        send_fifo(str(fifo), b"q")
        assert os.read(reader, 10) == b"q"
    finally:
        os.close(reader)
    with pytest.raises(OSError):
        send_fifo(str(tmp_path / "missing.fifo"))


@pytest.mark.parametrize(
    ("times_s", "window_s", "expected"),
    [
        ([0, 1, 2, 3], None, (0, 1.0)),
        ([0, 2], None, (1, 2.0)),
        ([0, 1], (0.5, 3.5), (1, 2.5)),
        ([0, 1.1, 2.0, 3.05], None, (0, 1.1)),
        ([], None, (0, 0.0)),
    ],
)
def test_server_export_gaps_counts_missed_intervals(times_s, window_s, expected):
    """Server metrics every interval pass; a skipped interval, or an exporter that stopped before the
    load ended, is counted (1 s interval)."""

    to_ns = lambda seconds: int(seconds * 1e9)  # noqa: E731
    window = (to_ns(window_s[0]), to_ns(window_s[1])) if window_s else None
    assert server_export_gaps([to_ns(t) for t in times_s], 1000, window) == expected
