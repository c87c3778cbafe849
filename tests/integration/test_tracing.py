"""Real uWSGI (master + 4 workers) against the real receiver: identity, parenting, propagation."""

from __future__ import annotations

import re

import pytest

from ..conftest import wait_until

pytestmark = pytest.mark.integration

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"


def _by_trace(spans):
    out = {}
    for s in spans:
        out.setdefault(s.trace_id, []).append(s)
    return out


def test_django_mysql_every_worker_pid_and_db_children(start_uwsgi, receiver, mysql):
    """Server spans come from every worker pid; each span's process.pid is the pid that served
    the request; DB spans are children of the request span; resource identity is complete."""
    server = start_uwsgi("django-mysql.ini", ready_path="/whoami")
    server.until_every_worker_served("/db")
    answers = [server.get_json("/db") for _ in range(20)]
    served = server.uwsgi.served()
    server.stop()
    assert receiver.wait_for(lambda s: sum(x.kind == "SERVER" for x in s) >= served.total, 10)
    spans = receiver.snapshot()
    server_spans = [s for s in spans if s.kind == "SERVER"]
    worker_pids = set(served.spawned)
    assert {s.pid for s in server_spans} == worker_pids and len(worker_pids) == 4
    assert {a["pid"] for a in answers} <= worker_pids
    for s in server_spans:
        assert s.resource["uwsgi.worker.id"] == served.spawned[s.pid]
        assert s.resource["service.name"] == "demo-django"
        assert s.resource["service.version"] == "1.0.0"
        assert s.resource["deployment.environment.name"] == "test"
        assert s.resource["process.parent_pid"] == server.uwsgi.pid
    instance_ids = {s.pid: s.resource["service.instance.id"] for s in server_spans}
    assert len(set(instance_ids.values())) == 4
    traces = _by_trace(spans)
    db_spans = [s for s in spans if s.kind == "CLIENT" and s.attributes.get("db.system") == "mysql"]
    assert db_spans, "no MySQL spans"
    for db in db_spans:
        parents = [p for p in traces[db.trace_id] if p.span_id == db.parent_span_id]
        assert parents and parents[0].kind == "SERVER", f"orphan DB span {db}"
        assert parents[0].pid == db.pid


