#!/usr/bin/env python
"""Instructions per request, counted by valgrind: a figure this machine's noise cannot move.

Usage (from the repository root; MariaDB on 127.0.0.1:3306 for ``/db``; Debian's ``valgrind``)::

    python bench/instructions.py                      # plain / stock / fast on / and /db
    python bench/instructions.py --modes plain,fast --paths /db --requests 600

CPU seconds on these shared 2-core machines drift by up to 50% within minutes, which hides a
10% change.  ``valgrind --tool=callgrind`` counts the instructions a process executes instead:
the same program with the same input gives the same count whatever else the machine does.
Each (mode, path) runs ``bench/fast_profile.py``'s in-process child (the demo Django site,
otel-uwsgi's real provider, processor and exporter, export thread included, spans sent to a
no-op OTLP/HTTP sink here) twice under callgrind, with 1 and with 1 + ``--requests`` requests
after the same warm-up; the difference divided by ``--requests`` is the cost of one request,
start-up excluded.  Runs go two at a time (counts do not depend on load).  uWSGI itself is not
in the picture: the accept, parse and write of a request cost the same with and without
tracing, so the *added* instructions are what tracing costs; ``bench/run.py`` measures the
whole server.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Optional

import procstat
import run
from fast_profile import MODES, _Sink, child_command, child_env

from otel_uwsgi.tools.harness import free_port

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
_COLLECTED = re.compile(r"Collected : (\d+)")


def count(mode: str, path: str, requests: int, warmup: int, endpoint: str, sampler: str, extra: list[str]) -> int:
    """Instructions executed by one child run (whole process, every thread)."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"] + child_command(
        mode, endpoint, sampler=sampler, requests=requests, warmup=warmup, paths=[path], env=extra
    )
    done = subprocess.run(command, env=child_env(), cwd=str(ROOT), capture_output=True, text=True, timeout=1800)
    found = _COLLECTED.findall(done.stderr)
    if done.returncode != 0 or not found:
        raise SystemExit(f"{mode} {path} failed under valgrind:\n{done.stderr[-3000:]}")
    return int(found[-1])


def _uwsgi_binary() -> str:
    """The real uwsgi executable (a pyenv shim is a shell script valgrind would trace instead)."""
    beside = Path(sys.executable).parent / "uwsgi"
    return str(beside) if beside.exists() else (shutil.which("uwsgi") or "uwsgi")


def valgrind_timing(overrides: dict[str, str]) -> dict[str, str]:
    """The ini options that import bench/valgrind_timing.py (otel-uwsgi's timing thresholds scaled by
    callgrind's slowdown) into a configuration that runs otel-uwsgi; none for plain and the
    sdk-recipe (their own module, no span journal)."""
    if "module" in overrides:
        return {}
    return {"import": "valgrind_timing", "pythonpath": str(Path(__file__).resolve().parent)}


