"""What the fast-path equivalence tests share: a WSGI environ to drive an app with, a span written
down field by field (ids as positions, timestamps left out), running a site script in a fresh
interpreter (instrumenting changes a process for good), and the span-by-span comparison."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[4]
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def wsgi_environ(path_info: str, method: str = "GET", query: str = "", **extra: str) -> dict[str, Any]:
    """What a WSGI server passes for ``method path_info?query`` (``extra`` added or replaced)."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path_info,
        "QUERY_STRING": query,
        "REQUEST_URI": path_info + (f"?{query}" if query else ""),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "40000",
        "HTTP_HOST": "testserver",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    environ.update(extra)
    return environ


#: The request shapes every framework's comparison runs (its app serves ``/`` and ``/items/<int>``):
#: propagated context, user agents, captured headers, a mounted app, odd environs.
SHARED_CASES: dict[str, dict[str, Any]] = {
    "traceparent": wsgi_environ("/", HTTP_TRACEPARENT=TRACEPARENT, HTTP_TRACESTATE="k=v", HTTP_BAGGAGE="b=1"),
    "bad-traceparent": wsgi_environ("/", HTTP_TRACEPARENT="00-nonsense"),
    "bot": wsgi_environ("/", HTTP_USER_AGENT="Mozilla/5.0 (compatible; Googlebot/2.1)"),
    "headers": wsgi_environ(
        "/items/9",
        HTTP_X_CUSTOM_A="1",
        HTTP_X_CUSTOM_SECRET="hunter2",
        HTTP_X_OTHER="no",
        HTTP_USER_AGENT="curl/8.0",
    ),
    "mounted": wsgi_environ("/items/4", SCRIPT_NAME="/mount", REQUEST_URI="/mount/items/4"),
    "no-request-uri": wsgi_environ("/items/5", REQUEST_URI="", QUERY_STRING="x=1"),
    "remote-host": wsgi_environ("/", REMOTE_HOST="client.example"),
}


def describe(span: Any, ids: dict[int, int]) -> dict[str, Any]:
    """Every field of ``span`` that two equal spans share (``ids``: span id -> position in the case)."""
    parent = span.parent
    if parent is None:
        parent_ref: Any = None
    elif parent.is_remote:
        parent_ref = f"remote:{parent.span_id:016x}"
    else:
        parent_ref = ids.get(parent.span_id, "unknown")
    events = []
    for event in span.events:
        attributes = dict(event.attributes)
        stacktrace = attributes.pop("exception.stacktrace", "")
        events.append({"name": event.name, "attributes": attributes, "last_line": stacktrace.strip().splitlines()[-1:]})
    return {
        "name": span.name,
        "kind": span.kind.name,
        "parent": parent_ref,
        "trace_id": f"{span.context.trace_id:032x}" if parent_ref and str(parent_ref).startswith("remote") else None,
        "status": [span.status.status_code.name, span.status.description],
        "events": events,
        "attributes": dict(span.attributes),
        "scope": span.instrumentation_scope.name,
        "scope_version": span.instrumentation_scope.version,
        "schema_url": span.instrumentation_scope.schema_url,
    }


