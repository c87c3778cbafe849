"""When things happen: settings and instrumentation at import, the tracer after fork, the
bounded flush at exit.

uWSGI forks in C, so Python's fork hooks do not run; everything that owns a thread, a socket or
a per-process identity (provider, batch processor, exporter, Resource) is built in the process
that uses it: from uWSGI's post-fork hook, or directly when the import already happens in a
worker (``lazy-apps``, where the hook has run before the app is loaded).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Optional

from otel_uwsgi import _uwsgi
from otel_uwsgi.options import ConfigError, Settings, load

logger = logging.getLogger("otel_uwsgi")


@dataclass
class _State:
    settings: Optional[Settings] = None
    installed: bool = False
    provider: Any = None
    pid: int = 0  # the process that owns ``provider``
    flushed: bool = False
    exit_callback: Any = None  # keeps the ctypes callback alive
    ledger: Any = None  # otel_uwsgi.delivery.Ledger of ``provider``
    signals: Any = None  # otel_uwsgi.signals.Signals: meter/logger providers beside ``provider``


_state = _State()

#: uWSGI's stop and reload signals.  A signal sent to a process goes to any thread that does not
#: block it: a second one (Ctrl-C reaches master and workers, systemd signals the whole cgroup, a
#: worker still loading re-sends SIGINT) landed in an export thread, whose exit() then ended the
#: process in the middle of the main thread's flush, or deadlocked it until worker-reload-mercy.
_EXIT_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT})


@contextlib.contextmanager
def _exit_signals_blocked() -> Iterator[None]:
    """Threads started inside inherit a mask without uWSGI's stop signals: only the main thread,
    whose handlers uWSGI installed, takes them."""
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _EXIT_SIGNALS)
    except (AttributeError, OSError, ValueError):  # no pthread_sigmask on this platform
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _apply_process_settings(settings: Settings) -> None:
    """Settings that act on the whole process: log level, pass-through variables, propagators."""
    from otel_uwsgi.options import OPTIONS

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
    from otel_uwsgi.logs import configure_logging

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


def _provider_already_set() -> Optional[str]:
    from opentelemetry import trace

    current = trace.get_tracer_provider()
    if isinstance(current, trace.ProxyTracerProvider):
        return None
    return f"{type(current).__module__}.{type(current).__qualname__}"


def init_process(settings: Optional[Settings] = None, *, c_exit_handler: bool = True) -> bool:
    """Build this process's Resource, provider, processor and exporter; register exit flush.

    Safe to call more than once: a second call in the same process does nothing.  Never raises:
    a tracing problem is logged and the process keeps serving.
    """
    settings = settings or _state.settings
    if settings is None or settings["otel-sdk-disabled"]:
        return False
    pid = os.getpid()
    if _state.provider is not None and _state.pid == pid:
        return True
    started = time.perf_counter()
    try:
        from opentelemetry import trace

        from otel_uwsgi.delivery import Ledger
        from otel_uwsgi.resource import build_resource
        from otel_uwsgi.tracing import build_provider

        other = _provider_already_set()
        if other is not None:
            logger.warning(
                "otel-uwsgi: a TracerProvider (%s) was set before otel-uwsgi in pid %d; keeping it, so "
                "spans carry its resource (not this worker's pid and instance id). Remove the other "
                "setup (e.g. opentelemetry-instrument, or a provider made at import time).",
                other,
                pid,
            )
            return False
        kind, worker_id, mule_id = _uwsgi.identity()
        resource = build_resource(
            settings,
            process_type=kind,
            worker_id=worker_id,
            mule_id=mule_id,
            parent_pid=_uwsgi.master_pid() or None,
        )
        ledger = Ledger()
        from otel_uwsgi import signals

        with _exit_signals_blocked():  # the export threads start here
            provider = build_provider(settings, resource, ledger)
            trace.set_tracer_provider(provider)
            _state.provider, _state.pid, _state.flushed, _state.ledger = provider, pid, False, ledger
            _state.signals = signals.start(
                settings, resource, ledger=ledger, process_type=kind, worker_id=worker_id
            )
        _register_exit(settings, c_exit_handler=c_exit_handler)
        elapsed_ms = (time.perf_counter() - started) * 1000
        logger.debug("otel-uwsgi: tracing started in %s pid %d in %.1f ms", kind, pid, elapsed_ms)
        return True
    except Exception:  # noqa: BLE001 - never break a worker over telemetry
        logger.exception("otel-uwsgi: could not start tracing in pid %d", pid)
        return False


def flush_at_exit() -> None:
    """Flush and shut down this process's provider once, within ``otel-exit-flush-timeout``."""
    if _state.provider is None or _state.pid != os.getpid() or _state.flushed:
        return
    if _uwsgi.available():
        # The process is ending: a further stop signal must not start a second exit() on top
        # of this flush (the flush thread inherits the mask).  Blocked before ``flushed`` is set,
        # so a signal that slips in first runs the whole flush itself.  SIGKILL still ends it.
        with contextlib.suppress(AttributeError, OSError, ValueError):
            signal.pthread_sigmask(signal.SIG_BLOCK, _EXIT_SIGNALS)
    _state.flushed = True
    from otel_uwsgi.tracing import shutdown_bounded

    timeout_ms = _state.settings["otel-exit-flush-timeout"] if _state.settings else 5000
    deadline = time.monotonic() + timeout_ms / 1000.0  # one deadline for traces, metrics and logs
    others = _state.signals.begin_shutdown() if _state.signals is not None else None
    shutdown_bounded(_state.provider, timeout_ms / 1000.0, _state.ledger)
    if others is not None:
        others.wait(deadline)