def test_incoming_traceparent_is_honoured(start_uwsgi, receiver, mysql):
    """A W3C traceparent header makes the server span join the caller's trace."""
    server = start_uwsgi("django-mysql.ini", ready_path="/whoami")
    answer = server.get_json("/db", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    server.stop()
    assert receiver.wait_for(lambda s: any(x.trace_id == TRACE_ID for x in s), 10)
    joined = [s for s in receiver.snapshot() if s.trace_id == TRACE_ID]
    root = [s for s in joined if s.kind == "SERVER"]
    assert len(root) == 1 and root[0].parent_span_id == PARENT_ID and root[0].pid == answer["pid"]
    assert any(s.parent_span_id == root[0].span_id for s in joined if s.kind == "CLIENT")


def test_plain_wsgi_with_lazy_apps_and_threads(start_uwsgi, receiver):
    """lazy-apps (the post-fork hook fires before the import) and threads = 4 still trace every worker."""
    server = start_uwsgi("minimal.ini", extra={"lazy-apps": "true", "threads": "4"})
    server.until_every_worker_served("/")
    server.stop()
    server.ship_leftovers()  # lazy-apps: a worker stopped as uWSGI marked it idle leaves its spans to the next start
    served = server.uwsgi.served()
    arrived = receiver.wait_for(lambda s: len(s) >= served.total, 10)
    spans = receiver.server_spans()
    log = server.uwsgi.log()
    # what a failure needs to be read: per worker, requests served against server spans received
    per_pid = {pid: (n, sum(1 for s in spans if s.pid == pid)) for pid, n in served.requests.items()}
    assert arrived, (per_pid, [line for line in log.splitlines() if "otel-uwsgi" in line][-20:])
    assert {s.pid for s in spans} == set(served.spawned)
    assert len(spans) == served.total
    assert len({s.resource["service.instance.id"] for s in spans}) == 4
    assert "Segmentation Fault" not in log and "DAMN" not in log


def test_headers_reach_the_collector_and_never_the_log(start_uwsgi, receiver):
    """otel-exporter-otlp-headers are sent (gzip protobuf) and their values never logged;
    environment headers do not leak in when the ini sets its own.  In an ini file a
    percent-encoded value needs `%%`: uWSGI expands `%2`... as magic variables first."""
    secret = "s3cr3t-token-4242"
    server = start_uwsgi(
        "minimal.ini",
        extra={"otel-exporter-otlp-headers": f"authorization=Bearer%%20{secret}", "otel-log-level": "debug"},
        env={"OTEL_EXPORTER_OTLP_HEADERS": "x-from-env=nope"},
    )
    server.hammer("/", 10)
    server.stop()
    assert receiver.wait_for(lambda s: len(s) >= 10, 10)
    assert receiver.last_headers["authorization"] == f"Bearer {secret}"
    assert "x-from-env" not in receiver.last_headers
    assert receiver.stats.encodings == {"gzip"} and receiver.stats.content_types == {"application/x-protobuf"}
    assert secret not in server.uwsgi.log()


def test_import_twice_makes_one_provider(start_uwsgi, receiver):
    """`--import otel_uwsgi.auto` plus the wsgi file's own import: one provider per worker, no warning."""
    server = start_uwsgi("minimal.ini", extra={"import": "otel_uwsgi.auto"})
    # every worker is past its post-fork set-up before the stop (a SIGINT during it is uWSGI's
    # KeyboardInterrupt traceback, docs/UWSGI.md)
    server.until_every_worker_served("/")
    server.hammer("/", 20)
    served = server.uwsgi.served()
    server.stop()
    assert receiver.wait_for(lambda s: len(s) >= served.total, 10)
    log = server.uwsgi.log()
    assert "Overriding of current TracerProvider" not in log
    assert "otel-uwsgi: WARNING" not in log and "otel-uwsgi: ERROR" not in log and "Traceback" not in log
    assert log.count("otel-uwsgi: instrumented ") == 1  # installed once, in the master
    per_pid = {}
    for s in receiver.server_spans():
        per_pid.setdefault(s.pid, set()).add(s.resource["service.instance.id"])
    assert per_pid and all(len(ids) == 1 for ids in per_pid.values())


def test_strict_mode_users_configure_with_set_ph(start_uwsgi, receiver):
    """Under `strict = true` otel-* keys are rejected by uWSGI; `set-ph = otel-...=value` works."""
    server = start_uwsgi("strict.ini", endpoint_in_env=True)
    server.hammer("/", 5)
    server.stop()
    assert receiver.wait_for(lambda s: len(s) >= 5, 10)
    assert {s.resource["service.name"] for s in receiver.snapshot()} == {"strict-demo"}


@pytest.mark.parametrize("ini", ["minimal.ini", "django-mysql.ini"])
def test_a_workers_set_up_imports_nothing(start_uwsgi, receiver, mysql, ini):
    """Everything a worker's set-up after fork uses was imported in the master: a worker starts in
    milliseconds, and a stop signal during its start cannot interrupt a half-done import."""
    server = start_uwsgi(ini, extra={"otel-log-level": "debug"})
    line = re.compile(r"otel-uwsgi: tracing started in worker pid \d+ in [\d.]+ ms \((\d+) modules imported\)")
    # every worker's set-up done before the stop (a worker still starting when SIGINT comes never logs it)
    assert wait_until(lambda: len(line.findall(server.uwsgi.log())) >= 4, 20), server.uwsgi.log()[-3000:]
    server.stop()
    started = line.findall(server.uwsgi.log())
    assert len(started) == 4 and set(started) == {"0"}, started
