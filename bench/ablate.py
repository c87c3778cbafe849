#!/usr/bin/env python
"""What each step of the fast path costs, by taking it away: instructions per request, in-process.

Usage (from the repository root; MariaDB on 127.0.0.1:3306; Debian's ``valgrind``)::

    python bench/ablate.py                                   # every variant below
    python bench/ablate.py plain defaults sampler-off --requests 2000

Each variant runs the demo Django site in one process (``fast_profile.py``'s set-up: the real
provider, lean spans, the fast path, spans sent to a no-op OTLP/HTTP sink) under callgrind twice,
with 0 and with ``--requests`` calls of ``/`` after the same warm-up; the difference divided by
``--requests`` is one request.  A variant either changes a setting or replaces one step of the
middleware by nothing (the spans are then wrong: a measurement, not a configuration); the
difference from ``defaults`` is what that step costs.  ``span`` and ``encode`` time one lean span's
start + end and one span's encoding instead of a request.  ``PYTHONHASHSEED`` is fixed: with it a
count repeats to a few instructions.  See bench/README.md, "Where a traced request's
instructions went".
"""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import ThreadingHTTPServer
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

#: variant -> what it does (the child reads it from ABLATE_VARIANT)
VARIANTS = {
    "plain": "no tracing at all (otel_uwsgi.setup() not called)",
    "defaults": "otel-uwsgi's defaults (the fast path)",
    "sampler-off": "defaults, OTEL_TRACES_SAMPLER=always_off: the middleware without a recording span",
    "passthrough": "the middleware present, its __call__ only calls the next one: Django's cost of one more",
    "no-attributes": "defaults minus the request attributes (an empty dict)",
    "no-span-start": "defaults minus the span start (the invalid span made current)",
    "span": "one lean SERVER span with 9 attributes started and ended (no request)",
    "encode": "one ended span encoded by the C encoder (no request)",
}


def _child(variant: str, n: int, endpoint: str) -> None:
    sys.path[:0] = [str(BENCH), str(ROOT)]
    os.environ["DJANGO_SETTINGS_MODULE"] = "otel_uwsgi.demo.settings"
    os.environ.setdefault("OTEL_UWSGI_DEMO_DB", "mysql")
    import otel_uwsgi

    env = {"OTEL_SERVICE_NAME": "ablate", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "3600000",
           "OTEL_TRACES_SAMPLER": "always_off" if variant == "sampler-off" else "parentbased_always_on"}  # fmt: skip
    if variant != "plain" and not otel_uwsgi.setup(environ=env, instrumentations=("django", "mysqlclient")):
        raise SystemExit("otel_uwsgi.setup() did not start tracing")
    from opentelemetry import context, trace
    from opentelemetry.trace import INVALID_SPAN, SpanKind

    from otel_uwsgi.instrumentation.fast import middleware

    if variant == "passthrough":
        middleware.ServerSpanMiddleware.__call__ = lambda self, request: self.get_response(request)
    elif variant == "no-attributes":
        middleware.native_request_attributes = lambda meta, capture_all: {}
    elif variant == "no-span-start":  # the C opener stepped aside too, so that the stand-in runs
        middleware.open_server_span = None
        middleware.start_server_span = lambda setup, meta, name, attrs: (INVALID_SPAN, context.get_current(), True)
    from django.core.wsgi import get_wsgi_application
    from fast_profile import environ_for

    from otel_uwsgi.demo import views

    app = get_wsgi_application()
    views._worker_id = lambda: 0
    template = environ_for("/")

    def request() -> None:
        environ = dict(template)
        environ["wsgi.input"] = io.BytesIO(b"")
        result = app(environ, lambda *args: None)
        b"".join(result)
        result.close()

    attributes = {"http.method": "GET", "http.server_name": "127.0.0.1", "http.scheme": "http",
                  "net.host.name": "x", "http.host": "x", "net.host.port": 8000, "http.target": "/",
                  "net.peer.ip": "127.0.0.1", "http.flavor": "1.1"}  # fmt: skip
    tracer, ctx = trace.get_tracer("ablate"), context.get_current()
    ended = tracer.start_span("GET index", ctx, SpanKind.SERVER, attributes=attributes)
    ended.end()
    from otel_uwsgi.native import accel

    encode = accel.load().span_field
    step = {
        "span": lambda: tracer.start_span("x", ctx, SpanKind.SERVER, attributes=attributes).end(),
        "encode": lambda: encode(ended),
    }.get(variant, request)
    for _ in range(300):
        request()
    for _ in range(n):
        step()


def _count(variant: str, n: int, endpoint: str) -> int:
    """Instructions of one child run, every thread (callgrind's profiles summed)."""
    with tempfile.TemporaryDirectory(prefix="ablate-") as out:
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg.%p", sys.executable,
                   str(Path(__file__).resolve()), "--child", variant, "--requests", str(n),
                   "--endpoint", endpoint]  # fmt: skip
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}, "PYTHONHASHSEED": "0"}
        subprocess.run(command, env=env, cwd=str(ROOT), capture_output=True, timeout=1800, check=True)
        total = 0
        for profile in Path(out).glob("cg.*"):
            found = re.findall(r"^summary:\s+(\d+)", profile.read_text(errors="replace"), re.M)
            total += int(found[-1]) if found else 0
        return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="*", default=list(VARIANTS), help=", ".join(VARIANTS))
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.requests, args.endpoint)
        return
    from fast_profile import _Sink

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    with ThreadPoolExecutor(args.jobs) as pool:
        jobs = {(v, n): pool.submit(_count, v, n, endpoint) for v in args.variants for n in (0, args.requests)}
        per = {v: (jobs[v, args.requests].result() - jobs[v, 0].result()) / args.requests for v in args.variants}
    server.shutdown()
    print(f"\ninstructions per call, in-process (callgrind, {args.requests} calls)\n")
    print("| variant | k instructions | vs defaults | what |")
    print("|---|---|---|---|")
    base = per.get("defaults")
    for v in args.variants:
        delta = f"{(per[v] - base) / 1000:+.1f}" if base is not None and v not in ("span", "encode") else ""
        print(f"| {v} | {per[v] / 1000:.1f} | {delta} | {VARIANTS[v]} |")


if __name__ == "__main__":
    main()
