#!/usr/bin/env python
"""Instructions per request of one uWSGI worker, per thread and per function (issue 29's anomalies).

Usage (from the repository root; MariaDB on 127.0.0.1:3306 for ``/db``; Debian's ``valgrind``)::

    python bench/anomalies.py --configs plain,defaults,fast --path / --requests 200
    python bench/anomalies.py --configs plain,fast --path / --pace 0.05 --no-master --keep /tmp/cg

Like ``instructions.py --uwsgi`` (two runs, with 1 and 1 + ``--requests`` requests after the
same warm-up; the difference divided by ``--requests``), but callgrind writes one profile per
thread (``--separate-threads=yes``), so the request thread and the export thread are counted
apart, and the profiles are kept (``--keep``) for ``callgrind_annotate``.  ``--pace`` sleeps
between requests (a paced client, as issue 29's author measured), ``--no-master`` runs the
worker as uWSGI's only process, ``--query`` appends a query string to every URL.  ``--functions N``
prints the request thread's C functions that differ most from the first config; ``--requests 0
--settle S --linger L`` counts what an idle worker executes per second; ``--calls`` counts the Python
calls of a request instead (cProfile, no callgrind: ``profiled_wsgi.py``).  ``--path /stack`` is
run.py's whole-stack view (the demo's /trace on PostgreSQL and Redis, calling a peer uWSGI).  See
bench/README.md, "Two anomalies explained".
"""

from __future__ import annotations

import argparse
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import run
from instructions import Sink, _uwsgi_binary, valgrind_timing

from otel_uwsgi.tools.harness import free_port

BENCH = Path(__file__).resolve().parent
_SUMMARY = re.compile(r"^summary:\s+(\d+)", re.M)
_WORKER = re.compile(r"spawned uWSGI worker 1 (?:\(and the only\) )?\(pid: (\d+)")


def thread_totals(directory: Path, pid: int) -> dict[int, int]:
    """Instructions per thread (callgrind's thread number, 1 = the main thread) of ``pid``'s profiles."""
    totals: dict[int, int] = {}
    for file in directory.glob(f"cg.{pid}*"):
        number = int(file.name.rsplit("-", 1)[1]) if "-" in file.name else 1
        found = _SUMMARY.findall(file.read_text(errors="replace"))
        if found:
            totals[number] = totals.get(number, 0) + int(found[-1])
    return totals


_FUNCTION = re.compile(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*)$")
_BUILD_DIR = re.compile(r"/tmp/python-build[^ ]*?/Python-[\d.]+/")