def delivery_counts() -> dict[str, int]:
    """What became of this process's spans: ended, exported, dropped (by reason), pending.

    Empty when tracing is not running in this process.
    """
    if _state.ledger is None or _state.pid != os.getpid():
        return {}
    return _state.ledger.counts().as_dict()


def _register_exit(settings: Settings, *, c_exit_handler: bool = True) -> None:
    """Hook process exit where uWSGI cannot skip it.

    ``uwsgi.atexit`` and Python's ``atexit`` are skipped when a worker is stopped while busy (a
    shutdown under load with ``die-on-term``), losing the queue silently.  A C exit handler
    (glibc ``on_exit``) runs in every ``exit()``, and before uWSGI's own exit handler finalises
    Python, since handlers run in reverse order of registration.  ``uwsgi.atexit`` (and Python's
    ``atexit`` outside uWSGI) stay as fallbacks where ``on_exit`` is missing (musl).
    """
    if not _uwsgi.available():
        # A plain Python process finalises the interpreter *before* C exit handlers run: a
        # ctypes callback there would crash.  Python's atexit is the right hook outside uWSGI.
        import atexit

        atexit.register(flush_at_exit)
        return
    if c_exit_handler:
        _register_c_exit_handler()
    if _state.provider is not None:
        _state.provider.add_span_processor(_at_first_request(register_exit_handler=not c_exit_handler))
    _uwsgi.register_atexit(flush_at_exit)


def _register_c_exit_handler() -> None:
    if _state.exit_callback is not None:
        return
    try:
        callback = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p)(_c_exit_handler)
        ctypes.CDLL(None).on_exit(callback, None)
        _state.exit_callback = callback
    except (AttributeError, OSError):
        logger.debug("otel-uwsgi: no on_exit in this libc; relying on atexit hooks")


def _at_first_request(*, register_exit_handler: bool) -> Any:
    """A span processor that finishes the exit set-up when the first server span starts.

    uWSGI installs a worker's signal handlers, and with ``lazy-apps`` its own exit handler (which
    finalises Python), only after our post-fork set-up; a server span starts inside a request,
    after both.  Then: register the C exit handler (``lazy-apps``: registered at import, ours
    would run after uWSGI's and crash; without one a busy worker lost its queue), and make
    uWSGI's stop handlers block the other stop signals while they run.
    """
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.trace import SpanKind

    class AtFirstRequest(SpanProcessor):
        pending = True

        def on_start(self, span: Any, parent_context: Any = None) -> None:
            if self.pending and span.kind is SpanKind.SERVER:
                self.pending = False
                if register_exit_handler:
                    _register_c_exit_handler()
                _mask_stop_signals_in_handlers()
                _remove_processor(self)

    return AtFirstRequest()


def _remove_processor(processor: Any) -> None:
    """Take a processor whose work is done out of the provider's chain (it would be called
    three times per span for nothing); left in place if the SDK's chain is not as expected."""
    chain = getattr(_state.provider, "_active_span_processor", None)
    lock = getattr(chain, "_lock", None)
    if lock is None or not isinstance(getattr(chain, "_span_processors", None), tuple):
        return
    with lock:
        chain._span_processors = tuple(p for p in chain._span_processors if p is not processor)


