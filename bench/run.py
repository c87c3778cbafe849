#!/usr/bin/env python
"""What tracing costs under uWSGI: the demo Django site on MariaDB (or the demo Flask app), with
and without otel-uwsgi.

Usage (from the repository root; MariaDB on 127.0.0.1:3306, ``wrk`` on PATH)::

    python bench/run.py --quick                 # smoke run: 1 round, short windows, / and /db
    python bench/run.py --rounds 3 --json out.json
    python bench/run.py --configs plain,defaults,fast --paths /db
    python bench/run.py --app flask --instructions 300   # the Flask demo; callgrind counts too

Each round starts one uWSGI (4 workers, ``http-socket`` on a free 127.0.0.1 port) per path and
configuration, alternating configurations (A B C … then … C B A), loads it with wrk (warm-up,
then a measure window), samples the CPU of uWSGI's process group right before and after the
window, stops it with SIGINT so the workers flush, and counts the spans that reached an
OTLP/HTTP receiver.  A last
phase per traced configuration reads worker start-up and exit-flush times from otel-uwsgi's
debug log.  With ``--instructions N`` the same configurations and paths are also counted under
callgrind (``instructions.py --uwsgi``: one worker, N requests), so one run gives both figures.
Prints markdown tables on stdout (progress on stderr) and writes ``--json``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import lifecycle_log
import load
import procstat
import report
from spans import SPANS_PER_REQUEST, StoringReceiver

from otel_uwsgi.tools.harness import UwsgiServer, free_port, owned_overrides, prepare_ini
from otel_uwsgi.tools.receiver import Receiver

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CONFIGS = (
    "plain", "sdk-recipe", "stock-export", "stock-instr", "defaults", "twin", "fast", "isal", "metrics", "dead",
    "hanging",
)
TRACED_HEALTHY = ("stock-export", "stock-instr", "defaults", "fast", "isal")
MYSQL = ("127.0.0.1", 3306)


@dataclass(frozen=True)
class App:
    """One of the demo apps the bench drives: its base ini, what it instruments, its views."""

    ini: Path
    instrumentations: str  # otel-instrumentations: the same in every configuration of a run
    paths: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()  # also read by plain_wsgi.py and recipe_wsgi.py


#: ``/item/7`` is a route with a converter (span name ``GET /item/<int:item_id>``); ``/stack`` is the
#: whole-stack view on either app (the demo's /trace, on PostgreSQL).
APPS = {
    # /pg's driver too (instrumented at import: no cost to the other paths' requests)
    "django": App(
        ROOT / "ini" / "django-mysql.ini", "django,mysqlclient,psycopg", ("/", "/db", "/db10", "/pg", "/stack")
    ),
    "flask": App(ROOT / "ini" / "flask.ini", "flask", ("/", "/item/7", "/stack"), (("OTEL_UWSGI_DEMO_APP", "flask"),)),
}

_running: list[UwsgiServer] = []  # stopped by pid on the way out, whatever happens


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def config_overrides(config: str, *, dead_port: int, hanging: Optional[Receiver]) -> dict[str, str]:
    """The ini keys that make ``config`` out of the app's base ini (django-mysql.ini, flask.ini)."""
    if config == "plain":  # same app, no `import otel_uwsgi.auto`
        return {"module": "plain_wsgi:application", "pythonpath": str(BENCH)}
    if config == "sdk-recipe":  # the copied recipe: stock SDK + contrib instrumentations, no otel-uwsgi
        return {"module": "recipe_wsgi:application", "pythonpath": str(BENCH)}
    if config == "stock-export":  # the SDK's own exporter and span start: the "before" figure
        return {"otel-fast-export": "false", "otel-lean-spans": "false"}
    if config in ("defaults", "twin"):  # twin: a second defaults uWSGI, the A/A noise floor
        return {}
    if config == "fast":  # the default since the fast path became it; kept to compare with older runs
        return {"otel-fast-instrumentation": "true"}
    if config == "isal":  # the defaults with ISA-L's gzip instead of zlib's (the defaults until 2026-12-07)
        return {"module": "isal_wsgi:application", "pythonpath": str(BENCH)}
    if config == "stock-instr":  # the stock Django and DB instrumentations (the defaults before 2026-12-06)
        return {"otel-fast-instrumentation": "false"}
    if config == "metrics":  # defaults plus per-worker metrics and uWSGI server metrics, exported every 5 s
        return {"otel-metrics-exporter": "otlp", "otel-metric-export-interval": "5000"}
    if config == "dead":
        return {"otel-exporter-otlp-endpoint": f"http://127.0.0.1:{dead_port}"}
    if config == "hanging":
        assert hanging is not None
        return {"otel-exporter-otlp-endpoint": hanging.endpoint}
    raise ValueError(config)


