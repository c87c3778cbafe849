"""``import otel_uwsgi.auto``: options read and checked, process-wide settings applied, libraries
instrumented and the export path imported, in the process that loads the app (the master, or
each worker with ``lazy-apps``), then the per-process set-up hooked to fork.  And
:func:`setup`, the same for a process that is not a uWSGI worker.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Optional

from otel_uwsgi.config import uwsgi_opt
from otel_uwsgi.config.options import OPTIONS
from otel_uwsgi.config.settings import ConfigError, Settings, load
from otel_uwsgi.runtime import gevent_loop, own_log, preflight, uwsgi_api
from otel_uwsgi.runtime.process import init_process
from otel_uwsgi.runtime.state import other_tracer_provider, state

logger = logging.getLogger(__name__)


def _apply_process_settings(settings: Settings) -> None:
    """Settings that act on the whole process: log level, pass-through variables, propagators."""
    level = settings["otel-log-level"]
    if level:
        for name in ("otel_uwsgi", "opentelemetry"):
            logging.getLogger(name).setLevel(level.upper())
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

    Outside uWSGI it does nothing but log one line: call :func:`otel_uwsgi.setup` there.  A wrong
    ``otel-*`` value in the ini stops uWSGI with one line (:class:`ConfigError`); any other
    failure is logged and the app loads and serves untraced.
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
    own_log.to_uwsgi_log()  # at INFO; otel-log-level, once read, adjusts it
    try:
        settings = _settings_of_this_uwsgi(os.environ if environ is None else environ)
        if settings is None:
            return False
        return _install(settings)
    except ConfigError as exc:
        error = str(exc)
    except Exception:  # noqa: BLE001 - telemetry never stops the app from loading
        logger.exception(
            "otel-uwsgi: could not set up tracing in pid %d; the app runs untraced (please report this)", os.getpid()
        )
        return False
    uwsgi_api.stop_startup(error)  # outside the except block: no chained traceback in uWSGI's log


def _settings_of_this_uwsgi(environ: Mapping[str, str]) -> Optional[Settings]:
    """The options from uwsgi.ini and the environment, checked against this uWSGI; process-wide
    settings applied.  None when ``otel-sdk-disabled``.  Raises :class:`ConfigError`."""
    opt = uwsgi_api.options()
    settings = load(opt, environ, where=uwsgi_opt.config_file(opt))
    fatal, warnings = preflight.problems(settings)
    if fatal:
        raise ConfigError(fatal[0])
    for line in settings.warnings + warnings:
        logger.warning("%s", line)
    state.settings, state.installed = settings, True
    if settings["otel-sdk-disabled"]:
        logger.info("otel-uwsgi: otel-sdk-disabled is set: nothing is traced")
        return None
    _apply_process_settings(settings)
    return settings


def _install(settings: Settings) -> bool:
    """Instrument, preload, and hook the per-process set-up to fork (or run it: lazy-apps)."""
    from otel_uwsgi.instrumentation.registry import instrument

    opt = uwsgi_api.options()
    opt_where = uwsgi_opt.config_file(opt)
    late_gevent = gevent_loop.late_patch_warning(opt)
    if late_gevent is not None:
        logger.warning("%s", late_gevent)
    instrument(
        settings["otel-instrumentations"],
        fast=settings["otel-fast-instrumentation"],
        metrics=settings["otel-metrics-exporter"] != "none",
        disabled=settings["otel-python-disabled-instrumentations"] or (),
        strict=settings.source("otel-instrumentations") == "uwsgi",
        where=opt_where,
    )
    _preload(settings)
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
        if settings["otel-span-journal"] and settings["otel-traces-exporter"] == "otlp":
            from otel_uwsgi.runtime import master_exit
            from otel_uwsgi.runtime.process import instance

            try:
                master_exit.arm(settings, instance(settings))
            except Exception:  # noqa: BLE001 - the workers' own journals still work
                logger.exception("otel-uwsgi: could not arm the master's exit handler for the span journals")
    else:
        # lazy-apps (or a mule / spooler importing us): the post-fork hook has already run.
        # No C exit handler yet: registered now it would run *after* uWSGI's own handler (added
        # once the app is loaded) has finalised Python, and the ctypes callback would crash the
        # exiting worker; it is registered at the first request instead.
        init_process(settings)
    return True


def setup(*, environ: Optional[Mapping[str, str]] = None, instrumentations: Optional[tuple[str, ...]] = None) -> bool:
    """Trace a process that is not a uWSGI worker (``manage.py`` commands, scripts, tests).

    Reads the ``OTEL_*`` environment only, instruments, and builds the provider right away; the
    queue is flushed (bounded) when the process exits.  Under uWSGI this is ``install()``.
    """
    if uwsgi_api.available():
        return install(environ=environ)
    try:
        environ = os.environ if environ is None else environ
        settings = load({}, environ)
        for line in settings.warnings:
            logger.warning("%s", line)
        state.settings = settings
        if settings["otel-sdk-disabled"]:
            return False
        _apply_process_settings(settings)
        from otel_uwsgi.instrumentation.registry import instrument

        instrument(
            instrumentations or settings["otel-instrumentations"],
            fast=settings["otel-fast-instrumentation"],
            metrics=settings["otel-metrics-exporter"] != "none",
            disabled=settings["otel-python-disabled-instrumentations"] or (),
        )
    except Exception:  # noqa: BLE001 - telemetry never stops the program
        logger.exception("otel-uwsgi: could not set up tracing in pid %d; running untraced", os.getpid())
        return False
    return init_process(settings)


def _preload(settings: Settings) -> None:
    """Import, in the master before fork, everything a worker's set-up after fork and its exit
    flush use: otel-uwsgi's own modules and the export path of every signal that is on.

    Imported after fork, every worker pays it again (~150 ms under load, with ``requests``), and a
    stop signal arriving meanwhile interrupts a half-done import (uWSGI prints the worker's
    KeyboardInterrupt, and that worker serves untraced).  Imported before fork, the modules are
    shared copy-on-write and a worker's set-up takes milliseconds.  An import that fails here is
    only a slower start: each worker tries again (and says why).
    """
    try:
        _import_after_fork_path(settings)
    except Exception as error:  # noqa: BLE001 - the workers build (or report) their exporters themselves
        logger.info("otel-uwsgi: could not preload the export path in the master (%s: %s)", type(error).__name__, error)


def _import_after_fork_path(settings: Settings) -> None:
    import otel_uwsgi.runtime.metrics_and_logs  # noqa: F401
    import otel_uwsgi.runtime.resource  # noqa: F401
    import otel_uwsgi.traces.flush  # noqa: F401
    import otel_uwsgi.traces.journal.adopt  # noqa: F401
    import otel_uwsgi.traces.journal.processor  # noqa: F401
    import otel_uwsgi.traces.ledger  # noqa: F401
    import otel_uwsgi.traces.processor  # noqa: F401
    import otel_uwsgi.traces.provider  # noqa: F401

    if settings["otel-lean-spans"]:
        try:
            import otel_uwsgi.traces.lean.tracer  # noqa: F401
        except Exception:  # noqa: BLE001 - an SDK it cannot load with: each worker's provider steps aside and says so
            pass
    if settings["otel-metrics-exporter"] != "none":
        import otel_uwsgi.metrics.provider  # noqa: F401
        import otel_uwsgi.metrics.server  # noqa: F401
    if settings["otel-logs-exporter"] != "none":
        import otel_uwsgi.logs.export  # noqa: F401
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
