"""Run a real uWSGI from a user's ini for checks and tests.

The ini is copied with only what a check must own replaced: sockets (a free 127.0.0.1 port),
the exporter endpoint (the embedded receiver), request logging (one parseable line per request,
with the serving worker's pid) and daemonizing/log redirection (the log must reach us).  uWSGI's
own log is the independent source of truth for which worker served how many requests.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from otel_uwsgi.config import uwsgi_ini, uwsgi_opt
from otel_uwsgi.tools.waiting import wait_until

SOCKET_KEYS = frozenset(
    {
        "socket", "uwsgi-socket", "http-socket", "http", "https", "https-socket", "shared-socket",
        "fastcgi-socket", "scgi-socket", "raw-socket", "http2", "suwsgi-socket", "zerg", "http-to",
        "stats", "stats-server",
    }
)
#: What belongs to a running service started from the same ini and must never be touched by a
#: check's uWSGI: its pidfiles (``vacuum`` deletes them at exit), its master FIFO (a second
#: uWSGI replaces it, and the service can no longer be stopped through it), its subscriptions and
#: its spool directory (a check's spooler would run the service's tasks).  Sockets, the stats
#: server and log files are in the lists above and below.
SERVICE_KEYS = frozenset(
    {
        "pidfile", "pidfile2", "safe-pidfile", "safe-pidfile2", "master-fifo", "subscribe-to", "subscribe2",
        "subscribe", "spooler", "spooler-external", "emperor", "touch-reload", "touch-chain-reload",
        "touch-workers-reload", "touch-logrotate", "touch-logreopen", "touch-exec", "touch-signal",
    }
)
#: uWSGI sockets that speak another protocol than HTTP (the uwsgi protocol behind nginx, ...).
NON_HTTP_SOCKETS = frozenset(
    {"socket", "uwsgi-socket", "suwsgi-socket", "fastcgi-socket", "scgi-socket", "raw-socket", "shared-socket", "zerg"}
)
#: Sockets that speak the uwsgi protocol (nginx's ``uwsgi_pass``) unless ``protocol`` says otherwise.
UWSGI_SOCKETS = frozenset({"socket", "uwsgi-socket"})
HTTP_SOCKETS = frozenset({"http-socket", "http", "https", "https-socket", "http2"})
#: What a check's uWSGI must not start beside the app: a production ini's daemons, cron jobs,
#: mules, spooler and hooks would run a second time (a second copy of a queue consumer, a job run
#: twice); persistent cache and sharedarea files are the service's.  Keys, and key prefixes.
SIDE_JOB_KEYS = frozenset(
    {
        "cron", "cron2", "unique-cron", "legion-cron", "unique-legion-cron", "mule", "mules", "farm",
        "spooler", "cache-store", "cache-store-sync",
    }
)
SIDE_JOB_PREFIXES = ("attach-", "smart-attach-", "legion-attach-", "legion-smart-attach-", "spooler-", "exec-", "hook-")
OWNED_KEYS = SOCKET_KEYS | SERVICE_KEYS | {
    "otel-exporter-otlp-endpoint", "otel-exporter-otlp-traces-endpoint",
    "daemonize", "daemonize2", "logto", "logto2", "logger", "req-logger", "log-format", "logformat",
    "disable-logging", "log-4xx", "log-5xx", "log-slow", "log-zero", "log-big", "log-sendfile",
    "log-x-forwarded-for", "log-ioerror", "log-master", "log-reopen", "logfile-chown", "logfile-chmod",
    "otel-span-journal-dir",
}
REQUEST_LOG = "otel-uwsgi-req pid=%(pid) wid=%(wid) status=%(status) uri=%(uri)"
_REQ_RE = re.compile(r"otel-uwsgi-req pid=(\d+) wid=(\d+) status=(\d+)")
_SPAWN_RE = re.compile(r"(?:spawned uWSGI worker (\d+) \(pid: (\d+)|Respawned uWSGI worker (\d+) \(new pid: (\d+))")
_MAGIC_RE = re.compile(r"%([dpsncx%])")

Overrides = Mapping[str, Union[str, Sequence[str]]]


class UwsgiNotFound(RuntimeError):
    """No uwsgi executable to run; the message says where it looked and what to do."""


def find_uwsgi(explicit: Optional[str] = None) -> str:
    """The uwsgi executable to run: ``explicit`` (``--uwsgi PATH``), else the one installed beside
    the running interpreter (a venv's, even when the venv is not activated, as systemd units and
    CI scripts call it), else the first on PATH."""
    if explicit:
        found = shutil.which(explicit)
        if found is None:
            raise UwsgiNotFound(f"--uwsgi {explicit}: no such executable")
        return found
    beside = Path(sys.executable).parent / "uwsgi"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("uwsgi")
    if found is None:
        raise UwsgiNotFound(
            f"no uwsgi executable beside {sys.executable} or on PATH; install it "
            "(pip install 'otel-uwsgi[uwsgi]', or your distribution's uwsgi) or name it with --uwsgi PATH"
        )
    return found


#: Override keys written first in a prepared ini: a plugin and its virtualenv, before the keys
#: that only the plugin makes known.
_FIRST = frozenset({"plugins", "virtualenv"})
_PROBE = 'import sys\nprint("otel-uwsgi-probe:", sys.implementation.cache_tag)\n'


def _embedded_python(uwsgi: str, *extra: str) -> Optional[str]:
    """The cache tag (``cpython-311``) of the Python ``uwsgi extra...`` runs code with, or None."""
    with tempfile.NamedTemporaryFile("w", suffix=".py") as probe:
        probe.write(_PROBE)
        probe.flush()
        try:
            done = subprocess.run(
                [uwsgi, *extra, "--pyrun", probe.name], capture_output=True, text=True, timeout=30, cwd="/"
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
    for line in (done.stdout + done.stderr).splitlines():
        if line.startswith("otel-uwsgi-probe: "):
            return line.split()[1]
    return None


def python_settings(uwsgi: str, ini_keys: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """What the ini must add for ``uwsgi`` to run this Python's app, and what to say about it.

    PyPI's uWSGI has Python built in: nothing.  A distribution's (Debian's ``uwsgi-core``) loads it
    as a plugin: ``plugins = python3``, and this venv (``virtualenv = sys.prefix``) where the ini
    names none, as long as the plugin's Python is this one's version.
    """
    keys = set(ini_keys)
    if keys & {"plugins", "plugin", "need-plugin", "need-plugins"} or _embedded_python(uwsgi):
        return {}, []
    tag = _embedded_python(uwsgi, "--plugins", "python3")
    if tag is None:
        return {}, [f"note: {uwsgi} has no Python built in and its python3 plugin did not load"]
    settings = {"plugins": "python3"}
    if sys.prefix != sys.base_prefix and not keys & {"virtualenv", "venv", "home", "pyhome"}:
        if tag != sys.implementation.cache_tag:
            return settings, [
                f"note: {uwsgi}'s python3 plugin is {tag}, this Python is {sys.implementation.cache_tag}: "
                "run otel-uwsgi check with a venv of the plugin's Python"
            ]
        settings["virtualenv"] = sys.prefix
    added = ", ".join(f"{k} = {v}" for k, v in settings.items())
    return settings, [f"note: {uwsgi} loads Python as a plugin: this check added {added}"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _magic(path: Path) -> dict[str, str]:
    path = path.resolve()
    return {
        "d": str(path.parent) + "/",
        "p": str(path),
        "s": path.name,
        "n": path.stem,
        "c": path.parent.name,
        "x": path.suffix.lstrip("."),
    }


def prepare_ini(source: Union[str, Path], overrides: Overrides, *, drop: Iterable[str] = OWNED_KEYS) -> str:
    """The ``[uwsgi]`` section of ``source`` minus ``drop``ped keys, plus ``overrides``.

    uWSGI's magic variables (``%d`` ...) are resolved against the original file, so the copy can
    live anywhere.  Keys in ``overrides`` are always dropped from the original first.  Under
    ``strict = true`` (where uWSGI rejects otel-* keys) an otel-* override is written as
    ``set-ph = key=value``, and the original's ``set-ph`` for that key is dropped.
    """
    source = Path(source)
    magic = _magic(source)
    dropped = set(drop) | set(overrides)
    strict = is_strict(source)
    out = ["[uwsgi]"]
    for line in uwsgi_ini.lines(source.read_text()):
        if line.key in dropped or (line.key == "set-ph" and line.value.partition("=")[0].strip() in dropped):
            continue
        out.append(_MAGIC_RE.sub(lambda m: "%%" if m.group(1) == "%" else magic[m.group(1)], line.raw))
    for key, value in overrides.items():
        lines = [f"set-ph = {key}={item}" if strict and key.startswith("otel-") else f"{key} = {item}"
                 for item in ([value] if isinstance(value, str) else value)]
        if key in _FIRST:  # a plugin must load before the keys it brings (strict mode checks each in order)
            out[1:1] = lines
        else:
            out.extend(lines)
    return "\n".join(out) + "\n"


def is_strict(source: Union[str, Path]) -> bool:
    """Whether the ini turns on uWSGI's ``strict`` mode."""
    return uwsgi_opt.flag(uwsgi_ini.options(uwsgi_ini.read(source)), "strict")


@dataclass
class SideJobs:
    """What :func:`side_jobs` takes out of an ini: keys dropped, values rewritten, and their names."""

    drop: set[str] = field(default_factory=set)
    overrides: dict[str, list[str]] = field(default_factory=dict)
    named: list[str] = field(default_factory=list)


def side_jobs(items: Iterable[tuple[str, str]]) -> SideJobs:
    """The daemons, cron jobs, mules, spooler, hooks and persistent cache files of an ini's items,
    for a copy that starts nothing but the app: their keys are dropped; a ``cache2`` keeps its
    cache, in memory (its ``store`` parts removed); a file-backed ``sharedarea`` is dropped."""
    jobs = SideJobs()
    caches: list[str] = []
    for key, value in items:
        if key in SIDE_JOB_KEYS or key.startswith(SIDE_JOB_PREFIXES):
            jobs.drop.add(key)
            if key not in jobs.named:
                jobs.named.append(key)
        elif key == "cache2":
            parts = [part for part in value.split(",") if not part.strip().startswith("store")]
            caches.append(",".join(parts))
            if len(parts) != len(value.split(",")) and "cache2 store" not in jobs.named:
                jobs.named.append("cache2 store")
        elif key == "sharedarea" and ("file=" in value or "fd=" in value):
            jobs.drop.add(key)
            if "sharedarea file" not in jobs.named:
                jobs.named.append("sharedarea file")
    if "cache2 store" in jobs.named:
        jobs.overrides["cache2"] = caches
    return jobs


def listener(items: Iterable[tuple[str, str]]) -> str:
    """``uwsgi`` when the ini's only listener is a uwsgi-protocol ``socket`` (nginx's
    ``uwsgi_pass``), else ``http``: the protocol a check must speak to test what serves traffic."""
    opt = uwsgi_ini.options(items)
    protocol = uwsgi_opt.first_text(opt, "protocol", "socket-protocol") or "uwsgi"
    if set(opt) & HTTP_SOCKETS or not set(opt) & UWSGI_SOCKETS or protocol.strip().lower() != "uwsgi":
        return "http"
    return "uwsgi"


@dataclass
class Served:
    """What uWSGI's log says happened."""

    spawned: dict[int, int] = field(default_factory=dict)  # pid -> worker id
    requests: dict[int, int] = field(default_factory=dict)  # pid -> requests served
    statuses: dict[int, int] = field(default_factory=dict)  # HTTP status -> count

    @property
    def worker_ids(self) -> set[int]:
        return set(self.spawned.values())

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    @property
    def covered(self) -> set[int]:
        """Worker ids that served at least one request."""
        return {self.spawned[pid] for pid, n in self.requests.items() if n and pid in self.spawned}


def parse_log(text: str) -> Served:
    served = Served()
    for match in _SPAWN_RE.finditer(text):
        wid, pid = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
        served.spawned[int(pid)] = int(wid)
    for match in _REQ_RE.finditer(text):
        pid, wid, status = (int(g) for g in match.groups())
        served.requests[pid] = served.requests.get(pid, 0) + 1
        served.statuses[status] = served.statuses.get(status, 0) + 1
        served.spawned.setdefault(pid, wid)
    return served


class UwsgiServer:
    """One uWSGI instance started from an ini text; stopped by its pid.

    Use as a context manager: leaving it stops the master (SIGINT, then SIGKILL to the whole
    process group after ``kill_after`` seconds).
    """

    def __init__(
        self,
        ini_text: str,
        *,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
        workdir: Optional[str] = None,
        uwsgi: Optional[str] = None,
    ) -> None:
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="otel-uwsgi-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ini_path = self.workdir / "uwsgi.ini"
        self.ini_path.write_text(ini_text)
        self.log_path = self.workdir / "uwsgi.log"
        self.env = dict(os.environ if env is None else env)
        self.cwd = cwd
        self.uwsgi = find_uwsgi(uwsgi)
        #: What runs uWSGI (a wrapper such as ``opentelemetry-instrument`` may come first).
        self.command = [self.uwsgi]
        self.process: Optional[subprocess.Popen[bytes]] = None
        self.returncode: Optional[int] = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> UwsgiServer:
        log = open(self.log_path, "wb")
        try:
            self.process = subprocess.Popen(
                [*self.command, "--ini", str(self.ini_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        finally:
            log.close()
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def served(self) -> Served:
        return parse_log(self.log())

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_workers(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` workers have been spawned (or uWSGI died)."""
        return wait_until(lambda: len(self.served().worker_ids) >= count, timeout, alive=self.alive)

    def send(self, signum: int) -> None:
        if self.alive():
            os.kill(self.pid, signum)

    def wait(self, timeout: float) -> Optional[int]:
        assert self.process is not None
        try:
            self.returncode = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, signum: int = signal.SIGINT, kill_after: float = 30.0) -> Optional[int]:
        """Stop gracefully with ``signum``; SIGKILL the process group if it overstays."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.send(signum)
            if self.wait(kill_after) is None:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except OSError:
                    pass
                self.wait(5)
        self.returncode = self.process.returncode
        # Leftovers (a worker that outlived its master) share the session: reap them.
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except OSError:
            pass
        return self.returncode

    def __enter__(self) -> UwsgiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def owned_overrides(port: int, endpoint: str, journal_dir: str, *, protocol: str = "http") -> dict[str, str]:
    """What a check replaces in the user's ini: the socket (HTTP, or the uwsgi protocol when
    ``protocol`` is ``uwsgi``), the endpoint, the request log line, and the span journals'
    directory (a run of the same service must never ship this one's spans to the real collector,
    nor this one ship a real run's leftovers to the check's receiver)."""
    return {
        ("socket" if protocol == "uwsgi" else "http-socket"): f"127.0.0.1:{port}",
        "otel-exporter-otlp-endpoint": endpoint,
        "log-format": REQUEST_LOG,
        "otel-span-journal-dir": journal_dir,
    }