#: The whole-stack view: the demo's /trace (a query, the cache, an outgoing call) on PostgreSQL and
#: Redis, calling a peer uWSGI (bench/peer_wsgi.py) over HTTP with requests.
STACK = "/stack"
STACK_INSTRUMENTATIONS = "psycopg,redis,requests,urllib3"  # beside the app's framework


class Peer:
    """The whole-stack view's downstream service, started once per bench run."""

    server: Optional[UwsgiServer] = None
    port = 0
    _lock = threading.Lock()

    @classmethod
    def url(cls, workdir: str) -> str:
        with cls._lock:
            return cls._start(workdir)

    @classmethod
    def stop(cls) -> None:
        with cls._lock:
            if cls.server is not None:
                cls.server.stop(signal.SIGINT, kill_after=15)
                cls.server = None

    @classmethod
    def _start(cls, workdir: str) -> str:
        if cls.server is None:
            cls.port = free_port()
            ini = (
                f"[uwsgi]\nmaster = true\nprocesses = 2\nhttp-socket = 127.0.0.1:{cls.port}\n"
                f"wsgi-file = {BENCH / 'peer_wsgi.py'}\ndisable-logging = true\n"
            )
            cls.server = UwsgiServer(ini, cwd=str(ROOT), workdir=tempfile.mkdtemp(prefix="peer-", dir=workdir))
            _running.append(cls.server)
            cls.server.start()
            if not cls.server.wait_workers(2, 30):
                raise RuntimeError(f"the peer uWSGI did not start:\n{cls.server.log()[-2000:]}")
        return f"http://127.0.0.1:{cls.port}/"


def served_path(workdir: str, path: str) -> str:
    """The URL path wrk loads for a bench path (``/stack`` is /trace calling the peer, whose
    files go under ``workdir``)."""
    if path == STACK:
        return "/trace?" + urllib.parse.urlencode({"downstream": Peer.url(workdir)})
    return path


def path_overrides(path: str, app: str = "django") -> tuple[dict[str, str], dict[str, str]]:
    """Ini options and environment a bench path of ``app`` needs beyond its configuration's and the
    app's own (``App.env``, which :class:`Instance` sets)."""
    if path == STACK:
        framework = APPS[app].instrumentations.split(",")[0]
        return {"otel-instrumentations": f"{framework},{STACK_INSTRUMENTATIONS}"}, {"OTEL_UWSGI_DEMO_DB": "postgres"}
    return {}, {}


