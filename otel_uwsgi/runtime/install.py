"""``import otel_uwsgi.auto``: options read and checked, process-wide settings applied, libraries
instrumented and the export path imported, in the process that loads the app (the master, or
each worker with ``lazy-apps``), then the per-process set-up hooked to fork.  And
:func:`setup`, the same for a process that is not a uWSGI worker.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Optional

from otel_uwsgi.config import uwsgi_opt
from otel_uwsgi.config.options import OPTIONS
from otel_uwsgi.config.settings import ConfigError, Settings, load
from otel_uwsgi.runtime import preflight, uwsgi_api
from otel_uwsgi.runtime.process import init_process
from otel_uwsgi.runtime.state import other_tracer_provider, state

logger = logging.getLogger("otel_uwsgi")


def _apply_process_settings(settings: Settings) -> None:
    """Settings that act on the whole process: log level, pass-through variables, propagators."""
    level = settings["otel-log-level"]
    if level:
        for name in ("otel_uwsgi", "opentelemetry"):
            logging.getLogger(name).setLevel(level.upper())
        if not logger.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
            logger.addHandler(handler)
    for option in OPTIONS:
        if option.passthrough and settings.source(option.name) == "uwsgi":
            os.environ[option.env] = settings[option.name]  # type: ignore[index]
    if settings.source("otel-propagators") == "uwsgi":
        _set_propagators(settings["otel-propagators"])
    from otel_uwsgi.logs.correlation import configure_logging

    configure_logging(settings)  # trace ids on log records; the root format/level the options ask for


def _set_propagators(names: tuple[str, ...]) -> None:
    from importlib.metadata import entry_points

    from opentelemetry.propagate import set_global_textmap
    from opentelemetry.propagators.composite import CompositePropagator

    found = {ep.name: ep for ep in entry_points(group="opentelemetry_propagator")}
    propagators = []
    for name in names:
        if name == "none":
            continue
        if name not in found:
            raise ConfigError(
                f"otel-uwsgi: invalid value for otel-propagators: {name!r} is not installed; "
                f"accepted: {', '.join(sorted(found))} (others need their opentelemetry-propagator-* package)"
            )
        propagators.append(found[name].load()())
    set_global_textmap(CompositePropagator(propagators))


def install(*, environ: Optional[Mapping[str, str]] = None) -> bool:
    """What ``import otel_uwsgi.auto`` does. Returns True when tracing is (or will be) set up.

    Outside uWSGI it does nothing but log one line: call :func:`otel_uwsgi.setup` there.
    """
    if state.installed:
        logger.debug("otel-uwsgi: already installed in pid %d", os.getpid())
        return True
    if not uwsgi_api.available():
        logger.info(
            "otel-uwsgi: not running under uWSGI, so `import otel_uwsgi.auto` does nothing here; "
            "call otel_uwsgi.setup() to trace this process"
        )
        return False
    environ = os.environ if environ is None else environ
    opt = uwsgi_api.options()
    where = uwsgi_opt.config_file(opt)
    try:
        settings = load(opt, environ, where=where)
        fatal, warnings = preflight.problems(settings)
        if fatal:
            raise ConfigError(fatal[0])
        for line in settings.warnings + warnings:
            logger.warning("%s", line)
        state.settings, state.installed = settings, True
        if settings["otel-sdk-disabled"]:
            logger.info("otel-uwsgi: otel-sdk-disabled is set: nothing is traced")
            return False
        _apply_process_settings(settings)
    except ConfigError as exc:
        error = str(exc)
    else:
        error = None
    if error is not None:  # outside the except block: no chained traceback in uWSGI's log
        uwsgi_api.stop_startup(error)
    from otel_uwsgi.instrumentation.registry import instrument

    instrument(settings["otel-instrumentations"], fast=settings["otel-fast-instrumentation"])
    _preload_export_path(settings)
    kind = uwsgi_api.identity()[0]
    if kind == "master":
        other = other_tracer_provider()
        if other is not None:
            logger.warning(
                "otel-uwsgi: a TracerProvider (%s) was already set in the uWSGI master; workers "
                "would all export with the master's pid and instance id, so otel-uwsgi leaves it "
                "in place and builds none. Remove the other setup.",
                other,
            )
            return False
        uwsgi_api.register_postfork(init_process)
    else:
        # lazy-apps (or a mule / spooler importing us): the post-fork hook has already run.
        # No C exit handler yet: registered now it would run *after* uWSGI's own handler (added
        # once the app is loaded) has finalised Python, and the ctypes callback would crash the
        # exiting worker; it is registered at the first request instead.
        init_process(settings, c_exit_handler=False)
    return True


def setup(*, environ: Optional[Mapping[str, str]] = None, instrumentations: Optional[tuple[str, ...]] = None) -> bool:
    """Trace a process that is not a uWSGI worker (``manage.py`` commands, scripts, tests).

    Reads the ``OTEL_*`` environment only, instruments, and builds the provider right away; the
    queue is flushed (bounded) when the process exits.  Under uWSGI this is ``install()``.
    """
    if uwsgi_api.available():
        return install(environ=environ)
    environ = os.environ if environ is None else environ
    settings = load({}, environ)
    for line in settings.warnings:
        logger.warning("%s", line)
    state.settings = settings
    if settings["otel-sdk-disabled"]:
        return False
    _apply_process_settings(settings)
    from otel_uwsgi.instrumentation.registry import instrument

    instrument(instrumentations or settings["otel-instrumentations"], fast=settings["otel-fast-instrumentation"])
    return init_process(settings)




def _preload_export_path(settings: Settings) -> None:
    """Import the export path of every signal that is on, in the master, before fork.

    Building the exporters imports ``requests`` and friends (~100 ms); done after fork, every
    worker pays it again and a signal arriving meanwhile interrupts a half-done import.  Imported
    before fork, the modules are shared copy-on-write and a worker's init takes milliseconds.
    """
    if settings["otel-metrics-exporter"] == "otlp":
        import opentelemetry.exporter.otlp.proto.http.metric_exporter  # noqa: F401
        import opentelemetry.sdk.metrics  # noqa: F401
    if settings["otel-logs-exporter"] == "otlp":
        import opentelemetry.exporter.otlp.proto.http._log_exporter  # noqa: F401
        import opentelemetry.sdk._logs  # noqa: F401
    if settings["otel-traces-exporter"] != "otlp":
        return
    import netrc  # noqa: F401 - requests reads it lazily at the first export
    import shlex  # noqa: F401

    import requests  # noqa: F401
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: F401

    import otel_uwsgi.export.encoder  # noqa: F401
    import otel_uwsgi.export.span_exporter  # noqa: F401