class _TimedSink(_Sink):
    """The no-op sink, noting when each export arrived (``server.posts``: monotonic times)."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.server.posts.append(time.monotonic())  # type: ignore[attr-defined]
        super().do_POST()


class _RecipeStop:
    """The stock SDK recipe under callgrind.  At SIGINT its worker runs Python's atexit, where the
    SDK's shutdown never finishes under callgrind (no count is printed), so it stops with
    ``skip-atexit``; to keep its last batch in the count, the stop waits first for an export that
    began after the last response (the BatchSpanProcessor's 5 s timer), which holds every span
    of the run.  Its own sink tells the two apart from the other counts running beside it."""

    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _TimedSink)
        self.server.posts = []  # type: ignore[attr-defined]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def drained(self, after: float, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(t > after for t in self.server.posts):  # type: ignore[attr-defined]
            if time.monotonic() > deadline:
                raise SystemExit(f"sdk-recipe: no export within {timeout:.0f} s of the last response")
            time.sleep(0.2)

    def close(self) -> None:
        self.server.shutdown()


def wait_idle(instance: run.Instance, served: int, timeout: float = 300.0) -> None:
    """Until uWSGI's stats say the worker finished its last request and went idle.  uWSGI runs the
    Python exit (``uwsgi.atexit``, the interpreter's teardown: ~50M instructions for the Flask
    demo) only in a worker that is not busy, and under callgrind the stop's SIGINT can arrive
    while the worker still closes the last request: the same run then counted 635M or 688M."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = instance.stats()
        workers = stats.get("workers", [])
        if procstat.served(stats) >= served and all(w.get("status") == "idle" for w in workers):
            return
        time.sleep(0.1)
    raise SystemExit(f"the worker did not go idle within {timeout:.0f} s of its last request")


def count_uwsgi(
    config: str, path: str, requests: int, warmup: int, endpoint: str, extra: list[str], app: str = "django"
) -> int:
    """Instructions executed by the one worker of a uWSGI (run.py's ``config`` of ``app``) under callgrind."""
    workdir = Path(tempfile.mkdtemp(prefix=f"instructions-{config}-"))
    wrapper = workdir / "uwsgi-under-callgrind"
    wrapper.write_text(
        "#!/bin/sh\nexec valgrind --tool=callgrind --trace-children=yes --callgrind-out-file=/dev/null "
        f'{_uwsgi_binary()} "$@"\n'
    )
    wrapper.chmod(0o755)
    hanging = run.hanging_receiver() if config == "hanging" else None
    recipe = _RecipeStop() if config == "sdk-recipe" else None
    options, env = run.path_overrides(path, app)
    overrides = {**options, **run.config_overrides(config, dead_port=free_port(), hanging=hanging)}
    if recipe is not None:
        endpoint = recipe.endpoint
        overrides["skip-atexit"] = "true"
    # Under callgrind everything is ~50x slower: otel-uwsgi's exit flush could outlast uWSGI's default
    # 60 s of mercy, and a killed worker leaves no count (the sdk-recipe skips its atexit: _RecipeStop).
    overrides.setdefault("worker-reload-mercy", "900")
    overrides.update(valgrind_timing(overrides))
    overrides.update(kv.split("=", 1) for kv in extra)
    # one worker: no herd to serialise, and the counts stay comparable with earlier results
    instance = run.Instance.of_demo(
        endpoint, overrides, config, workers=1, workdir=str(workdir), thunder_lock=False, uwsgi=str(wrapper),
        env_extra=env, app=app,
    )
    server = instance.server
    url_path = run.served_path(str(workdir), path)  # /stack: the demo's /trace, calling the peer uWSGI
    try:
        instance.start(url_path, timeout=600)
        for _ in range(warmup + requests):
            instance.get(url_path, timeout=120)
        if recipe is not None:
            recipe.drained(after=time.monotonic())
        wait_idle(instance, served=1 + warmup + requests)
    finally:
        try:
            instance.stop(kill_after=600)  # otel-uwsgi's worker flushes its spans at exit: counted
        finally:
            if hanging is not None:
                hanging.stop()
            if recipe is not None:
                recipe.close()
    log = server.log()
    worker = re.findall(r"spawned uWSGI worker 1 \(pid: (\d+)", log)
    counts = dict(re.findall(r"==(\d+)== Collected : (\d+)", log))
    if not worker or worker[-1] not in counts:
        raise SystemExit(f"{config} {path}: no instruction count for the worker:\n{log[-3000:]}")
    shutil.rmtree(workdir, ignore_errors=True)
    return int(counts[worker[-1]])


class Sink:
    """The no-op OTLP/HTTP sink every count exports to (the sdk-recipe has its own)."""

    def __enter__(self) -> str:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        run.Peer.stop()


def per_request_uwsgi(
    configs: list[str],
    paths: list[str],
    requests: int,
    *,
    warmup: int = 1000,
    extra: Optional[list[str]] = None,
    jobs: int = 2,
    app: str = "django",
) -> dict[tuple[str, str], float]:
    """Instructions per request of each run.py configuration on each path, in one uWSGI worker: the
    count of 1 + ``requests`` requests less that of 1, after the same warm-up.  A count that failed
    is said on stderr and left out.  The warm-up is long enough to hold a worker's first garbage
    collections: a Flask request leaves cycles, so the first gen-1 and gen-2 collections after the
    fork (which traverse everything the master imported: ~30 ms in a traced worker, once per
    worker) come within the first few hundred requests; after 100 they fell inside the counted
    window and charged the traced Flask worker ~60k instructions per request more (Django's
    requests leave none and never collect)."""
    os.environ.setdefault("PYTHONHASHSEED", "0")  # see main()
    found: dict[tuple[str, str], float] = {}
    with Sink() as endpoint, ThreadPoolExecutor(jobs) as pool:
        pending = {
            (config, path, n): pool.submit(count_uwsgi, config, path, n, warmup, endpoint, extra or [], app)
            for path in paths
            for config in configs
            for n in (1, 1 + requests)
        }
        for path in paths:
            for config in configs:
                try:
                    many, one = pending[config, path, 1 + requests].result(), pending[config, path, 1].result()
                except (SystemExit, RuntimeError, OSError, subprocess.SubprocessError) as exc:
                    print(f"  instructions {config} {path}: FAILED: {str(exc)[:2000]}", file=sys.stderr, flush=True)
                    continue
                found[config, path] = (many - one) / requests
    return found


def main() -> None:
    # One hash seed for every child and uWSGI: with Python's random seed, set and dict layouts (and
    # so the instructions of the same code) differ by ~1% between runs; with a fixed one the
    # in-process count repeats to within a few instructions per request.
    os.environ.setdefault("PYTHONHASHSEED", "0")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated: plain,stock,fast")
    parser.add_argument("--paths", nargs="+", default=["/", "/db"])
    parser.add_argument("--requests", type=int, default=600, help="requests counted (beyond the baseline run)")
    parser.add_argument(
        "--warmup", type=int, default=None, help="requests before the counted ones (default 100; --uwsgi: 1000)"
    )
    parser.add_argument("--sampler", default="parentbased_always_on")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--app", choices=sorted(run.APPS), default="django", help="with --uwsgi: the demo app")
    parser.add_argument(
        "--uwsgi",
        action="store_true",
        help="count a real uWSGI worker instead (modes: run.py configs plain,stock-export,stock-instr,defaults,fast; "
        "also dead, hanging)",
    )
    parser.add_argument(
        "--env",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="extra OTEL_* settings (OTEL_TRACES_EXPORTER=none); with --uwsgi, ini options "
        "(otel-bsp-max-queue-size=64)",
    )
    args = parser.parse_args()
    if subprocess.run(["valgrind", "--version"], capture_output=True).returncode != 0:
        raise SystemExit("valgrind not found: apt-get install valgrind")
    if args.uwsgi and args.modes == ",".join(MODES):
        args.modes = "plain,stock-export,defaults,fast"
    modes = [m for m in args.modes.split(",") if m]
    if args.warmup is None:
        args.warmup = 1000 if args.uwsgi else 100
    if args.uwsgi:
        per_request = per_request_uwsgi(
            modes, args.paths, args.requests, warmup=args.warmup, extra=args.env, jobs=args.jobs, app=args.app
        )
    else:
        jobs = {}
        with Sink() as endpoint, ThreadPoolExecutor(args.jobs) as pool:
            for path in args.paths:
                for mode in modes:
                    for n in (1, 1 + args.requests):
                        jobs[mode, path, n] = pool.submit(
                            count, mode, path, n, args.warmup, endpoint, args.sampler, args.env
                        )
            per_request = {
                (mode, path): (jobs[mode, path, 1 + args.requests].result() - jobs[mode, path, 1].result())
                / args.requests
                for path in args.paths
                for mode in modes
            }
    extra = f", {' '.join(args.env)}" if args.env else ""
    where = "one uWSGI worker, uWSGI's own code included" if args.uwsgi else "in-process"
    print(f"\nthousand instructions per request ({where}; callgrind, {args.requests} requests{extra})\n")
    print("| path | mode | k instructions | added | plain/total |")
    print("|---|---|---|---|---|")
    for path in args.paths:
        plain = per_request.get(("plain", path))
        for mode in modes:
            total = per_request.get((mode, path))
            if total is None:
                print(f"| {path} | {mode} | failed | - | - |")
                continue
            added = f"{(total - plain) / 1000:.0f}" if plain else "-"
            ratio = f"{plain / total:.2f}" if plain else "-"
            print(f"| {path} | {mode} | {total / 1000:.0f} | {added} | {ratio} |")


if __name__ == "__main__":
    main()