def get(port: int, path: str, timeout: float = 10.0) -> int:
    """One GET to 127.0.0.1:``port`` on its own connection, as the instruction counts were made
    (no extra header: the request's bytes are part of what is counted); the status code."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def hanging_receiver() -> Receiver:
    """A started receiver that accepts every export and never answers: the ``hanging`` collector."""
    receiver = Receiver().start()
    receiver.fault.hang = True
    return receiver


class Instance:
    """One uWSGI from the base ini plus overrides, with a stats socket; registered for cleanup."""

    def __init__(
        self,
        args: argparse.Namespace,
        endpoint: str,
        extra: dict[str, str],
        name: str,
        uwsgi: str = "uwsgi",
        env_extra: Optional[dict[str, str]] = None,
    ) -> None:
        self.port, self.stats_port = free_port(), free_port()
        journal_dir = tempfile.mkdtemp(prefix="otel-uwsgi-bench-")
        overrides: dict[str, str] = dict(owned_overrides(self.port, endpoint, journal_dir))
        overrides.update(
            {
                "processes": str(args.workers),
                "stats": f"127.0.0.1:{self.stats_port}",
                "disable-logging": "true",  # no request log: a constant cost we need not measure
                "otel-instrumentations": APPS[args.app].instrumentations,
                # Serialise accept(): without it every connection wakes every idle worker (the
                # thundering herd), kernel time that idle workers pay and busy ones do not, so
                # the fastest configuration (plain) paid most and tracing looked cheaper than it is.
                **({"thunder-lock": "true"} if args.thunder_lock else {}),
                **extra,
            }
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env.update(APPS[args.app].env)
        env.update(env_extra or {})
        workdir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=args.workdir))
        self.server = UwsgiServer(
            prepare_ini(args.ini, overrides), env=env, cwd=str(ROOT), workdir=str(workdir), uwsgi=uwsgi
        )
        self.workers = args.workers

    @classmethod
    def of_demo(
        cls,
        endpoint: str,
        extra: dict[str, str],
        name: str,
        *,
        workers: int,
        workdir: str,
        thunder_lock: bool,
        uwsgi: str = "uwsgi",
        env_extra: Optional[dict[str, str]] = None,
        app: str = "django",
    ) -> Instance:
        """An Instance of the demo ini for the other bench tools (no run.py arguments to hand)."""
        settings = argparse.Namespace(
            workers=workers, ini=APPS[app].ini, workdir=workdir, thunder_lock=thunder_lock, app=app
        )
        return cls(settings, endpoint, extra, name, uwsgi=uwsgi, env_extra=env_extra)

    def start(self, ready_path: str, timeout: float = 60.0) -> None:
        _running.append(self.server)
        self.server.start()
        if not self.server.wait_workers(self.workers, timeout):
            raise RuntimeError(f"uWSGI did not spawn {self.workers} workers:\n{self.server.log()[-2000:]}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.get(ready_path) == 200:
                    return
            except OSError:
                pass
            if not self.server.alive():
                break
            time.sleep(0.1)
        raise RuntimeError(f"uWSGI did not answer 200 on {ready_path}:\n{self.server.log()[-2000:]}")

    def get(self, path: str, timeout: float = 10.0) -> int:
        return get(self.port, path, timeout)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stats(self) -> dict:
        return procstat.uwsgi_stats(self.stats_port)

    def settled_stats(self, timeout: float = 10.0) -> dict:
        """Stats once the request counters stopped moving (requests in flight have finished)."""
        previous = self.stats()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.2)
            current = self.stats()
            if procstat.served(current) == procstat.served(previous):
                return current
            previous = current
        return previous

    def stop(self, kill_after: float = 60.0) -> float:
        """SIGINT, wait for the master to exit; returns the seconds it took."""
        started = time.monotonic()
        self.server.stop(signal.SIGINT, kill_after=kill_after)
        if self.server in _running:
            _running.remove(self.server)
        return time.monotonic() - started


class Subject:
    """One configuration's uWSGI on one path, with its receiver(s): started, loaded, stopped, counted."""

    def __init__(self, args: argparse.Namespace, config: str, path: str, label: str) -> None:
        self.args, self.config, self.path = args, config, path
        self.url_path = served_path(args.workdir, path)
        self.receiver = StoringReceiver().start()
        self.hanging: Optional[Receiver] = None
        if config == "hanging":
            self.hanging = hanging_receiver()
        self.instance: Optional[Instance] = None
        try:
            extra = config_overrides(config, dead_port=free_port(), hanging=self.hanging)
            options, env = path_overrides(path, args.app)
            self.instance = Instance(
                args,
                self.receiver.endpoint,
                {**options, **extra},
                f"{config}-{path.strip('/').replace('/', '-') or 'root'}-{label}",
                env_extra=env,
            )
        except BaseException:  # no Subject to close: stop the receivers here
            self.close()
            raise

    def start(self) -> None:
        assert self.instance is not None
        self.instance.start(self.url_path)

    def window(self, warmup: float) -> dict[str, Any]:
        """wrk for ``warmup`` seconds, then the measure window; CPU and requests of the window."""
        args, instance = self.args, self.instance
        assert instance is not None
        load.run(instance.url(self.url_path), warmup, connections=args.connections, threads=args.threads, wrk=args.wrk)
        pgrp = instance.server.pid
        cpu0, served0 = procstat.group_cpu(pgrp), procstat.served(instance.stats())
        wrk = load.run(
            instance.url(self.url_path), args.duration, connections=args.connections, threads=args.threads, wrk=args.wrk
        )
        cpu1, stats1 = procstat.group_cpu(pgrp), instance.stats()
        window_requests = procstat.served(stats1) - served0
        rss = [procstat.rss_kib(pid) for pid in procstat.worker_pids(stats1)]
        return {
            "rps": wrk.rps,
            "p50_ms": wrk.latency_ms.get("50"),
            "p99_ms": wrk.latency_ms.get("99"),
            "wrk_requests": wrk.requests,
            "http_errors": wrk.errors,
            "window_requests": window_requests,
            "cpu_s": cpu1 - cpu0,
            "cpu_us_per_request": (cpu1 - cpu0) * 1e6 / window_requests if window_requests else None,
            "worker_rss_mib": report.median(r / 1024 for r in rss if r),
        }

    def finish(self) -> dict[str, Any]:
        """Stop uWSGI (SIGINT: the workers flush) and count what reached the receiver."""
        instance = self.instance
        assert instance is not None
        result: dict[str, Any] = {"requests_total": procstat.served(instance.settled_stats())}
        result["stop_s"] = instance.stop()
        result["uwsgi_exit"] = instance.server.returncode
        counted = self.receiver.count()
        per_request = SPANS_PER_REQUEST.get(self.path)
        result.update(
            spans_total=counted.spans,
            spans_received=counted.per_request if per_request else counted.server,
            spans_expected=result["requests_total"] * per_request if per_request else result["requests_total"],
            export_requests=counted.requests,
            export_bytes=counted.bytes,
            undecodable=counted.bad,
        )
        lost = lifecycle_log.parse(instance.server.log()).not_delivered
        result["logged_not_delivered"] = sum(n for n, _ in lost.values())
        result["log"] = str(instance.server.log_path)
        return result

    def close(self) -> None:
        """Whatever happened: uWSGI stopped by pid, receivers closed."""
        try:
            if self.instance is not None:
                self.instance.stop(kill_after=15)
        finally:
            self.receiver.stop()
            if self.hanging is not None:
                self.hanging.stop()


