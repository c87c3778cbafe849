"""``otel-uwsgi check``: does tracing really work with *this* uwsgi.ini?

Starts an embedded OTLP/HTTP receiver and uWSGI with the user's ini (socket and endpoint
replaced, on loopback), sends requests until every worker has served one, stops uWSGI
gracefully, then compares, per worker pid, the requests uWSGI logged with the server spans that
arrived.  Exit status 0 only when every worker delivered spans and none was lost.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional, TextIO

from otel_uwsgi.config import uwsgi_ini, uwsgi_opt
from otel_uwsgi.config.settings import Settings
from otel_uwsgi.semconv.attributes import WORKER_ID
from otel_uwsgi.tools import metrics_verdict, trace_tree
from otel_uwsgi.tools.harness import (
    NON_HTTP_SOCKETS,
    OWNED_KEYS,
    SERVICE_KEYS,
    Served,
    UwsgiNotFound,
    UwsgiServer,
    find_uwsgi,
    free_port,
    owned_overrides,
    prepare_ini,
    python_settings,
)
from otel_uwsgi.tools.load import Load, load_until_covered, progress_line
from otel_uwsgi.tools.receiver import Receiver
from otel_uwsgi.tools.verdict import Report, evaluate, explain, render


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
) -> tuple[Report, str]:
    """Run the check; returns the report and uWSGI's log.

    ``receiver``/``endpoint`` let the Docker checker point uWSGI at a collector that forwards
    to a receiver listening elsewhere; ``uwsgi`` names the executable (:func:`find_uwsgi`).
    Raises :class:`UwsgiNotFound` when there is none.
    """
    uwsgi = find_uwsgi(uwsgi)
    own_receiver = receiver is None
    receiver = receiver or Receiver().start()
    deadline = time.monotonic() + timeout
    # uWSGI's copy of the ini (it may hold header values) and its log: removed when done.
    workdir = tempfile.mkdtemp(prefix="otel-uwsgi-check-")
    try:
        port = free_port()
        text, settings, notes = _prepared(ini, uwsgi, port, endpoint or receiver.endpoint, workdir, extra)
        expected = count_workers(text)
        started = time.monotonic()
        server = UwsgiServer(text, workdir=workdir, uwsgi=uwsgi)
        with server:
            if on_server:
                on_server(server)
            server.wait_workers(expected, max(1.0, deadline - time.monotonic()))
            _load(server, receiver, settings, port, path,
                  workers=expected, requests=requests, deadline=deadline, progress=progress)
            server.stop(signal.SIGINT, kill_after=max(5.0, deadline - time.monotonic() + 5))
            if progress:
                progress.write("\n")
        report = _verdict(server, receiver, settings, ini, expected, started)
        report.notes[:0] = notes
        return report, server.log()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if own_receiver:
            receiver.stop()


def _prepared(
    ini: str, uwsgi: str, port: int, endpoint: str, workdir: str, extra: Optional[dict[str, str]]
) -> tuple[str, Optional[Settings], list[str]]:
    """uWSGI's copy of the user's ini (the check's socket, endpoint, request log and journals,
    what a distribution's uWSGI needs to run this Python, and ``extra``), the settings its workers
    will resolve (None if invalid), and the notes that say what the check changed."""
    overrides = owned_overrides(port, endpoint, os.path.join(workdir, "journal"))
    notes = _service_notes(ini, port, overrides, workdir)
    added, python_notes = python_settings(uwsgi, (key for key, _ in uwsgi_ini.read(ini)))
    overrides.update(added)
    notes += python_notes
    overrides.update(extra or {})
    drop = OWNED_KEYS | {"otel-exporter-otlp-metrics-endpoint", "otel-exporter-otlp-logs-endpoint"}
    settings = metrics_verdict.settings_of(prepare_ini(ini, overrides, drop=drop))
    if settings is not None and settings["otel-metrics-exporter"] != "none":
        overrides.setdefault("otel-metric-export-interval", str(metrics_verdict.CHECK_INTERVAL_MS))
        settings = metrics_verdict.settings_of(prepare_ini(ini, overrides, drop=drop))
    return prepare_ini(ini, overrides, drop=drop), settings, notes


def _load(
    server: UwsgiServer,
    receiver: Receiver,
    settings: Optional[Settings],
    port: int,
    path: str,
    *,
    workers: int,
    requests: int,
    deadline: float,
    progress: Optional[TextIO],
) -> None:
    """GET ``path`` until every worker served a request, ``requests`` were served and worker 1
    exported its server metrics (when on), or ``deadline`` passes; ``progress`` shows how far."""
    with Load("127.0.0.1", port, path, concurrency=max(2, workers * 2)):
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
            also=lambda: _server_metrics_seen(receiver, settings),
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


def _service_notes(ini: str, port: int, overrides: dict[str, str], workdir: str) -> list[str]:
    """Keep a running service started from the same ini safe (its pidfile, master FIFO, spool
    directory, sockets and logs are the service's), and say what the check does instead."""
    items = uwsgi_ini.read(ini)
    keys = {key for key, _ in items}
    notes = []
    if "spooler" in keys:
        spool = os.path.join(workdir, "spool")
        os.makedirs(spool, exist_ok=True)
        overrides["spooler"] = spool
    uwsgi_protocol = [f"{key} = {value}" for key, value in items if key in NON_HTTP_SOCKETS]
    if uwsgi_protocol and not keys & {"http-socket", "http"}:
        notes.append(
            f"note: your ini serves {', '.join(uwsgi_protocol)} (not HTTP, e.g. the uwsgi protocol behind nginx); "
            f"this check tests over HTTP instead, on its own socket 127.0.0.1:{port}"
        )
    if uwsgi_opt.sigterm_reloads(uwsgi_ini.options(items)):  # the uWSGI version is not known yet: 2.0 assumed
        notes.append(
            "note: no `die-on-term = true`: on uWSGI 2.0 the SIGTERM of `docker stop` (or Kubernetes) reloads "
            "uWSGI instead of stopping it; in a container that loses every worker's queued spans"
        )
    left = sorted(keys & SERVICE_KEYS - {"spooler"})
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
        )
    finally:
        receiver.stop()
    trees = trace_tree.draw(receiver.snapshot(), encoding=sys.stdout.encoding) if args.trace else ""
    drawn = "\n\n".join(part for part in (_demo_stack(log), trees) if part)
    if drawn and not args.json:
        print(drawn + "\n")
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
