"""The requests fast path (otel_uwsgi/instrumentation/fast/requests_client.py) emits
opentelemetry-instrumentation-requests's spans: the same calls (statuses, odd methods, redacted
URLs, redirects, a refused connection, bots, a parent span, suppression, urllib3 instrumented
too ...) are made against a real HTTP server in a subprocess, once with the stock instrumentor
and once with ``fast=True``, both through otel-uwsgi's own ``instrument()``, in each
semantic-conventions mode, and every span is compared (scope name and version included), with
the ``traceparent`` each request carried to the server.

Run as a script (``python tests/unit/instrumentation/fast/test_requests_spans_equal_stock.py
stock|fast|declined``) it is that subprocess: it prints what it saw as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional

import pytest

pytest.importorskip("requests")
pytest.importorskip("opentelemetry.instrumentation.requests")


from tests.unit.instrumentation.fast.spans import requests_fast_problem  # noqa: E402

pytestmark = pytest.mark.skipif(
    requests_fast_problem() is not None, reason=f"the requests fast path is off here: {requests_fast_problem()}"
)

from tests.unit.instrumentation.fast.spans import (  # noqa: E402
    RUN_PORTS,
    assert_same_cases,
    collect_spans,
    dead_port,
    describe,
    otel_uwsgi_log_lines,
    run_script,
    scopes,
    without_ports,
)

# --------------------------------------------------------------------------- the run (subprocess)


class _Handler(BaseHTTPRequestHandler):
    """Answers by path: /status/N, /redirect (302 to /status/200), anything else 200; it keeps the
    ``traceparent`` each request carried."""

    protocol_version = "HTTP/1.1"
    seen: list[Optional[str]] = []

    def _answer(self) -> None:
        _Handler.seen.append(self.headers.get("traceparent"))
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        path = self.path.split("?")[0]
        if path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/status/200")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        code = int(path.rsplit("/", 1)[1]) if path.startswith("/status/") else 200
        body = b"" if self.command == "HEAD" else b'{"ok": true}'
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_HEAD = do_PURGE = do_DELETE = _answer

    def log_message(self, *args: Any) -> None:
        pass


def _cases(base: str, tracer: Any) -> dict[str, Any]:
    """Each case: a function making its calls (what it returns or raises is compared too)."""
    import requests
    from opentelemetry.instrumentation.utils import suppress_http_instrumentation

    host = base.split("//", 1)[1]

    def inside_a_span() -> Any:
        with tracer.start_as_current_span("outer"):
            return requests.get(f"{base}/status/200", timeout=5).status_code

    def suppressed() -> Any:
        with suppress_http_instrumentation():
            return requests.get(f"{base}/status/200", timeout=5).status_code

    def session() -> Any:
        with requests.Session() as s:
            return [s.get(f"{base}/status/{code}", timeout=5).status_code for code in (200, 204)]

    return {
        "get": lambda: requests.get(f"{base}/status/200", timeout=5).status_code,
        "post": lambda: requests.post(f"{base}/status/201", json={"a": 1}, timeout=5).status_code,
        "not-found": lambda: requests.get(f"{base}/status/404", timeout=5).status_code,
        "server-error": lambda: requests.get(f"{base}/status/503", timeout=5).status_code,
        "head": lambda: requests.head(f"{base}/x", timeout=5).status_code,
        "delete": lambda: requests.delete(f"{base}/x", timeout=5).status_code,
        "odd-method": lambda: requests.request("PURGE", f"{base}/x", timeout=5).status_code,
        "credentials": lambda: requests.get(f"http://user:secret@{host}/status/200", timeout=5).status_code,
        "signed-query": lambda: (
            requests.get(f"{base}/status/200?X-Amz-Signature=abc&Signature=def&sig=ghi&keep=1", timeout=5).status_code
        ),
        "redirect": lambda: requests.get(f"{base}/redirect", timeout=5).status_code,
        "bot": lambda: requests.get(f"{base}/x", headers={"User-Agent": "Googlebot/2.1"}, timeout=5).status_code,
        "test-agent": lambda: requests.get(f"{base}/x", headers={"User-Agent": "alwayson"}, timeout=5).status_code,
        "refused": lambda: requests.get(f"http://127.0.0.1:{dead_port()}/x", timeout=5),
        "inside-a-span": inside_a_span,
        "suppressed": suppressed,
        "session": session,
        "stream": lambda: requests.get(f"{base}/status/200", stream=True, timeout=5).status_code,
    }


def run_calls(mode: str) -> dict[str, Any]:
    """Make every case's calls with ``mode`` instrumentation; spans and traceparents per case."""
    from opentelemetry import trace

    from otel_uwsgi.instrumentation import registry

    if mode == "declined":  # an option for the stock instrumentor: the fast path steps aside

        def request_hook(span: Any, request: Any) -> None:
            span.set_attribute("hooked", True)

        registry.set_options("requests", request_hook=request_hook)
    logs = otel_uwsgi_log_lines()
    registry.instrument(("requests", "urllib3"), fast=mode in ("fast", "declined"))  # in the master: no provider yet
    exporter = collect_spans("stock-lean" if mode != "stock" else "stock")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    RUN_PORTS.append(server.server_address[1])
    base = f"http://127.0.0.1:{server.server_address[1]}"
    out: dict[str, Any] = {}
    try:
        for case, call in _cases(base, trace.get_tracer("test")).items():
            exporter.clear()
            _Handler.seen.clear()
            try:
                result: Any = call()
            except Exception as error:  # noqa: BLE001 - compared: the same exception in both
                result = f"raised {type(error).__name__}"
            spans = exporter.get_finished_spans()
            ids = {s.context.span_id: i for i, s in enumerate(spans)}
            own = {f"00-{s.context.trace_id:032x}-{s.context.span_id:016x}": i for i, s in enumerate(spans)}
            carried = [own.get(value[:52], value) if value else None for value in _Handler.seen]
            out[case] = {"result": result, "spans": [describe(s, ids) for s in spans], "traceparents": carried}
    finally:
        server.shutdown()
    return {"cases": without_ports(out), "fast": sorted(registry._fast), "logs": logs}