_FAILURES = (RuntimeError, OSError, ValueError, subprocess.SubprocessError)


def _reason(exc: BaseException) -> str:
    """The first line of ``exc`` for the JSON (its type's name when it has no message)."""
    lines = str(exc).splitlines()
    return lines[0] if lines else type(exc).__name__


def _failed(result: dict[str, Any], subject: Optional[Subject], exc: BaseException) -> None:
    result["error"] = _reason(exc)
    say(f"  {result['config']} {result['path']}: FAILED: {exc}")
    if subject is not None and subject.instance is not None:
        result["log"] = str(subject.instance.server.log_path)


def measure(args: argparse.Namespace, config: str, path: str, round_no: int) -> dict[str, Any]:
    """One uWSGI of ``config`` loaded on ``path``: warm-up, measure window, stop, count spans."""
    result: dict[str, Any] = {"round": round_no, "config": config, "path": path}
    subject = None
    try:
        subject = Subject(args, config, path, f"r{round_no}")
        subject.start()
        result.update(subject.window(args.warmup))
        result.update(subject.finish())
    except _FAILURES as exc:
        _failed(result, subject, exc)
    finally:
        if subject is not None:
            subject.close()
    return result


def measure_interleaved(args: argparse.Namespace, path: str) -> list[dict[str, Any]]:
    """Every configuration's uWSGI alive at once on ``path``; each round loads them in turn (A B C,
    then C B A), so a round's windows lie seconds apart instead of a uWSGI start and stop each.
    Spans are counted once per configuration, after the last round (on its last run)."""
    subjects: dict[str, Subject] = {}
    runs: list[dict[str, Any]] = []
    try:
        for config in args.configs:
            subjects[config] = Subject(args, config, path, "interleaved")
            subjects[config].start()
        for round_no in range(1, args.rounds + 1):
            order = args.configs if round_no % 2 else list(reversed(args.configs))
            for config in order:
                result: dict[str, Any] = {"round": round_no, "config": config, "path": path}
                try:
                    result.update(subjects[config].window(args.warmup))
                except _FAILURES as exc:
                    _failed(result, subjects[config], exc)
                runs.append(result)
                if not result.get("error"):
                    say(report.progress(result))
        for config, subject in subjects.items():
            last = [r for r in runs if r["config"] == config and not r.get("error")]
            try:
                counted = subject.finish()
            except _FAILURES as exc:  # recorded on its last run, or as a run of its own when none succeeded
                if not last:
                    last = [{"round": 0, "config": config, "path": path}]
                    runs.append(last[0])
                _failed(last[-1], subject, exc)
                continue
            if last:
                last[-1].update(counted)
            say(
                f"  {path} {config}: {counted.get('spans_received')}/{counted.get('spans_expected')} spans, "
                f"stop {counted['stop_s']:.2f} s"
            )
    except _FAILURES as exc:
        say(f"  {path}: interleaved run FAILED: {exc}")
        runs.append({"round": 0, "config": "?", "path": path, "error": _reason(exc)})
    finally:
        for subject in subjects.values():
            subject.close()
    return runs