class _Sigaction(ctypes.Structure):
    """glibc's ``struct sigaction`` on Linux x86_64 and aarch64."""

    _fields_ = [
        ("handler", ctypes.c_void_p),
        ("mask", ctypes.c_ulong * (128 // ctypes.sizeof(ctypes.c_ulong))),
        ("flags", ctypes.c_int),
        ("restorer", ctypes.c_void_p),
    ]


def _mask_stop_signals_in_handlers() -> None:
    """Add the stop signals to the mask of uWSGI's SIGINT / SIGTERM / SIGHUP handlers.

    Those handlers call exit(), so the flush runs inside them.  A second, different stop signal
    (systemd's SIGTERM to the whole cgroup plus the master's SIGINT) arriving before the flush
    blocks it started a nested exit() that ended the process mid-flush.  Masked, it waits.
    """
    import platform

    if not sys.platform.startswith("linux") or platform.machine() not in ("x86_64", "aarch64"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            action = _Sigaction()
            if libc.sigaction(int(signum), None, ctypes.byref(action)) != 0:
                continue
            if action.handler in (None, 0, 1):  # SIG_DFL / SIG_IGN: not a uWSGI handler
                continue
            for other in _EXIT_SIGNALS:
                libc.sigaddset(ctypes.byref(action.mask), int(other))
            libc.sigaction(int(signum), ctypes.byref(action), None)
    except (AttributeError, OSError, ValueError):
        logger.debug("otel-uwsgi: could not adjust the signal masks of uWSGI's handlers")


def _c_exit_handler(status: int, arg: Any) -> None:
    try:
        flush_at_exit()
    except BaseException:  # noqa: BLE001 - nothing may escape into C
        pass


def install(*, environ: Optional[Mapping[str, str]] = None) -> bool:
    """What ``import otel_uwsgi.auto`` does. Returns True when tracing is (or will be) set up.

    Outside uWSGI it does nothing but log one line: call :func:`otel_uwsgi.setup` there.
    """
    if _state.installed:
        logger.debug("otel-uwsgi: already installed in pid %d", os.getpid())
        return True
    if not _uwsgi.available():
        logger.info(
            "otel-uwsgi: not running under uWSGI, so `import otel_uwsgi.auto` does nothing here; "
            "call otel_uwsgi.setup() to trace this process"
        )
        return False
    environ = os.environ if environ is None else environ
    opt = _uwsgi.options()
    where = _uwsgi.config_file(opt)
    try:
        settings = load(opt, environ, where=where)
        fatal, warnings = _uwsgi.check(settings)
        if fatal:
            raise ConfigError(fatal[0])
        for line in settings.warnings + warnings:
            logger.warning("%s", line)
        _state.settings, _state.installed = settings, True
        if settings["otel-sdk-disabled"]:
            logger.info("otel-uwsgi: otel-sdk-disabled is set: nothing is traced")
            return False
        _apply_process_settings(settings)
    except ConfigError as exc:
        error = str(exc)
    else:
        error = None
    if error is not None:  # outside the except block: no chained traceback in uWSGI's log
        _uwsgi.stop_startup(error)
    from otel_uwsgi.instrumentation import instrument
    from otel_uwsgi.signals import preload as preload_signals
    from otel_uwsgi.tracing import preload

    preload_signals(settings)
    instrument(settings["otel-instrumentations"], fast=settings["otel-fast-instrumentation"])
    preload(settings)
    kind = _uwsgi.identity()[0]
    if kind == "master":
        other = _provider_already_set()
        if other is not None:
            logger.warning(
                "otel-uwsgi: a TracerProvider (%s) was already set in the uWSGI master; workers "
                "would all export with the master's pid and instance id, so otel-uwsgi leaves it "
                "in place and builds none. Remove the other setup.",
                other,
            )
            return False
        _uwsgi.register_postfork(init_process)
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
    if _uwsgi.available():
        return install(environ=environ)
    environ = os.environ if environ is None else environ
    settings = load({}, environ)
    for line in settings.warnings:
        logger.warning("%s", line)
    _state.settings = settings
    if settings["otel-sdk-disabled"]:
        return False
    _apply_process_settings(settings)
    from otel_uwsgi.instrumentation import instrument

    instrument(instrumentations or settings["otel-instrumentations"], fast=settings["otel-fast-instrumentation"])
    return init_process(settings)


