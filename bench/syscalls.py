#!/usr/bin/env python
"""System calls per request of one uWSGI worker, paced or loaded: the kernel side callgrind does not count.

Usage (from the repository root; MariaDB on 127.0.0.1:3306 for ``/db``; strace and wrk on PATH)::

    python bench/syscalls.py --configs plain,defaults,fast --path / --requests 400 --pace 0.05
    python bench/syscalls.py --configs plain,defaults,fast --path / --seconds 5      # wrk -c8, saturated

One uWSGI per configuration (``--workers``, default 1, ``thunder-lock`` on), warmed up, then
``strace -f -c`` attached to every worker (all their threads) while either ``--requests``
requests are sent one at a time ``--pace`` seconds apart, or wrk loads it for ``--seconds``;
the counts are divided by the requests uWSGI's stats server saw served in between.  strace
slows every call down, so its times are not the worker's; the counts are.
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import load
import procstat
import run
from spans import StoringReceiver

from otel_uwsgi.tools.harness import free_port

_ROW = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:(\d+)\s+)?(\w+)\s*$", re.M)


def parse(text: str) -> dict[str, int]:
    """strace -c's table: syscall -> calls."""
    return {m.group(3): int(m.group(1)) for m in _ROW.finditer(text) if m.group(3) != "total"}


def measure(config: str, args: argparse.Namespace) -> tuple[dict[str, float], float]:
    """Syscalls per request of ``config``'s workers, and the requests counted."""
    receiver = StoringReceiver().start()
    extra = run.config_overrides(config, dead_port=free_port(), hanging=None)
    extra.update(kv.split("=", 1) for kv in args.set)
    instance = run.Instance.of_demo(
        receiver.endpoint, extra, f"{config}-strace", workers=args.workers, workdir=args.workdir, thunder_lock=True
    )
    try:
        instance.start(args.path)
        for _ in range(args.warmup):
            instance.get(args.path)
        pids = procstat.worker_pids(instance.stats())
        out = Path(args.workdir) / f"{config}.strace"
        command = ["strace", "-f", "-c", "-o", str(out)] + [x for pid in pids for x in ("-p", str(pid))]
        tracer = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # attached (strace -p attaches before its first report; a second is ample)
        served0 = procstat.served(instance.stats())
        if args.seconds:
            load.run(instance.url(args.path), args.seconds, connections=args.connections, threads=2)
        else:
            for _ in range(args.requests):
                instance.get(args.path)
                time.sleep(args.pace)
        served = procstat.served(instance.stats()) - served0
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=60)
        counts = parse(out.read_text())
    finally:
        instance.stop()
        receiver.stop()
    return {name: n / served for name, n in counts.items()}, served


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="plain,defaults,fast")
    parser.add_argument("--path", default="/")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--pace", type=float, default=0.05, help="seconds between requests (paced mode)")
    parser.add_argument("--seconds", type=float, default=0.0, help="wrk for this long instead (loaded mode)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra ini options")
    parser.add_argument("--workdir", default=tempfile.mkdtemp(prefix="syscalls-"))
    args = parser.parse_args()
    configs = [c for c in args.configs.split(",") if c]
    results = {c: measure(c, args) for c in configs}
    how = (
        f"wrk -c{args.connections} for {args.seconds:g} s"
        if args.seconds
        else f"{args.requests} requests {args.pace:g} s apart"
    )
    print(
        f"\nsystem calls per request, {args.path}, {args.workers} worker(s), {how} "
        f"(requests counted: {', '.join(f'{c} {n}' for c, (_, n) in results.items())})\n"
    )
    names = sorted(
        {k for per, _ in results.values() for k, v in per.items() if v >= 0.01},
        key=lambda k: -max(results[c][0].get(k, 0) for c in configs),
    )
    print("| syscall | " + " | ".join(configs) + " |")
    print("|---" * (len(configs) + 1) + "|")
    print("| **all** | " + " | ".join(f"**{sum(results[c][0].values()):.2f}**" for c in configs) + " |")
    for name in names:
        print(f"| {name} | " + " | ".join(f"{results[c][0].get(name, 0):.2f}" for c in configs) + " |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