def instruction_counts(args: argparse.Namespace) -> dict[tuple[str, str], float]:
    """Instructions per request of every configuration (but ``twin``, which is ``defaults``) on
    every path, counted by ``instructions.py`` in one uWSGI worker under callgrind."""
    import instructions  # imports this module: imported here, not at the top

    configs = [c for c in args.configs if c != "twin"]
    say(f"  instructions: {', '.join(configs)} on {', '.join(args.paths)}, {args.instructions} requests each")
    return instructions.per_request_uwsgi(configs, args.paths, args.instructions, app=args.app)


def fill_queues(instance: Instance, queue: int, deadline_s: float) -> dict[int, int]:
    """Send ``/`` requests (one span each) until every worker holds nearly ``queue`` spans.

    A worker cannot be chosen, so each batch is no larger than the room left in the fullest
    worker: none reaches ``queue`` (where the batch processor would export it).
    """

    def per_worker() -> dict[int, int]:
        return {int(w["pid"]): int(w["requests"]) for w in instance.stats()["workers"]}

    deadline = time.monotonic() + deadline_s
    with ThreadPoolExecutor(instance.workers * 2) as pool:
        while time.monotonic() < deadline:
            counts = per_worker()
            room = queue - 1 - max(counts.values())
            if min(counts.values()) >= queue * 0.9 or room < 1:
                break
            list(pool.map(lambda _: instance.get("/"), range(room)))
    return per_worker()


