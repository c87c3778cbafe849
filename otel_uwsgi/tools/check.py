"""``otel-uwsgi check``: does tracing really work with *this* uwsgi.ini?

Starts an embedded OTLP/HTTP receiver and uWSGI with a copy of the user's ini (its socket on
loopback, speaking the protocol the ini serves: HTTP, or the uwsgi protocol as nginx does; the
endpoint replaced; none of its daemons, cron jobs, mules, spooler or hooks), sends requests until
every worker has served one, stops uWSGI gracefully, then compares, per worker pid, the requests
uWSGI logged with the server spans that arrived.  Last, one real export per signal goes to the
collector the ini names (:mod:`.collector`).  Exit status 0 only when every worker delivered
spans, none was lost and the collector took the export.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, TextIO

from otel_uwsgi.config import uwsgi_ini, uwsgi_opt
from otel_uwsgi.config.settings import ConfigError, Settings
from otel_uwsgi.semconv.attributes import WORKER_ID
from otel_uwsgi.tools import collector, metrics_verdict, trace_tree, uwsgi_client
from otel_uwsgi.tools.harness import (
    HTTP_SOCKETS,
    NON_HTTP_SOCKETS,
    OWNED_KEYS,
    SERVICE_KEYS,
    Served,
    SideJobs,
    UwsgiNotFound,
    UwsgiServer,
    find_uwsgi,
    free_port,
    listener,
    owned_overrides,
    prepare_ini,
    python_settings,
    side_jobs,
)
from otel_uwsgi.tools.load import Load, load_until_covered, progress_line
from otel_uwsgi.tools.receiver import Receiver
from otel_uwsgi.tools.verdict import Report, evaluate, explain, merge, render


def count_workers(ini_text: str) -> int:
    """``processes`` / ``workers`` from the prepared ini (last wins, as on uWSGI 2.0.x)."""
    count = 1
    for key, value in uwsgi_ini.items(ini_text):
        if key in ("processes", "workers"):
            try:
                count = int(value)
            except ValueError:
                pass
    return count


@dataclass
class Plan:
    """uWSGI's copy of the user's ini and what the check does with it."""

    text: str  # the copy
    settings: Optional[Settings]  # what its workers will resolve (None if invalid)
    notes: list[str]  # what the check changed
    port: int  # the check's listener on 127.0.0.1
    protocol: str  # what it speaks there: ``http`` or ``uwsgi`` (harness.listener)
    workers: int

    @property
    def target(self) -> str:
        """What is tested, said first."""
        if self.protocol == "uwsgi":
            return f"testing the uwsgi protocol on 127.0.0.1:{self.port} as nginx would"
        return f"testing HTTP on 127.0.0.1:{self.port}"


def run_check(
    ini: str,
    *,
    path: str = "/",
    requests: int = 200,
    timeout: float = 60.0,
    progress: Optional[TextIO] = None,
    extra: Optional[dict[str, str]] = None,
    receiver: Optional[Receiver] = None,
    endpoint: Optional[str] = None,
    on_server: Optional[Callable[[UwsgiServer], None]] = None,
    uwsgi: Optional[str] = None,
    test_collector: bool = True,
) -> tuple[Report, str]:
    """Run the check; returns the report and uWSGI's log.

    The steps: plan uWSGI's copy of the ini, run it under load, judge what arrived, then (with
    ``test_collector``) send one export to the collector the ini names.  ``receiver``/``endpoint``
    let the Docker checker point uWSGI at a collector that forwards to a receiver listening
    elsewhere; ``uwsgi`` names the executable (:func:`find_uwsgi`).  Raises :class:`UwsgiNotFound`
    when there is none.
    """
    uwsgi = find_uwsgi(uwsgi)
    own_receiver = receiver is None
    receiver = receiver or Receiver().start()
    deadline = time.monotonic() + timeout
    # uWSGI's copy of the ini (it may hold header values) and its log: removed when done.
    workdir = tempfile.mkdtemp(prefix="otel-uwsgi-check-")
    try:
        plan = _plan(ini, uwsgi, free_port(), endpoint or receiver.endpoint, workdir, extra)
        started = time.monotonic()
        server = UwsgiServer(plan.text, workdir=workdir, uwsgi=uwsgi)
        with server:
            if on_server:
                on_server(server)
            server.wait_workers(plan.workers, max(1.0, deadline - time.monotonic()))
            _load(server, receiver, plan, path, requests=requests, deadline=deadline, progress=progress)
            server.stop(signal.SIGINT, kill_after=max(5.0, deadline - time.monotonic() + 5))
            if progress:
                progress.write("\n")
        report = _verdict(server, receiver, plan.settings, ini, plan.workers, started)
        report.target = plan.target
        report.notes[:0] = plan.notes
        if test_collector:
            if progress:
                progress.write("testing your collector...\n")
            report = _collector_verdict(report, ini, uwsgi, workdir, extra)
        return report, server.log()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if own_receiver:
            receiver.stop()


def _plan(
    ini: str, uwsgi: str, port: int, endpoint: str, workdir: str, extra: Optional[dict[str, str]]
) -> Plan:
    """uWSGI's copy of the user's ini: the check's socket (the protocol the ini serves), endpoint,
    request log and journals, none of its daemons, cron jobs, mules, spooler or hooks, what a
    distribution's uWSGI needs to run this Python, and ``extra``."""
    items = uwsgi_ini.read(ini)
    protocol = listener(items)
    overrides = owned_overrides(port, endpoint, os.path.join(workdir, "journal"), protocol=protocol)
    jobs = side_jobs(items)
    overrides.update(jobs.overrides)
    notes = _service_notes(ini, protocol, jobs)
    added, python_notes = python_settings(uwsgi, (key for key, _ in items))
    overrides.update(added)
    notes += python_notes
    overrides.update(extra or {})
    drop = OWNED_KEYS | jobs.drop | {"otel-exporter-otlp-metrics-endpoint", "otel-exporter-otlp-logs-endpoint"}
    settings = metrics_verdict.settings_of(prepare_ini(ini, overrides, drop=drop))
    if settings is not None and settings["otel-metrics-exporter"] != "none":
        overrides.setdefault("otel-metric-export-interval", str(metrics_verdict.CHECK_INTERVAL_MS))
        settings = metrics_verdict.settings_of(prepare_ini(ini, overrides, drop=drop))
    text = prepare_ini(ini, overrides, drop=drop)
    return Plan(text, settings, notes, port, protocol, count_workers(text))