def functions(directory: Path, pid: int, thread: int = 1) -> dict[str, int]:
    """Exclusive instructions per C function (``file:function [object]``) of one thread's profile."""
    files = [f for f in directory.glob(f"cg.{pid}-*") if int(f.name.rsplit("-", 1)[1]) == thread]
    if not files:
        return {}
    text = subprocess.run(
        ["callgrind_annotate", "--auto=no", "--inclusive=no", "--threshold=100", str(files[0])],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found: dict[str, int] = {}
    for line in text.split("file:function", 1)[-1].splitlines()[2:]:
        match = _FUNCTION.match(line)
        if match:
            name = re.sub(r"'\d+", "", _BUILD_DIR.sub("", match.group(2)))  # recursion depth marks merged
            found[name] = found.get(name, 0) + int(match.group(1).replace(",", ""))
    return found


def per_request_functions(short: dict, long: dict, requests: int) -> dict[str, float]:
    """Request-thread instructions per request and C function: long run minus short run."""
    a = functions(Path(short["dir"]), short["pid"])
    b = functions(Path(long["dir"]), long["pid"])
    return {k: (b.get(k, 0) - a.get(k, 0)) / requests for k in set(a) | set(b)}


def print_function_diff(results: dict, configs: list[str], requests: int, top: int) -> None:
    """The C functions whose request-thread count differs most between the first config and each other."""
    per = {c: per_request_functions(results[c, False], results[c, True], requests) for c in configs}
    base = configs[0]
    for c in configs[1:]:
        diff = {k: per[c].get(k, 0) - per[base].get(k, 0) for k in set(per[c]) | set(per[base])}
        ordered = sorted(diff.items(), key=lambda kv: kv[1])
        print(
            f"\nrequest thread, {c} minus {base}, instructions per request by C function "
            f"(the {top} lowest, then the {top} highest)\n"
        )
        print(f"| difference | {base} | {c} | function |")
        print("|---|---|---|---|")
        for name, value in ordered[:top] + [("…", 0.0)] + ordered[-top:][::-1]:
            if name == "…":
                print("| … | | | |")
                continue
            shown = name if len(name) < 110 else name[:107] + "…"
            print(f"| {value:+.0f} | {per[base].get(name, 0):.0f} | {per[c].get(name, 0):.0f} | `{shown}` |")


def python_calls(config: str, args: argparse.Namespace, endpoint: str, keep: Path) -> dict[str, int]:
    """Python calls per function over 100 requests of a real uWSGI worker (``profiled_wsgi.py``)."""
    keep.mkdir(parents=True, exist_ok=True)
    out = keep / f"{config}.pstats"
    os.environ["BENCH_PROFILE_OUT"] = str(out)
    os.environ["BENCH_PROFILE_APP"] = "plain" if config == "plain" else "demo"
    overrides = run.config_overrides(config, dead_port=free_port(), hanging=None)
    overrides.update(kv.split("=", 1) for kv in args.set)
    overrides.update({"module": "profiled_wsgi:application", "pythonpath": str(BENCH)})
    instance = run.Instance.of_demo(
        endpoint, overrides, f"{config}-calls", workers=1, workdir=str(keep), thunder_lock=False, app=args.app
    )
    url = args.path + ("?q=1" if args.query else "")
    try:
        instance.start(url)
        for _ in range(160):
            instance.get(url)
    finally:
        instance.stop()
    stats = pstats.Stats(str(out)).stats  # type: ignore[attr-defined]
    return {f"{Path(k[0]).name}:{k[1]}:{k[2]}": v[1] for k, v in stats.items()}


def print_calls(calls: dict[str, dict[str, int]], configs: list[str]) -> None:
    base = configs[0]
    print("\nPython calls per request (cProfile, requests 51-150 of one uWSGI worker, not under callgrind)\n")
    print("| config | calls | functions | functions called less often than in " + base + " |")
    print("|---|---|---|---|")
    for c in configs:
        fewer = sorted(k for k, n in calls[base].items() if calls[c].get(k, 0) < n)
        shown = ", ".join(f"`{k}`" for k in fewer[:5]) + (" …" if len(fewer) > 5 else "") if fewer else "none"
        print(f"| {c} | {sum(calls[c].values()) / 100:.0f} | {len(calls[c])} | {len(fewer)}: {shown} |")


def config_overrides(config: str) -> dict[str, str]:
    """run.py's configurations, and ``plain-lazy``: plain with the URLconf and views imported at the
    worker's first request, as a usual wsgi.py does (``plain_wsgi.py`` imports them in the master)."""
    if config == "plain-lazy":
        return {**run.config_overrides("plain", dead_port=0, hanging=None), "env": "BENCH_PLAIN_URLCONF=lazy"}
    return run.config_overrides(config, dead_port=free_port(), hanging=None)


def profile(config: str, path: str, long: bool, args: argparse.Namespace, endpoint: str, keep: Path) -> dict:
    """One uWSGI (one worker) under callgrind: warm-up, 1 request (+ ``--requests`` and ``--linger``
    seconds idle in the ``long`` run), SIGINT; per-thread counts."""
    requests = 1 + args.requests if long else 1
    workdir = Path(tempfile.mkdtemp(prefix=f"anomalies-{config}-"))
    out = keep / f"{config}-{path.strip('/') or 'root'}-{'long' if long else 'short'}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    wrapper = workdir / "uwsgi-under-callgrind"
    flags = " ".join(args.valgrind)
    wrapper.write_text(
        "#!/bin/sh\nexec valgrind --tool=callgrind --trace-children=yes --separate-threads=yes "
        f'{flags} --callgrind-out-file={out}/cg.%p {_uwsgi_binary()} "$@"\n'
    )
    wrapper.chmod(0o755)
    overrides = config_overrides(config)
    if not args.master:
        overrides["master"] = "false"
    overrides.update(valgrind_timing(overrides))
    path_ini, path_env = run.path_overrides(path, args.app)  # /stack: its instrumentations and PostgreSQL
    overrides.update(path_ini)
    overrides.update(kv.split("=", 1) for kv in args.set)
    instance = run.Instance.of_demo(
        endpoint, overrides, config, workers=1, workdir=str(workdir), thunder_lock=False, uwsgi=str(wrapper),
        env_extra=path_env, app=args.app,
    )
    server = instance.server
    url = run.served_path(str(workdir), path)  # /stack: the demo's /trace, calling the peer uWSGI
    if args.query:
        url += ("&" if "?" in url else "?") + "q=1"
    run._running.append(server)
    try:
        server.start()
        deadline = time.monotonic() + 600
        while True:
            try:
                if run.get(instance.port, url, timeout=60) == 200:
                    break
            except OSError:
                pass
            if not server.alive() or time.monotonic() > deadline:
                raise SystemExit(f"{config}: uWSGI did not answer:\n{server.log()[-3000:]}")
            time.sleep(0.2)
        for _ in range(args.warmup + requests):
            if run.get(instance.port, url, timeout=120) != 200:
                raise SystemExit(f"{config} {url}: not 200")
            if args.pace:
                time.sleep(args.pace)
        time.sleep(args.settle + (args.linger if long else 0))
    finally:
        instance.stop(kill_after=600)
    log = server.log()
    (out / "uwsgi.log").write_text(log)  # kept beside the profiles: what the process said, exit included
    worker = _WORKER.findall(log)
    if not worker:
        raise SystemExit(f"{config}: no worker pid in the log:\n{log[-3000:]}")
    pid = int(worker[-1])
    shutil.rmtree(workdir, ignore_errors=True)
    return {"pid": pid, "dir": str(out), "threads": thread_totals(out, pid)}


def main() -> None:
    os.environ.setdefault("PYTHONHASHSEED", "0")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="plain,defaults,fast", help="run.py's, and plain-lazy")
    parser.add_argument("--path", default="/")
    parser.add_argument("--app", choices=sorted(run.APPS), default="django", help="the demo app (run.py --app)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--pace", type=float, default=0.0, help="seconds the client sleeps between requests")
    parser.add_argument(
        "--linger",
        type=float,
        default=0.0,
        help="seconds the long run stays up idle after its requests (with --requests 0: idle cost)",
    )
    parser.add_argument("--settle", type=float, default=0.0, help="seconds both runs stay up idle before the stop")
    parser.add_argument("--no-master", dest="master", action="store_false")
    parser.add_argument("--query", action="store_true", help="append ?q=1 to the URL")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra ini options")
    parser.add_argument("--valgrind", nargs="*", default=[], help="extra valgrind flags")
    parser.add_argument("--keep", default=None, help="directory for the callgrind profiles")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--calls",
        action="store_true",
        help="instead: count the Python calls of a request per config (cProfile, no callgrind)",
    )
    parser.add_argument(
        "--whole",
        action="store_true",
        help="also print the whole worker's count divided by the requests it served (no baseline run subtracted)",
    )
    parser.add_argument(
        "--functions",
        type=int,
        default=0,
        metavar="N",
        help="also print the N C functions of the request thread that differ most from the first config",
    )
    args = parser.parse_args()
    keep = Path(args.keep or tempfile.mkdtemp(prefix="anomalies-"))
    configs = [c for c in args.configs.split(",") if c]
    if args.calls:
        with Sink() as endpoint:
            print_calls({c: python_calls(c, args, endpoint, keep) for c in configs}, configs)
        return
    with Sink() as endpoint, ThreadPoolExecutor(args.jobs) as pool:
        jobs = {
            (c, long): pool.submit(profile, c, args.path, long, args, endpoint, keep)
            for c in configs
            for long in (False, True)
        }
        results = {key: job.result() for key, job in jobs.items()}
    label = f"{args.path}{'?q=1' if args.query else ''}, pace {args.pace} s, master {'on' if args.master else 'off'}"
    per, unit = (args.requests, "request") if args.requests else (args.linger, "second idle")
    print(
        f"\nthousand instructions per {unit}, per thread ({label}; {args.requests} requests, {args.linger:g} s "
        f"idle after them; profiles in {keep})\n"
    )
    print("| config | all threads | thread 1 (requests) | other threads |")
    print("|---|---|---|---|")
    for c in configs:
        short, long = results[c, False]["threads"], results[c, True]["threads"]
        diff = {t: (long.get(t, 0) - short.get(t, 0)) / per for t in set(short) | set(long)}
        others = ", ".join(f"#{t}: {v / 1000:.1f}" for t, v in sorted(diff.items()) if t != 1) or "-"
        print(f"| {c} | {sum(diff.values()) / 1000:.1f} | {diff.get(1, 0) / 1000:.1f} | {others} |")
    if args.whole:
        served = args.warmup + 1 + args.requests
        print(
            f"\nthe whole worker (start-up, warm-up and exit included) ÷ the {served} requests it served, as a "
            "count without a baseline run gives it; and the one-time part (short run less its requests)\n"
        )
        print("| config | whole worker ÷ requests, k | one-time (start-up, first request, exit), k |")
        print("|---|---|---|")
        for c in configs:
            short, long = results[c, False]["threads"], results[c, True]["threads"]
            per_request = (sum(long.values()) - sum(short.values())) / args.requests if args.requests else 0.0
            once = sum(short.values()) - (args.warmup + 1) * per_request
            print(f"| {c} | {sum(long.values()) / served / 1000:.1f} | {once / 1000:.0f} |")
    if args.functions and args.requests:
        print_function_diff(results, configs, args.requests, args.functions)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