# --------------------------------------------------------------------------- the tests (pytest)

HERE = Path(__file__).resolve()
MODES = {
    "old": {},
    "new": {"OTEL_SEMCONV_STABILITY_OPT_IN": "http"},
    "dup": {"OTEL_SEMCONV_STABILITY_OPT_IN": "http/dup"},
}


@pytest.mark.parametrize("conventions", sorted(MODES))
def test_same_spans_and_traceparents_as_the_stock_instrumentation(conventions):
    stock = run_script(HERE, "stock", env=MODES[conventions])
    fast = run_script(HERE, "fast", env=MODES[conventions])
    assert stock["fast"] == [] and fast["fast"] == ["requests"]
    assert "otel-uwsgi: instrumented requests, urllib3 (fast path: requests)" in fast["logs"]
    assert_same_cases(stock, fast)
    cases = fast["cases"]
    # What the comparison covers is there to compare
    from opentelemetry.instrumentation.requests.version import __version__

    assert scopes(cases) == {("opentelemetry.instrumentation.requests", __version__), ("test", "")}
    assert [s["name"] for s in cases["odd-method"]["spans"]] == ["HTTP"]
    assert cases["not-found"]["spans"][0]["status"][0] == "ERROR"
    assert cases["refused"]["result"] == "raised ConnectionError"
    assert cases["refused"]["spans"][0]["events"][0]["name"] == "exception"
    assert len(cases["session"]["spans"]) == 2
    # requests follows a redirect inside the first send, where the HTTP spans below it are suppressed
    assert len(cases["redirect"]["spans"]) == 1 and len(cases["redirect"]["traceparents"]) == 2
    assert cases["suppressed"]["spans"] == [] and cases["suppressed"]["traceparents"] == [None]
    assert cases["inside-a-span"]["spans"][0]["parent"] == 1  # the client span, child of "outer"
    assert cases["get"]["traceparents"] == [0]  # the server got the client span's own context
    assert "secret" not in json.dumps(cases["credentials"]) and "def" not in json.dumps(cases["signed-query"]["spans"])
    bot = cases["bot"]["spans"][0]["attributes"]
    assert bot.get("user_agent.synthetic.type") == "bot"


def test_options_for_the_stock_instrumentor_leave_it_in_charge_with_one_line():
    seen = run_script(HERE, "declined")
    assert seen["fast"] == []
    assert any(
        "requests is traced by its stock instrumentation, not the fast path: instrumentation_options('requests'" in line
        for line in seen["logs"]
    ), seen["logs"]
    assert all(s["attributes"].get("hooked") for s in seen["cases"]["get"]["spans"])


def test_header_capture_leaves_the_stock_instrumentation_in_charge():
    env = {"OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST": "content-type"}
    seen = run_script(HERE, "fast", env=env)
    assert seen["fast"] == []
    assert any("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST is set" in line for line in seen["logs"])


if __name__ == "__main__":
    print(json.dumps(run_calls(sys.argv[1]), default=str))
    sys.stdout.flush()
    os._exit(0)  # no exit-time work of the instrumentations