def _collector_verdict(report: Report, ini: str, uwsgi: str, workdir: str, extra: Optional[dict[str, str]]) -> Report:
    """``report`` with the answer of the collector the ini names (:mod:`.collector`): one that did
    not take the probe fails the check."""
    try:
        settings = collector.ini_settings(ini, uwsgi, workdir, extra)
    except ConfigError:  # uWSGI refused the same settings: the report already leads with it
        report.notes.append("note: your collector was not tested: the ini's otel-* settings are invalid")
        return report
    except (OSError, subprocess.SubprocessError) as error:
        report.notes.append(f"note: your collector was not tested: {uwsgi} could not read the ini: {error}")
        return report
    probes = collector.probe(settings)
    if not probes:
        report.notes.append("note: no signal is exported over OTLP: there is no collector to test")
    report.collector = [p.as_dict() for p in probes]
    return merge(report, [f"collector: {p.line} (--no-collector skips this test)" for p in probes if not p.ok])


def _load(
    server: UwsgiServer,
    receiver: Receiver,
    plan: Plan,
    path: str,
    *,
    requests: int,
    deadline: float,
    progress: Optional[TextIO],
) -> None:
    """GET ``path`` (over the plan's protocol) until every worker served a request, ``requests``
    were served and worker 1 exported its server metrics (when on), or ``deadline`` passes;
    ``progress`` shows how far."""
    workers = plan.workers
    get = uwsgi_client.get if plan.protocol == "uwsgi" else None
    with Load("127.0.0.1", plan.port, path, concurrency=max(2, workers * 2), get=get):
        shown = [0.0]

        def show(served: Served, done: bool) -> None:
            if progress and (time.monotonic() - shown[0] > 0.5 or done):
                shown[0] = time.monotonic()
                progress.write(f"\r{progress_line(served, workers, len(receiver.server_spans()))}   ")
                progress.flush()

        load_until_covered(
            server.served,
            workers=workers,
            requests=requests,
            deadline=deadline,
            also=lambda: _server_metrics_seen(receiver, plan.settings),
            progress=show,
            running=server.alive,
        )


