"""The Redis fast path (otel_uwsgi/instrumentation/fast/redis_client.py) emits
opentelemetry-instrumentation-redis's spans: the same commands (reads, writes, many arguments, a
statement past the stock 1000-character cut, an error reply, another database, a unix socket and
a port nobody listens on, a parent span, a parent sampled out, suppression, a pipeline and
RediSearch commands, which stay with the stock wrapper) are sent to the real Redis on
127.0.0.1:6379, once with the stock instrumentor and once with ``fast=True``, both through
otel-uwsgi's own ``instrument()``, in each semantic-conventions mode, and every span is compared
(scope name, version and schema URL included, and the attributes' order).

Run as a script (``python tests/unit/instrumentation/fast/test_redis_spans_equal_stock.py
stock|fast|fast-sdk|declined|uninstrumented``) it is that subprocess: it prints what it saw as JSON.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("redis")
pytest.importorskip("opentelemetry.instrumentation.redis")

from tests.unit.instrumentation.fast.spans import redis_fast_problem  # noqa: E402

pytestmark = pytest.mark.skipif(
    redis_fast_problem() is not None, reason=f"the Redis fast path is off here: {redis_fast_problem()}"
)

from tests.unit.instrumentation.fast.spans import (  # noqa: E402
    assert_same_cases,
    collect_spans,
    dead_port,
    describe,
    otel_uwsgi_log_lines,
    run_script,
    scopes,
    without_ports,
)

REDIS = ("127.0.0.1", 6379)

# --------------------------------------------------------------------------- the run (subprocess)


def _cases(tracer: Any, prefix: str) -> dict[str, Any]:
    """Each case: a function sending its commands (what it returns or raises is compared too)."""
    import redis
    from opentelemetry import trace
    from opentelemetry.instrumentation.utils import suppress_instrumentation
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    client = redis.Redis(*REDIS, socket_timeout=5)
    other_db = redis.Redis(*REDIS, db=3, socket_timeout=5)
    from_url = redis.Redis.from_url(f"redis://{REDIS[0]}:{REDIS[1]}/2", socket_timeout=5)
    key = f"{prefix}:k"

    def inside_a_span() -> Any:
        with tracer.start_as_current_span("outer"):
            return client.get(key)

    def sampled_out() -> Any:
        parent = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(0))
        with trace.use_span(NonRecordingSpan(parent)):
            return client.get(key)

    def suppressed() -> Any:
        with suppress_instrumentation():
            return client.get(key)

    def pipeline() -> Any:
        with client.pipeline() as pipe:
            return pipe.set(key, "p").incr(f"{key}:n").execute()

    return {
        "set": lambda: client.set(key, "value", ex=60),
        "get": lambda: client.get(key),
        "missing": lambda: client.get(f"{prefix}:nothing"),
        "incr": lambda: [client.incr(f"{key}:n"), client.incrby(f"{key}:n", 5)],
        "many-args": lambda: client.mset({f"{prefix}:{i}": i for i in range(20)}),
        "long-statement": lambda: len(client.mget([f"{prefix}:{i}" for i in range(600)])),  # "MGET ? ? ..." > 1000
        "hash": lambda: [client.hset(f"{key}:h", mapping={"a": 1, "b": "two"}), client.hgetall(f"{key}:h")],
        "error-reply": lambda: client.execute_command("NOSUCHCOMMAND", "x"),
        "wrong-type": lambda: client.lpush(key, "x"),
        "other-db": lambda: other_db.get(key),
        "from-url": lambda: from_url.get(key),
        "unix-socket": lambda: redis.Redis(unix_socket_path="/nonexistent/otel-uwsgi.sock").get(key),
        "refused": lambda: redis.Redis("127.0.0.1", dead_port(), socket_connect_timeout=2).get(key),
        "inside-a-span": inside_a_span,
        "sampled-out": sampled_out,
        "suppressed": suppressed,
        "pipeline": pipeline,
        "search": lambda: client.execute_command("FT.SEARCH", "idx", "*"),
        "create-index": lambda: client.execute_command("FT.CREATE", "idx", "SCHEMA", "t", "TEXT"),
        "delete": lambda: client.delete(key, f"{key}:n", f"{key}:h", *(f"{prefix}:{i}" for i in range(20))),
    }


def run_commands(mode: str) -> dict[str, Any]:
    """Send every case's commands with ``mode`` instrumentation; the spans per case."""
    from opentelemetry import trace

    from otel_uwsgi.instrumentation import registry

    if mode == "declined":  # an option for the stock instrumentor: the fast path steps aside

        def request_hook(span: Any, instance: Any, args: Any, kwargs: Any) -> None:
            span.set_attribute("hooked", True)

        registry.set_options("redis", request_hook=request_hook)
    logs = otel_uwsgi_log_lines()
    registry.instrument(("redis",), fast=mode != "stock")  # in the master: no provider yet
    if mode == "uninstrumented":  # the stock instrumentor's uninstrument() takes the fast wrapper off too
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        RedisInstrumentor().uninstrument()
    exporter = collect_spans("stock-lean" if mode in ("fast", "declined") else "stock")
    prefix = f"otel-uwsgi-test:{uuid.uuid4().hex}"
    out: dict[str, Any] = {}
    for case, call in _cases(trace.get_tracer("test"), prefix).items():
        exporter.clear()
        try:
            result: Any = call()
        except Exception as error:  # noqa: BLE001 - compared: the same exception in both
            result = f"raised {type(error).__name__}"
        spans = exporter.get_finished_spans()
        ids = {s.context.span_id: i for i, s in enumerate(spans)}
        described = [{**describe(s, ids), "keys": list(s.attributes)} for s in spans]
        out[case] = {"result": result if isinstance(result, str) else repr(result), "spans": described}
    cases = without_ports(json.loads(json.dumps(out, default=repr)))
    return {"cases": cases, "fast": sorted(registry._fast), "logs": logs}


