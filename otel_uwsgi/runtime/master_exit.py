"""At the final shutdown, the uWSGI master ships what the workers could not.

A worker stopped while busy, killed or crashed leaves its ended spans (and the request it was
serving) in its span journal.  While uWSGI runs, a living worker or the successor ships them
within about a second; at the final shutdown nobody is left but the master, and it runs no
Python at exit.  So, in the master, before fork: take the instance's shared hold (inherited by
every worker) and register a C exit handler (``_exit.c``) that, in the master only, ships every
journal whose owner is dead, within ``otel-exit-flush-timeout``, one attempt per batch.

Without the C extension, or with ``lazy-apps`` (no otel-uwsgi in the master), such journals
wait for the next start of the same service, whose workers ship them.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Optional

from otel_uwsgi.config.settings import Settings
from otel_uwsgi.native import accel

logger = logging.getLogger(__name__)


def _c_part() -> Optional[Any]:
    if accel.disabled():
        return None
    try:
        from otel_uwsgi.runtime import _exit
    except ImportError:
        return None
    return _exit


def available() -> bool:
    """Whether the master's exit handler can be registered here (its C part was built)."""
    return _c_part() is not None


def arm(settings: Settings, instance: Any) -> bool:
    """In the master, before fork: hold ``instance`` and ship its dead journals at exit."""
    c_part = _c_part()
    if c_part is None:
        logger.debug("otel-uwsgi: no C exit handler for the master; journals left at shutdown wait for the next start")
        return False
    instance.hold()
    c_part.register_exit(lambda: ship_at_exit(settings, instance))
    return True


def ship_at_exit(settings: Settings, instance: Any) -> None:
    """Ship the dead journals of ``instance`` within ``otel-exit-flush-timeout`` (a request that starts
    just before it may take up to that again).  Never raises."""
    try:
        if not instance.journals():
            return
        from otel_uwsgi.export import otlp
        from otel_uwsgi.traces.journal.adopt import ship_instance
        from otel_uwsgi.traces.provider import build_span_exporter

        started = time.monotonic()
        timeout_s = settings["otel-exit-flush-timeout"] / 1000.0
        # Each request bounded by the flush timeout too: the deadline is checked between requests, and
        # a hanging collector held each journal's first request for otel-exporter-otlp-timeout (two
        # busy workers' journals: a 21 s stop with a 2 s flush timeout).
        exporter = build_span_exporter(settings, timeout_s=timeout_s)
        if exporter is None:
            return
        otlp.stop_retrying(exporter)  # the first answer is the outcome at a stop
        shipped = ship_instance(
            instance, exporter, batch=settings["otel-bsp-max-export-batch-size"], deadline=started + timeout_s,
            ack_first=True, previous_runs=False, skip_cut_exits=True,
        )
        if shipped.left:
            logger.warning(
                "otel-uwsgi: %d worker journal(s) still hold spans at the final stop (collector slow or "
                "unreachable within otel-exit-flush-timeout, %.1f s); the next start of this service ships them",
                shipped.left,
                timeout_s,
            )
        elif shipped.journals:
            elapsed_ms = (time.monotonic() - started) * 1000
            logger.debug("otel-uwsgi: the master shipped %d journal(s) in %.0f ms", shipped.journals, elapsed_ms)
        exporter.shutdown()
    except BaseException:  # noqa: BLE001 - nothing may escape into the master's exit
        try:
            logger.exception("otel-uwsgi: error while the master shipped the workers' journals")
        except BaseException:  # noqa: BLE001
            pass
