#!/usr/bin/env python
"""Where the per-request CPU of tracing goes, measured in-process (no uWSGI, no wrk).

Usage (from the repository root; MariaDB on 127.0.0.1:3306 for ``/db``)::

    python bench/fast_profile.py                        # plain / stock / fast, on / and /db
    python bench/fast_profile.py --modes fast --profile # cProfile of the request thread, fast path
    python bench/fast_profile.py --sampler always_off   # what an unsampled request costs

Each mode runs in its own subprocess: the demo Django site (``otel_uwsgi.demo``, MySQL) set up
with ``otel_uwsgi.setup()`` (``stock``: the stock instrumentations with otel-uwsgi's defaults —
fast encoder, gzip 1, lean spans, ``OTEL_UWSGI_FAST_INSTRUMENTATION=false``; ``fast``: the default
fast path; ``plain``: no
tracing), so the real TracerProvider, CountingBatchSpanProcessor and FastOTLPSpanExporter run,
exporting to a no-op OTLP/HTTP sink in the parent process.  The WSGI application is called in a
loop with a wrk-like environ; after a warm-up the loop is timed with ``time.process_time``
(every thread: request + export thread) and ``time.thread_time`` (the request thread), and the
queue is flushed inside the window so every span the loop made is encoded, gzipped and sent.
Modes alternate across rounds; the minimum of the rounds is printed (the least disturbed one).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODES = ("plain", "stock", "fast")


def environ_for(path: str) -> dict[str, Any]:
    """What uWSGI's http-socket hands the app for a wrk request (no User-Agent; uWSGI 2.0 sets no
    REMOTE_PORT)."""
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "REQUEST_URI": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


# --------------------------------------------------------------------------- child (one mode)


def child(args: argparse.Namespace) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "otel_uwsgi.demo.settings"
    os.environ.setdefault("OTEL_UWSGI_DEMO_DB", "mysql")
    provider = None
    if args.child != "plain":
        env = {
            "OTEL_SERVICE_NAME": "fast-profile",
            "OTEL_EXPORTER_OTLP_ENDPOINT": args.endpoint,
            "OTEL_UWSGI_INSTRUMENTATIONS": "django,mysqlclient,psycopg",
            "OTEL_TRACES_SAMPLER": args.sampler,
        }
        # stock: the stock Django and DB instrumentations (the default before the fast path was)
        env["OTEL_UWSGI_FAST_INSTRUMENTATION"] = "true" if args.child == "fast" else "false"
        env.update(kv.split("=", 1) for kv in args.env)
        from opentelemetry import trace

        import otel_uwsgi

        if not otel_uwsgi.setup(environ=env, instrumentations=("django", "mysqlclient", "psycopg")):
            raise SystemExit("otel_uwsgi.setup() did not start tracing")
        provider = trace.get_tracer_provider()
    from django.core.wsgi import get_wsgi_application

    app = get_wsgi_application()
    from otel_uwsgi.demo import views

    views._worker_id = lambda: 0  # outside uWSGI its failing `import uwsgi` costs ~100 µs per request

    def start_response(status: str, headers: list, exc_info: Any = None) -> None:
        if not status.startswith("200"):
            raise SystemExit(f"{status} from the demo app")

    def serve(path: str, n: int) -> None:
        template = environ_for(path)
        for _ in range(n):
            environ = dict(template)
            environ["wsgi.input"] = io.BytesIO(b"")
            result = app(environ, start_response)
            b"".join(result)
            result.close()

    def flush() -> None:
        if provider is not None:
            provider.force_flush()

    out: dict[str, Any] = {}
    for path in args.paths:
        serve(path, args.warmup)
        flush()
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        cpu0, thread0 = time.process_time(), time.thread_time()
        serve(path, args.requests)
        thread1 = time.thread_time()
        flush()
        cpu1 = time.process_time()
        if profiler is not None:
            import pstats

            profiler.disable()
            stream = io.StringIO()
            stats = pstats.Stats(profiler, stream=stream).sort_stats("tottime")
            stats.print_stats(args.profile_lines)
            if args.callees:
                stats.print_callees(args.callees)
            print(f"--- {args.child} {path}: request thread (cProfile inflates every call)", file=sys.stderr)
            print(stream.getvalue(), file=sys.stderr)
        n = args.requests
        out[path] = {"total_us": (cpu1 - cpu0) / n * 1e6, "request_us": (thread1 - thread0) / n * 1e6}
    print(json.dumps(out))


# --------------------------------------------------------------------------- parent


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    """Answers every export with 200 and an empty ExportTraceServiceResponse."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def child_command(
    mode: str, endpoint: str, *, sampler: str, requests: int, warmup: int, paths: list[str], env: list[str]
) -> list[str]:
    """The command line of one child run (also run under valgrind by ``instructions.py``)."""
    return [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--endpoint", endpoint,
            "--sampler", sampler, "--requests", str(requests), "--warmup", str(warmup), "--paths", *paths,
            "--env", *env]  # fmt: skip


def child_env() -> dict[str, str]:
    """The child's environment: this repository first on the path, no OTEL_* from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def run_mode(mode: str, args: argparse.Namespace, endpoint: str) -> dict[str, Any]:
    command = child_command(
        mode, endpoint, sampler=args.sampler, requests=args.requests, warmup=args.warmup, paths=args.paths, env=args.env
    )
    if args.profile:
        command += ["--profile", "--profile-lines", str(args.profile_lines)]
        if args.callees:
            command += ["--callees", args.callees]
    done = subprocess.run(command, env=child_env(), cwd=str(ROOT), capture_output=True, text=True, timeout=600)
    if args.profile:
        sys.stderr.write(done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated: plain,stock,fast")
    parser.add_argument("--paths", nargs="+", default=["/", "/db"])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sampler", default="parentbased_always_on", help="OTEL_TRACES_SAMPLER, e.g. always_off")
    parser.add_argument("--profile", action="store_true", help="cProfile the request thread (1 round)")
    parser.add_argument("--profile-lines", type=int, default=35)
    parser.add_argument("--callees", help="with --profile: also print what functions matching this regex call")
    parser.add_argument(
        "--env", nargs="*", default=[], metavar="KEY=VALUE", help="extra OTEL_* settings (OTEL_TRACES_EXPORTER=none)"
    )
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    modes = [m for m in args.modes.split(",") if m]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    rounds = 1 if args.profile else args.rounds
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    try:
        for r in range(rounds):
            for mode in modes if r % 2 == 0 else reversed(modes):
                print(f"round {r + 1}/{rounds}: {mode}", file=sys.stderr, flush=True)
                results[mode].append(run_mode(mode, args, endpoint))
    finally:
        server.shutdown()
    print(f"\nµs CPU per request, min of {rounds} round(s) of {args.requests} requests, sampler {args.sampler}")
    print("total = all threads (export included); request = request thread; added = total - plain total\n")
    print("| path | mode | total | request thread | export thread | added | plain/total |")
    print("|---|---|---|---|---|---|---|")
    for path in args.paths:
        plain = min(r[path]["total_us"] for r in results["plain"]) if "plain" in results else None
        for mode in modes:
            total = min(r[path]["total_us"] for r in results[mode])
            request = min(r[path]["request_us"] for r in results[mode])
            added = f"{total - plain:.1f}" if plain is not None else "-"
            ratio = f"{plain / total:.2f}" if plain is not None else "-"
            print(f"| {path} | {mode} | {total:.1f} | {request:.1f} | {total - request:.1f} | {added} | {ratio} |")


if __name__ == "__main__":
    main()