# --------------------------------------------------------------------------- the tests (pytest)

HERE = Path(__file__).resolve()
MODES = {
    "old": {},
    "new": {"OTEL_SEMCONV_STABILITY_OPT_IN": "database,http"},
    "dup": {"OTEL_SEMCONV_STABILITY_OPT_IN": "database/dup,http/dup"},
}


@pytest.fixture(scope="module", autouse=True)
def _redis_running() -> None:
    try:
        socket.create_connection(REDIS, timeout=2).close()
    except OSError as error:
        pytest.fail(f"these tests need Redis on {REDIS[0]}:{REDIS[1]} ({error}); start redis-server")


@pytest.mark.parametrize("conventions", sorted(MODES))
def test_same_spans_as_the_stock_instrumentation(conventions):
    stock = run_script(HERE, "stock", env=MODES[conventions])
    fast = run_script(HERE, "fast", env=MODES[conventions])
    assert stock["fast"] == [] and fast["fast"] == ["redis"]
    assert "otel-uwsgi: instrumented redis (fast path: redis)" in fast["logs"]
    assert_same_cases(stock, fast)
    # What the comparison covers is there to compare
    from opentelemetry.instrumentation.redis.version import __version__

    cases = fast["cases"]
    assert scopes(cases) == {("opentelemetry.instrumentation.redis", __version__), ("test", "")}
    assert len(cases["incr"]["spans"]) == 2 and len(cases["hash"]["spans"]) == 2
    assert cases["error-reply"]["result"] == "raised ResponseError"
    assert cases["error-reply"]["spans"][0]["status"][0] == "ERROR"
    assert cases["refused"]["result"] == "raised ConnectionError" and cases["refused"]["spans"][0]["events"]
    assert cases["unix-socket"]["spans"][0]["attributes"] != cases["get"]["spans"][0]["attributes"]
    if conventions != "new":  # the new conventions record no database index
        assert cases["other-db"]["spans"][0]["attributes"] != cases["get"]["spans"][0]["attributes"]
    assert cases["inside-a-span"]["spans"][0]["parent"] == 1  # the command's span, child of "outer"
    assert cases["sampled-out"]["spans"] == [] and cases["suppressed"]["spans"] == []
    assert len(cases["pipeline"]["spans"]) == 1
    assert [s["name"] for s in cases["search"]["spans"]] == ["redis.search"]
    long_statement = [v for v in cases["long-statement"]["spans"][0]["attributes"].values() if isinstance(v, str)]
    assert any(v.endswith("...") for v in long_statement)  # the stock cut at 1000 characters, in both


def test_a_plain_sdk_provider_gets_the_same_spans_too():
    """Without otel-uwsgi's lean spans (``otel-lean-spans = false``) the attributes go through the
    SDK's own ``set_attributes``."""
    stock = run_script(HERE, "stock")
    fast = run_script(HERE, "fast-sdk")
    assert fast["fast"] == ["redis"]
    assert stock["cases"] == fast["cases"]


def test_options_for_the_stock_instrumentor_leave_it_in_charge_with_one_line():
    seen = run_script(HERE, "declined")
    assert seen["fast"] == []
    assert any(
        "redis is traced by its stock instrumentation, not the fast path: instrumentation_options('redis'" in line
        for line in seen["logs"]
    ), seen["logs"]
    assert all(s["attributes"].get("hooked") for s in seen["cases"]["get"]["spans"])


def test_the_stock_uninstrument_takes_the_fast_path_off_too():
    seen = run_script(HERE, "uninstrumented")
    assert seen["fast"] == ["redis"]  # it was on
    assert all(case["spans"] == [] for name, case in seen["cases"].items() if name != "inside-a-span")
    assert [s["name"] for s in seen["cases"]["inside-a-span"]["spans"]] == ["outer"]


if __name__ == "__main__":
    print(json.dumps(run_commands(sys.argv[1]), default=str))
    sys.stdout.flush()
    os._exit(0)  # no exit-time work of the instrumentations