def lifecycle(args: argparse.Namespace, config: str) -> dict[str, Any]:
    """Worker start-up and exit-flush times from the debug log, with a nearly full queue at exit."""
    phase: dict[str, Any] = {"config": config, "queue_size": args.flush_queue}
    receiver = StoringReceiver().start()
    instance = None
    try:
        extra = config_overrides(config, dead_port=0, hanging=None)
        extra.update(
            {
                "otel-log-level": "debug",
                "otel-bsp-schedule-delay": "3600000",  # no timed export: the queue builds up
                "otel-bsp-max-queue-size": str(args.flush_queue),
                "otel-bsp-max-export-batch-size": str(args.flush_queue),
            }
        )
        instance = Instance(args, receiver.endpoint, extra, f"lifecycle-{config}")
        instance.start("/")
        phase["queued"] = fill_queues(instance, args.flush_queue, deadline_s=120)
        phase["stop_s"] = instance.stop()
        found = lifecycle_log.parse(instance.server.log())
        phase.update(init_ms=found.init_ms, flushed=found.flushed, gave_up=found.gave_up)
        phase["spans_received"] = receiver.count().spans
        phase["log"] = str(instance.server.log_path)
    except (RuntimeError, OSError, ValueError) as exc:
        phase["error"] = _reason(exc)
        say(f"  lifecycle {config}: FAILED: {exc}")
    finally:
        try:
            if instance is not None:
                instance.stop(kill_after=15)
        finally:
            receiver.stop()
    return phase


def _csv(text: str, allowed: Optional[tuple[str, ...]] = None) -> list[str]:
    items = [i.strip() for i in text.split(",") if i.strip()]
    unknown = [i for i in items if allowed is not None and i not in allowed]
    if unknown:
        raise SystemExit(f"bench: unknown configuration {', '.join(unknown)}; choose from {', '.join(allowed or ())}")
    return items


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds; configurations alternate within each (default 3)"
    )
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated subset of {','.join(CONFIGS)}")
    parser.add_argument(
        "--paths", default=None, help="comma-separated paths (default: the app's, /,/db,/db10,/pg,/stack for Django; "
        "--quick: the first two)"
    )
    parser.add_argument("--warmup", type=float, default=None, help="seconds of wrk before measuring (default 3)")
    parser.add_argument("--duration", type=float, default=None, help="seconds of the measure window (default 10)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--workers", type=int, default=4, help="uWSGI processes (default 4)")
    parser.add_argument("--flush-queue", type=int, default=2048, help="otel-bsp-max-queue-size of the flush phase")
    parser.add_argument("--no-lifecycle", action="store_true", help="skip the start-up/exit-flush phase")
    parser.add_argument(
        "--no-thunder-lock",
        dest="thunder_lock",
        action="store_false",
        help="run uWSGI without thunder-lock (every connection then wakes every idle worker: kernel time "
        "that flatters slower configurations; see bench/README.md)",
    )
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="keep every configuration's uWSGI running and load them in turn each round (windows seconds "
        "apart: less drift between a round's configurations; spans counted once, after the last round)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round, 1 s warm-up, 3 s window, / and /db")
    parser.add_argument("--json", type=Path, help="write every run, the summary and the targets here")
    parser.add_argument("--app", choices=sorted(APPS), default="django", help="the demo app to drive (default django)")
    parser.add_argument("--ini", type=Path, default=None, help="base ini (default: the app's, ini/django-mysql.ini)")
    parser.add_argument(
        "--instructions",
        type=int,
        default=0,
        metavar="N",
        help="also count instructions per request under callgrind (one worker, N requests after 1000 of warm-up; "
        "every configuration but twin, every path): both figures from one run",
    )
    parser.add_argument("--wrk", default=shutil.which("wrk") or "/usr/bin/wrk", help="wrk binary")
    parser.add_argument("--workdir", default=None, help="where uWSGI logs go (default: a new temporary directory)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds = 1
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 3.0)
    args.duration = args.duration if args.duration is not None else (3.0 if args.quick else 10.0)
    args.configs = _csv(args.configs, CONFIGS)
    default_paths = APPS[args.app].paths[:2] if args.quick else APPS[args.app].paths
    args.paths = _csv(args.paths or ",".join(default_paths))
    args.ini = args.ini or APPS[args.app].ini
    args.workdir = args.workdir or tempfile.mkdtemp(prefix="otel-uwsgi-bench-")
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    return args