def _verdict(
    server: UwsgiServer, receiver: Receiver, settings: Optional[Settings], ini: str, expected: int, since: float
) -> Report:
    """The verdict on what uWSGI logged and the receiver got from a run started at ``since``
    (``time.monotonic()``)."""
    served = server.served()
    # Graceful exit flushed each worker's queue; allow the last requests to land.
    receiver.wait_for(lambda s: sum(1 for x in s if x.kind == "SERVER") >= served.total, 5.0)
    report = evaluate(served, receiver.snapshot(), expected)
    # uWSGI that exits with an error before serving anything did not start: its last words say why
    report = explain(report, server.log(), renamed={str(server.ini_path): str(ini)},
                     started=served.total > 0 or server.returncode == 0)
    if settings is not None:
        pids = [pid for pid, n in served.requests.items() if n]
        if settings["otel-metrics-exporter"] != "none":  # each worker's final export arrives after it exits
            receiver.wait_until(lambda: pids and {p.pid for p in receiver.points} >= set(pids), 5.0)
        signals = metrics_verdict.evaluate_signals(
            receiver.metric_points(), receiver.log_records(), pids, settings=settings, window_s=time.monotonic() - since
        )
        report = metrics_verdict.merge_into(report, signals)
    return report


def _service_notes(ini: str, protocol: str, jobs: SideJobs) -> list[str]:
    """What the check does instead of what a running service started from the same ini owns
    (its pidfile, master FIFO, sockets, logs, daemons, jobs), in a few notes."""
    items = uwsgi_ini.read(ini)
    keys = {key for key, _ in items}
    notes = []
    other = [f"{key} = {value}" for key, value in items if key in NON_HTTP_SOCKETS]
    if protocol == "http" and other and not keys & HTTP_SOCKETS:
        notes.append(
            f"note: your ini serves {', '.join(other)} (not HTTP, nor the uwsgi protocol the check speaks): "
            "this check tests over HTTP instead"
        )
    if jobs.named:
        notes.append(
            f"note: not started by this check (a running service owns them): {', '.join(jobs.named)}"
            + (" (the check's cache lives in memory)" if "cache2 store" in jobs.named else "")
        )
    if uwsgi_opt.sigterm_reloads(uwsgi_ini.options(items)):  # the uWSGI version is not known yet: 2.0 assumed
        notes.append(
            "note: no `die-on-term = true`: on uWSGI 2.0 the SIGTERM of `docker stop` (or Kubernetes) reloads "
            "uWSGI instead of stopping it; in a container that loses every worker's queued spans"
        )
    left = sorted(keys & SERVICE_KEYS - jobs.drop)
    if left:
        notes.append(f"note: left alone, as a running service owns them: {', '.join(left)}")
    return notes


def _server_metrics_seen(receiver: Receiver, settings: Any, exports: int = 3) -> bool:
    """With server metrics on, keep the load up until worker 1 exported them a few times."""
    if settings is None or settings["otel-metrics-exporter"] == "none" or not settings["otel-uwsgi-server-metrics"]:
        return True
    name, wid = metrics_verdict.REFERENCE
    return sum(1 for p in receiver.metric_points(name) if p.attributes.get(WORKER_ID) == wid) >= exports


#: The demo's uWSGI configuration, shipped in the package: ``otel-uwsgi demo`` needs no checkout.
DEMO_INI = Path(__file__).resolve().parent.parent / "demo" / "demo.ini"
DEMO_PATH = "/trace"
#: The start of the lines the demo app writes to uWSGI's log about its stack (otel_uwsgi/demo/installed.py).
DEMO_ANNOUNCE = "otel-uwsgi demo: "


