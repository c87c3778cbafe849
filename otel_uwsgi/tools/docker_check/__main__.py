"""``python -m otel_uwsgi.tools.docker_check``: the Docker checker's command line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Optional

from otel_uwsgi.tools.docker_check.run import Options, Outcome, run
from otel_uwsgi.tools.verdict import render


def summary(outcome: Outcome) -> str:
    info = outcome.info
    statuses = ", ".join(f"{n} x {code}" for code, n in info.get("statuses", {}).items()) or "-"
    return (
        f"app {info['url']}: responses {statuses}; {info.get('db_spans', 0)} DB spans; "
        f"{info.get('export_requests', 0)} OTLP export requests "
        f"(Content-Encoding: {', '.join(info.get('export_encodings', [])) or '-'}); "
        f"uWSGI stopped in {info.get('stop_seconds', '?')}s"
    )


def parse_args(argv: Optional[list[str]]) -> Options:
    d = Options()
    p = argparse.ArgumentParser(
        prog="python -m otel_uwsgi.tools.docker_check",
        description="Drive a uWSGI app in another container, stop it through its master FIFO and "
        "verify every worker's server spans arrived (the Docker harness's checker).",
    )
    p.add_argument("--url", default=d.url, help=f"URL to request (default {d.url})")
    p.add_argument("--stats", default=d.stats, help=f"uWSGI stats server host:port (default {d.stats})")
    p.add_argument("--fifo", default=d.fifo, help=f"uWSGI master FIFO, on a shared volume (default {d.fifo})")
    p.add_argument("--listen", default=d.listen, help=f"OTLP/HTTP receiver address (default {d.listen})")
    p.add_argument("--requests", type=int, default=d.requests, help=f"minimum requests (default {d.requests})")
    p.add_argument("--workers", type=int, default=d.workers, help="expected workers (default: the stats server's list)")
    p.add_argument("--concurrency", type=int, default=d.concurrency, help="concurrent requests (default 2 x workers)")
    p.add_argument("--startup-timeout", type=float, default=d.startup_timeout, help="seconds for the app to come up")
    p.add_argument("--load-timeout", type=float, default=d.load_timeout, help="seconds of load at most")
    p.add_argument("--stop-timeout", type=float, default=d.stop_timeout, help="seconds for uWSGI to exit after 'q'")
    p.add_argument("--span-timeout", type=float, default=d.span_timeout, help="seconds to wait for the spans")
    p.add_argument(
        "--settle",
        type=float,
        default=d.settle,
        help="after uWSGI exited, stop waiting once no span arrived for this long",
    )
    p.add_argument(
        "--expect-db",
        metavar="SYSTEM",
        default=None,
        help="also require DB client spans of this db.system (e.g. mysql)",
    )
    p.add_argument(
        "--metric-interval",
        type=int,
        default=d.metric_interval,
        metavar="MS",
        help="the app exports metrics every MS ms (otel-metric-export-interval): also verify them",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON (progress stays on stderr)")
    args = p.parse_args(argv)
    return Options(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Options)})


def main(argv: Optional[list[str]] = None) -> int:
    opts = parse_args(argv)
    as_json = opts.json
    try:
        outcome = run(opts, progress=sys.stderr)
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            if as_json:
                print(json.dumps({"ok": False, "reason": exc.code}, indent=2))
            return 1
        raise
    if as_json:
        data = json.loads(outcome.report.to_json())
        data["checker"] = outcome.info
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(render(outcome.report))
        print(summary(outcome))
    sys.stdout.flush()
    return 0 if outcome.report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