def preflight(args: argparse.Namespace) -> None:
    if not Path(args.wrk).exists():
        raise SystemExit(f"bench: wrk not found at {args.wrk}; install it (apt-get install wrk) or pass --wrk")
    if shutil.which("uwsgi") is None:
        raise SystemExit("bench: no `uwsgi` on PATH; `pip install -e .` installs it")
    if args.instructions and subprocess.run(["valgrind", "--version"], capture_output=True).returncode != 0:
        raise SystemExit("bench: --instructions needs valgrind (apt-get install valgrind)")
    if args.app != "django":  # the Flask demo's views use PostgreSQL (/stack) only
        return
    try:
        socket.create_connection(MYSQL, timeout=2).close()
    except OSError:
        raise SystemExit("bench: no MariaDB/MySQL on 127.0.0.1:3306 (root, empty password, database `test`)") from None


def _meta(args: argparse.Namespace) -> dict[str, Any]:
    def git(*cmd: str) -> str:
        done = subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM ends the bench like Ctrl-C: every uWSGI it started is stopped by pid."""
    raise KeyboardInterrupt


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    preflight(args)
    signal.signal(signal.SIGTERM, _interrupt)
    meta = _meta(args)
    runs: list[dict[str, Any]] = []
    phases: list[dict[str, Any]] = []
    counts: dict[tuple[str, str], float] = {}
    say(
        f"bench: {args.rounds} round(s) of {', '.join(args.configs)} on {', '.join(args.paths)}; logs in {args.workdir}"
    )
    try:
        for path in args.paths if args.interleave else ():
            runs.extend(measure_interleaved(args, path))
        for round_no in range(1, args.rounds + 1) if not args.interleave else ():
            for path in args.paths:
                # A B C … in odd rounds, … C B A in even ones: a steady drift of the machine
                # then favours no configuration over the rounds.
                order = args.configs if round_no % 2 else list(reversed(args.configs))
                for config in order:
                    run = measure(args, config, path, round_no)
                    runs.append(run)
                    if not run.get("error"):
                        say(report.progress(run))
        if args.instructions:
            counts = instruction_counts(args)
        if not args.no_lifecycle:
            for config in (c for c in args.configs if c in TRACED_HEALTHY):
                say(f"  lifecycle phase: {config}")
                phases.append(lifecycle(args, config))
    except KeyboardInterrupt:
        say("bench: interrupted; stopping uWSGI and reporting what was measured")
    finally:
        for server in list(_running):
            server.stop(signal.SIGINT, kill_after=15)
    report.add_ratios(runs)
    rows = report.summarize(runs, args.configs, args.paths)
    if counts:
        report.add_instructions(rows, counts)
    found = report.targets(rows, phases)
    meta["loadavg_end"] = os.getloadavg()
    app = "Django + MariaDB" if args.app == "django" else args.app.capitalize()
    print(
        f"## uWSGI + {app}, {args.workers} workers, wrk -t{args.threads} -c{args.connections}, "
        f"{args.rounds} round(s) × {args.duration:g} s (medians over rounds)\n"
    )
    print(report.table(rows))
    if counts:
        print(
            f"\n## Both figures: CPU under load, instructions (callgrind, one worker, {args.instructions} requests)\n"
        )
        print(report.both_table(rows))
    if phases:
        print("\n## Worker start-up and exit flush (otel-log-level = debug)\n")
        print(report.lifecycle_table(phases))
    print("\n## Targets (printed, not asserted)\n")
    print(report.targets_table(found, args.app))
    print(
        f"\nload average {meta['loadavg_start'][0]:.2f} at start, {meta['loadavg_end'][0]:.2f} at end; "
        f"commit {meta['commit'][:12]}{' (dirty tree)' if meta['dirty'] else ''}"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "meta": meta,
                    "runs": runs,
                    "summary": rows,
                    "lifecycle": phases,
                    "targets": found,
                    "instructions": [
                        {"config": c, "path": p, "per_request": n} for (c, p), n in sorted(counts.items())
                    ],
                },
                indent=2,
                default=str,
            )
        )
        say(f"bench: wrote {args.json}")
    return 0 if runs and not any(r.get("error") for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