def collect_spans(mode: str) -> Any:
    """The global TracerProvider, its spans kept by the InMemorySpanExporter returned: the SDK's,
    or otel-uwsgi's (``stock-lean``: the stock instrumentations under otel-lean-spans); the
    traceresponse propagator with ``FAST_TEST_RESPONSE_PROPAGATOR`` set."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    if mode == "stock-lean":
        from otel_uwsgi.traces.provider import LeanTracerProvider

        provider = LeanTracerProvider()
    else:
        provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    if os.environ.get("FAST_TEST_RESPONSE_PROPAGATOR"):
        from opentelemetry.instrumentation.propagators import TraceResponsePropagator, set_global_response_propagator

        set_global_response_propagator(TraceResponsePropagator())
    return exporter


def otel_uwsgi_log_lines() -> list[str]:
    """Every message otel-uwsgi logs from now on (INFO and up), collected in the list returned."""
    import logging

    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("otel_uwsgi").addHandler(handler)
    logging.getLogger("otel_uwsgi").setLevel(logging.INFO)
    return lines


def run_script_process(script: Path, *args: str, env: Optional[dict[str, str]] = None) -> subprocess.CompletedProcess:
    """Run ``script args`` in a fresh interpreter (no ``OTEL_*`` variables but ``env``; this
    checkout first on the path, then this run's PYTHONPATH: another library release to test
    against, say); it must succeed (its log is on stderr)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environ.update(env or {})
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, str(script), *args], env=environ, cwd=str(ROOT), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def run_script(script: Path, *args: str, env: Optional[dict[str, str]] = None) -> Any:
    """:func:`run_script_process`; the JSON of its last output line."""
    return json.loads(run_script_process(script, *args, env=env).stdout.strip().splitlines()[-1])


#: Ports of this run (a test server's, a refused call's) that :func:`without_ports` writes as ``PORT``.
RUN_PORTS: list[int] = []


def dead_port() -> int:
    """A free port on 127.0.0.1 that nothing listens on (a refused connection), noted in RUN_PORTS."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        RUN_PORTS.append(probe.getsockname()[1])
        return RUN_PORTS[-1]


def without_ports(value: Any) -> Any:
    """``value`` with this run's port numbers written as ``PORT`` and object addresses (an older
    urllib3 names its connection object in the error message) as ``0x...``, so two runs compare."""
    if isinstance(value, dict):
        return {k: without_ports(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_ports(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and value in RUN_PORTS:
        return "PORT"
    if isinstance(value, str):
        for port in RUN_PORTS:
            value = value.replace(f":{port}", ":PORT").replace(f"port={port}", "port=PORT")
        value = re.sub(r" at 0x[0-9a-f]+", " at 0x...", value)
    return value


def assert_same_cases(stock: dict[str, Any], fast: dict[str, Any]) -> None:
    """Both runs made the same cases, each with the same outcome and spans (the case named on failure)."""
    assert stock["cases"].keys() == fast["cases"].keys()
    for case in stock["cases"]:
        assert stock["cases"][case] == fast["cases"][case], case


def scopes(cases: dict[str, Any]) -> set[tuple[str, str]]:
    """(name, version) of the instrumentation scope of every span of every case."""
    return {(s["scope"], s["scope_version"]) for case in cases.values() for s in case["spans"]}


def assert_same_spans(stock: dict[str, Any], fast: dict[str, Any]) -> None:
    """Every case: same response, same spans field by field, instrumentation scope (name, version)
    included: the fast path reports the stock instrumentation's scope, so a backend that groups
    by scope sees no change."""
    assert stock.keys() == fast.keys()
    for case in stock:
        s, f = stock[case], fast[case]
        assert (s["status"], s["length"], s["traceresponse"]) == (f["status"], f["length"], f["traceresponse"]), case
        assert len(s["spans"]) == len(f["spans"]), (case, s["spans"], f["spans"])
        for one, other in zip(s["spans"], f["spans"], strict=True):
            assert one == other, case


def flask_fast_problem() -> Optional[str]:
    """Why the Flask fast path is off with the installed releases (the fast path's floor line of
    CI runs older ones than it was compared with), or None: its tests then have nothing to test."""
    from otel_uwsgi.instrumentation.fast.verified import release_problem

    return release_problem("opentelemetry-instrumentation-flask") or release_problem("flask")


def requests_fast_problem() -> Optional[str]:
    """Why the requests fast path is off with the installed releases, or None."""
    from otel_uwsgi.instrumentation.fast.verified import release_problem

    return release_problem("opentelemetry-instrumentation-requests") or release_problem("requests")


def redis_fast_problem() -> Optional[str]:
    """Why the Redis fast path is off with the installed releases, or None."""
    from otel_uwsgi.instrumentation.fast.verified import release_problem

    return release_problem("opentelemetry-instrumentation-redis") or release_problem("redis")
