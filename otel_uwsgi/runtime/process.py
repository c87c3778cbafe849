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
from otel_uwsgi.runtime import stop_guard, uwsgi_api
from otel_uwsgi.runtime.exit_flush import exit_signals_blocked, flush_at_exit, register_exit
from otel_uwsgi.runtime.state import other_tracer_provider, state

logger = logging.getLogger("otel_uwsgi")


def init_process(settings: Optional[Settings] = None, *, c_exit_handler: bool = True) -> bool:
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
        from opentelemetry import trace

        from otel_uwsgi.runtime import providers
        from otel_uwsgi.runtime.resource import build_resource
        from otel_uwsgi.traces.ledger import Ledger
        from otel_uwsgi.traces.provider import build_provider

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
        kind, worker_id, mule_id = uwsgi_api.identity()
        resource = build_resource(
            settings,
            process_type=kind,
            worker_id=worker_id,
            mule_id=mule_id,
            parent_pid=uwsgi_api.master_pid() or None,
        )
        ledger = Ledger()
        with exit_signals_blocked():  # the export threads start here
            provider = build_provider(settings, resource, ledger)
            trace.set_tracer_provider(provider)
            state.provider, state.pid, state.flushed, state.ledger = provider, pid, False, ledger
            state.others = providers.start(settings, resource, ledger=ledger, process_type=kind, worker_id=worker_id)
            if kind == "worker" and uwsgi_api.available():
                # A busy worker's stop signal is flushed on this thread, not in uWSGI's handler.
                stop_guard.start(flush_at_exit, exit_wait_ms=settings["otel-exit-flush-timeout"] + 1000)
        register_exit(settings, c_exit_handler=c_exit_handler)
        if kind == "spooler":
            _flush_after_spooler_tasks(provider, settings["otel-exit-flush-timeout"] / 1000.0)
        elapsed_ms = (time.perf_counter() - started) * 1000
        logger.debug(
            "otel-uwsgi: tracing started in %s pid %d in %.1f ms (%d modules imported)",
            kind,
            pid,
            elapsed_ms,
            len(sys.modules) - modules,
        )
        return True
    except Exception:  # noqa: BLE001 - never break a worker over telemetry
        logger.exception("otel-uwsgi: could not start tracing in pid %d", pid)
        return False


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
