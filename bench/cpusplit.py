#!/usr/bin/env python
"""Where uWSGI's CPU per request goes under load: user and system time, request thread and others.

Usage (from the repository root; MariaDB on 127.0.0.1:3306 for ``/db``; wrk on PATH)::

    python bench/cpusplit.py --configs plain,defaults,fast --path / --rounds 7

``run.py`` reports one figure, the uWSGI process group's utime + stime per request.  This
splits it, from ``/proc/PID/task/TID/stat`` and ``.../status`` sampled right before and after
each wrk window: per thread kind (each worker's main thread, which serves the requests; the
workers' other threads, otel-uwsgi's shipping thread; the master), user and system time, and
context switches; plus the export requests the collector received in the window and the whole
machine's busy time (anything else running shows there).  Every configuration's uWSGI runs for
the whole run (4 workers, ``thunder-lock``) and the rounds load them in turn, A B C then C B A,
as ``run.py --interleave`` does.  Medians over rounds, and each round's capacity ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import load
import procstat
import run
from spans import StoringReceiver

from otel_uwsgi.tools.harness import free_port

BENCH = Path(__file__).resolve().parent
KINDS = ("request thread", "other worker threads", "master")


def _task_numbers(pid: int, tid: int) -> tuple[int, int, int]:
    """utime and stime (clock ticks) and context switches of one thread."""
    base = Path(f"/proc/{pid}/task/{tid}")
    try:
        stat = (base / "stat").read_text()
        status = (base / "status").read_text()
    except OSError:
        return 0, 0, 0
    fields = stat[stat.rindex(")") + 2 :].split()
    switches = sum(int(line.split()[1]) for line in status.splitlines() if line.split(":")[0].endswith("ctxt_switches"))
    return int(fields[11]), int(fields[12]), switches


def snapshot(master: int) -> dict[str, list[int]]:
    """Per thread kind: [utime ticks, stime ticks, context switches] of uWSGI's process group."""
    totals: dict[str, list[int]] = {kind: [0, 0, 0] for kind in KINDS}
    for proc in procstat.group(master):
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{proc.pid}/task")]
        except OSError:
            continue
        for tid in tids:
            kind = "master" if proc.pid == master else "request thread" if tid == proc.pid else "other worker threads"
            for i, value in enumerate(_task_numbers(proc.pid, tid)):
                totals[kind][i] += value
    return totals


def machine_busy() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def window(subject: dict, args: argparse.Namespace) -> dict[str, float]:
    """wrk warm-up, then a measured window: per-request figures of one configuration."""
    instance, receiver = subject["instance"], subject["receiver"]
    url = instance.url(args.served)
    load.run(url, args.warmup, connections=args.connections, threads=args.threads)
    master = instance.server.pid
    before, served0, busy0 = snapshot(master), procstat.served(instance.stats()), machine_busy()
    posts0 = len(receiver.bodies)
    wrk = load.run(url, args.duration, connections=args.connections, threads=args.threads)
    after, served1, busy1 = snapshot(master), procstat.served(instance.stats()), machine_busy()
    posts1 = len(receiver.bodies)
    n = served1 - served0
    tick_us = 1e6 / procstat.CLK_TCK
    out: dict[str, float] = {"requests": n, "rps": wrk.rps}
    for kind in KINDS:
        user, system, switches = (a - b for a, b in zip(after[kind], before[kind], strict=True))
        out[f"{kind} user"] = user * tick_us / n
        out[f"{kind} sys"] = system * tick_us / n
        out[f"{kind} switches"] = switches / n
    out["total"] = sum(out[f"{k} user"] + out[f"{k} sys"] for k in KINDS)
    out["user"] = sum(out[f"{k} user"] for k in KINDS)
    out["sys"] = sum(out[f"{k} sys"] for k in KINDS)
    out["exports per 1000 requests"] = (posts1 - posts0) * 1000 / n
    busy, total = (b - a for a, b in zip(busy0, busy1, strict=True))
    out["machine busy %"] = 100 * busy / total
    out["uwsgi share of busy %"] = 100 * out["total"] * n / (busy * tick_us) if busy else 0
    return out


def start(config: str, args: argparse.Namespace) -> dict:
    receiver = StoringReceiver().start()
    extra = run.config_overrides(config, dead_port=free_port(), hanging=None)
    options, env = run.path_overrides(args.path)
    extra.update(options)
    extra.update(kv.split("=", 1) for kv in args.set)
    instance = run.Instance.of_demo(
        receiver.endpoint,
        extra,
        f"{config}-split",
        workers=args.workers,
        workdir=args.workdir,
        thunder_lock=True,
        env_extra=env,
    )
    instance.start(args.served)
    return {"instance": instance, "receiver": receiver}


def report(results: dict[str, list[dict[str, float]]], configs: list[str], args: argparse.Namespace) -> None:
    med = {c: {k: statistics.median(r[k] for r in results[c]) for k in results[c][0]} for c in configs}
    print(
        f"\n{args.path}, {args.workers} workers, wrk -t{args.threads} -c{args.connections}, "
        f"{args.rounds} rounds of {args.duration:g} s (medians; µs per request unless said)\n"
    )
    columns = (
        ["total", "user", "sys"]
        + [f"{k} {x}" for k in KINDS for x in ("user", "sys")]
        + [
            "request thread switches",
            "other worker threads switches",
            "exports per 1000 requests",
            "rps",
            "machine busy %",
            "uwsgi share of busy %",
        ]
    )
    print("| config | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for c in configs:
        print(f"| {c} | " + " | ".join(f"{med[c][k]:.1f}" for k in columns) + " |")
    if "plain" in configs:
        print("\ncapacity = plain ÷ config, per round (median [rounds])\n")
        print("| config | total (user + sys) | user only | sys only | request thread user only |")
        print("|---|---|---|---|---|")
        for c in configs:
            if c == "plain":
                continue
            cells = []
            for key in ("total", "user", "sys", "request thread user"):
                ratios = [p[key] / r[key] for p, r in zip(results["plain"], results[c], strict=True) if r[key]]
                cells.append(f"{statistics.median(ratios):.2f} [{', '.join(f'{x:.2f}' for x in ratios)}]")
            print(f"| {c} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="plain,defaults,fast")
    parser.add_argument("--path", default="/")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra ini options (traced configs)")
    parser.add_argument("--workdir", default=tempfile.mkdtemp(prefix="cpusplit-"))
    args = parser.parse_args()
    configs = [c for c in args.configs.split(",") if c]
    args.served = run.served_path(args.workdir, args.path)  # /stack: the demo's /trace calling a peer
    subjects: dict[str, dict] = {}
    results: dict[str, list[dict[str, float]]] = defaultdict(list)
    try:
        for config in configs:
            subjects[config] = start(config, args)
        for round_no in range(1, args.rounds + 1):
            for config in configs if round_no % 2 else list(reversed(configs)):
                results[config].append(window(subjects[config], args))
                r = results[config][-1]
                print(
                    f"  round {round_no} {config}: {r['total']:.0f} µs/req (user {r['user']:.0f}, sys {r['sys']:.0f}), "
                    f"machine busy {r['machine busy %']:.0f}%",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        for subject in subjects.values():
            subject["instance"].stop()
            subject["receiver"].stop()
        run.Peer.stop()
    report(results, configs, args)


if __name__ == "__main__":
    main()
