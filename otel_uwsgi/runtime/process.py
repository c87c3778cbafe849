"""After fork, in each worker, mule and the spooler: this process's Resource, providers and exit hooks.

uWSGI forks in C, so Python's fork hooks do not run; everything that owns a thread, a socket or
a per-process identity (provider, batch processor, exporter, Resource) is built in the process
that uses it: from uWSGI's post-fork hook, or directly when the import already happens in a
worker (``lazy-apps``, where the hook has run before the app is loaded).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any, Optional

from otel_uwsgi.config.settings import Settings
from otel_uwsgi.runtime import uwsgi_api
from otel_uwsgi.runtime.exit_flush import exit_signals_blocked, register_exit
from otel_uwsgi.runtime.state import other_tracer_provider, state

logger = logging.getLogger(__name__)


def init_process(settings: Optional[Settings] = None) -> bool:
    """Build this process's Resource, provider, processor and exporter; register exit flush.

    Safe to call more than once: a second call in the same process does nothing.  Never raises:
    a tracing problem is logged and the process keeps serving.
    """
    settings = settings or state.settings
    if settings is None or settings["otel-sdk-disabled"]:
        return False
    pid = os.getpid()
    if state.provider is not None and state.pid == pid:
        return True
    started, modules = time.perf_counter(), len(sys.modules)
    try:
        other = other_tracer_provider()
        if other is not None:
            logger.warning(
                "otel-uwsgi: a TracerProvider (%s) was set before otel-uwsgi in pid %d; keeping it, so "
                "spans carry its resource (not this worker's pid and instance id). Remove the other "
                "setup (e.g. opentelemetry-instrument, or a provider made at import time).",
                other,
                pid,
            )
            return False
        kind = _start_providers(settings, pid)
        register_exit()
        if kind == "spooler" and state.journal is None:
            _flush_after_spooler_tasks(state.provider, settings["otel-exit-flush-timeout"] / 1000.0)
        logger.debug(
            "otel-uwsgi: tracing started in %s pid %d in %.1f ms (%d modules imported)",
            kind,
            pid,
            (time.perf_counter() - started) * 1000,
            len(sys.modules) - modules,
        )
        return True
    except Exception:  # noqa: BLE001 - never break a worker over telemetry
        logger.exception("otel-uwsgi: could not start tracing in pid %d", pid)
        return False


def _start_providers(settings: Settings, pid: int) -> str:
    """This process's tracer provider (with its span journal) and its meter and logger providers,
    all with this process's Resource; returns the kind of uWSGI process this is."""
    from opentelemetry import trace

    from otel_uwsgi.runtime import metrics_and_logs
    from otel_uwsgi.runtime.resource import build_instance_resource, build_resource
    from otel_uwsgi.traces.ledger import Ledger
    from otel_uwsgi.traces.provider import build_provider, journal_processor

    kind, worker_id, mule_id = uwsgi_api.identity()
    resource = build_resource(
        settings, process_type=kind, worker_id=worker_id, mule_id=mule_id, parent_pid=uwsgi_api.master_pid() or None
    )
    instance_resource = None
    if settings["otel-metrics-exporter"] != "none" and settings["otel-uwsgi-server-metrics"]:
        from otel_uwsgi.metrics.server import owns_server_metrics

        if owns_server_metrics(kind, worker_id) and uwsgi_api.available():  # what the instance reports as a whole
            instance_resource = build_instance_resource(
                settings, master_pid=uwsgi_api.master_pid(), started_on=uwsgi_api.started_on()
            )
    ledger = Ledger()
    with exit_signals_blocked():  # the export threads start here
        provider = build_provider(settings, resource, ledger, journal_place(settings, kind, worker_id, mule_id))
        trace.set_tracer_provider(provider)
        state.provider, state.pid, state.flushed, state.ledger = provider, pid, False, ledger
        state.journal = journal_processor(provider)
        if state.journal is not None:
            state.journal.start()
        state.others = metrics_and_logs.start(settings, resource, ledger=ledger, instance_resource=instance_resource)
    return kind


def journal_place(settings: Settings, kind: str, worker_id: Optional[int], mule_id: Optional[int]) -> Any:
    """Where this uWSGI process's span journal goes (None outside uWSGI: a script has no one to
    outlive it, so its spans wait in memory and are flushed at its exit)."""
    if not uwsgi_api.available() or kind == "master":
        return None
    from otel_uwsgi.traces.journal.region import Owner
    from otel_uwsgi.traces.provider import JournalPlace

    owner = Owner(
        pid=os.getpid(),
        master_pid=uwsgi_api.master_pid(),
        worker_id=worker_id or 0,
        harakiri_s=uwsgi_api.harakiri_seconds() if kind == "worker" else 0,
        created_ns=time.time_ns(),
    )
    name = f"{kind}{mule_id}" if kind == "mule" and mule_id else kind
    return JournalPlace(instance=instance(settings), kind=name, owner=owner)


def instance(settings: Settings) -> Any:
    """This uWSGI instance's journal directory (the same object in the master and, inherited, in
    every process it forks: the master's shared hold on it is theirs too)."""
    from otel_uwsgi.traces.journal.directory import Instance, service_dir

    key = f"{uwsgi_api.master_pid()}-{uwsgi_api.started_on()}"
    if state.instance is None or state.instance.key != key:
        state.instance = Instance(service_dir(settings["otel-span-journal-dir"], settings["otel-service-name"]), key)
    return state.instance


def delivery_counts() -> dict[str, int]:
    """What became of this process's spans: ended, exported, dropped (by reason), pending.

    Empty when tracing is not running in this process.
    """
    if state.ledger is None or state.pid != os.getpid():
        return {}
    return state.ledger.counts().as_dict()


def _flush_after_spooler_tasks(provider: Any, timeout_s: float) -> None:
    """uWSGI SIGKILLs the spooler at every stop and reload, so nothing it still queues survives:
    its spans are exported after each task instead (bounded by the flush timeout)."""
    from otel_uwsgi.traces.flush import flush_bounded

    def flush() -> None:
        if not flush_bounded(provider, timeout_s):
            logger.warning(
                "otel-uwsgi: pid %d: the spooler's spans were not exported within %.1f s", os.getpid(), timeout_s
            )

    if uwsgi_api.after_each_spooler_task(flush):
        logger.debug("otel-uwsgi: the spooler's spans are exported after each task")
