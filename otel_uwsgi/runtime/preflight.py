"""What is wrong with this uWSGI setup for tracing, said before anything is traced.

:func:`problems` inspects the running uWSGI (threads, master, ``worker-reload-mercy`` against
the flush timeout, ``skip-atexit``, ``die-on-term`` in a container) and returns one-line
messages that name the option to change: fatal ones stop startup, the others are warnings.
"""

from __future__ import annotations

import os

from otel_uwsgi.config import uwsgi_opt
from otel_uwsgi.config.settings import Settings
from otel_uwsgi.runtime import uwsgi_api

#: The warning for uWSGI 2.0 in a container without die-on-term (otel-uwsgi check says it too).
CONTAINER_STOP = (
    "otel-uwsgi: uWSGI runs in a container without `die-on-term = true`: on uWSGI 2.0 the SIGTERM of "
    "`docker stop` (or Kubernetes) reloads it instead of stopping it, the container is SIGKILLed after "
    "its grace period and every worker's queued spans are lost; add `die-on-term = true`"
)


#: Files Docker and Podman put in a container.
CONTAINER_FILES = ("/.dockerenv", "/run/.containerenv")


def in_a_container() -> bool:
    """Whether uWSGI's master is a container's main process (PID 1 of its namespace) or runs
    under Docker, Podman or Kubernetes."""
    return (
        uwsgi_api.master_pid() == 1
        or any(os.path.exists(f) for f in CONTAINER_FILES)
        or "KUBERNETES_SERVICE_HOST" in os.environ
    )


def problems(settings: Settings) -> tuple[list[str], list[str]]:
    """Inspect the uWSGI setup: (fatal problems, warnings), each a one-line message."""
    opt = uwsgi_api.options()
    fatal: list[str] = []
    warnings: list[str] = []
    if not uwsgi_api.has_threads():
        fatal.append(
            "otel-uwsgi: Python threads are disabled in this uWSGI, so spans would never be exported; "
            "add `enable-threads = true` (or `threads = N`) to the [uwsgi] section"
        )
    if uwsgi_api.master_pid() == 0 and uwsgi_api.process_count() > 1:
        warnings.append(
            "otel-uwsgi: `master` is not enabled with several processes; set `master = true` so each "
            "worker gets its own tracer after fork"
        )
    mercy = uwsgi_opt.integer(opt, "worker-reload-mercy", 60)
    flush_ms = settings["otel-exit-flush-timeout"]
    if flush_ms >= (mercy - 1) * 1000:
        message = (
            f"otel-uwsgi: otel-exit-flush-timeout ({flush_ms} ms) must be below worker-reload-mercy "
            f"({mercy} s) minus 1 s, or uWSGI kills workers before their spans are flushed; "
            "lower otel-exit-flush-timeout or raise worker-reload-mercy"
        )
        (fatal if settings.source("otel-exit-flush-timeout") == "uwsgi" else warnings).append(message)
    if in_a_container() and uwsgi_opt.sigterm_reloads(opt, uwsgi_api.version()):
        warnings.append(CONTAINER_STOP)
    if uwsgi_opt.flag(opt, "skip-atexit"):
        warnings.append(
            "otel-uwsgi: `skip-atexit` is set; spans are still flushed at exit through a C exit handler, "
            "but not if uWSGI ends the worker with _exit"
        )
    return fatal, warnings