def _demo_stack(log: str) -> str:
    """``demo: Flask + SQLite + Redis + urllib`` (and what it does not trace), as the demo app wrote it."""
    return "\n".join(f"demo: {line[len(DEMO_ANNOUNCE):]}" for line in dict.fromkeys(log.splitlines())
                     if line.startswith(DEMO_ANNOUNCE))


def add_arguments(parser: argparse.ArgumentParser, *, demo: bool = False) -> None:
    """The flags of ``otel-uwsgi check`` (``demo``: of ``otel-uwsgi demo``, which has its own ini)."""
    if not demo:
        parser.add_argument("ini", help="path to your uwsgi.ini")
    parser.add_argument("--requests", type=int, default=200, help="minimum requests to send (default 200)")
    default_path = DEMO_PATH if demo else "/"
    parser.add_argument("--path", default=default_path, help=f"URL path to request (default {default_path})")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before giving up (default 60)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--show-log", action="store_true", help="print uWSGI's log after the report")
    parser.add_argument("--metrics", action="store_true",
                        help="turn metrics on for this run (otel-metrics-exporter = otlp) and verify them")
    parser.add_argument("--logs", action="store_true", help="turn OTLP log export on for this run and count records")
    parser.add_argument("--trace", action=argparse.BooleanOptionalAction, default=demo,
                        help="draw one whole trace per route as a tree before the table (default: "
                        f"{'on' if demo else 'off'}; not with --json)")
    if not demo:
        parser.add_argument("--no-collector", action="store_true",
                            help="do not test the collector your ini names (e.g. on a laptop without one)")
    parser.add_argument(
        "--uwsgi",
        metavar="PATH",
        help="the uwsgi executable (default: the one beside this Python, then the first on PATH)",
    )


def run_from_arguments(args: argparse.Namespace) -> int:
    """``otel-uwsgi check`` (or ``demo``, without ``args.ini``) with parsed arguments; the exit status."""
    if getattr(args, "ini", None) is None:
        args.ini = str(DEMO_INI)
    if not Path(args.ini).is_file():
        print(f"otel-uwsgi check: no such ini file: {args.ini}", file=sys.stderr)
        return 2
    try:
        uwsgi = find_uwsgi(args.uwsgi)
    except UwsgiNotFound as error:
        print(f"otel-uwsgi check: {error}", file=sys.stderr)
        return 2
    receiver = Receiver().start()  # kept past the run: --trace draws what it received
    try:
        report, log = run_check(
            args.ini,
            receiver=receiver,
            uwsgi=uwsgi,
            path=args.path,
            requests=args.requests,
            timeout=args.timeout,
            progress=None if args.json else sys.stderr,
            extra={**({"otel-metrics-exporter": "otlp"} if args.metrics else {}),
                   **({"otel-logs-exporter": "otlp"} if args.logs else {})},
            test_collector=not getattr(args, "no_collector", True),  # the demo has no collector of its own
        )
    finally:
        receiver.stop()
    trees = trace_tree.draw(receiver.snapshot(), encoding=sys.stdout.encoding) if args.trace else ""
    drawn = "\n\n".join(part for part in (_demo_stack(log), trees) if part)
    if drawn and not args.json:
        print(drawn + "\n")
    if getattr(args, "no_collector", False):
        report.notes.append("note: your collector was not tested (--no-collector)")
    print(report.to_json() if args.json else render(report))
    if args.show_log or (not report.ok and not args.json):
        tail = "\n".join(log.splitlines()[-40:])
        print("\n--- last lines of the uWSGI log ---\n" + tail, file=sys.stderr)
    return 0 if report.ok else 1


def main(argv: Optional[list[str]] = None) -> int:
    """``otel-uwsgi check ARGS``."""
    parser = argparse.ArgumentParser(prog="otel-uwsgi check", description=__doc__.strip().splitlines()[0])
    add_arguments(parser)
    return run_from_arguments(parser.parse_args(argv))
