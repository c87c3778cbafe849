"""Which stack the demo runs: the framework, database, cache and HTTP client installed here.

Framework (``OTEL_UWSGI_DEMO_APP`` = ``django``, ``flask``, ``wsgi`` or ``auto``): Django when it
and its instrumentation are installed, else Flask likewise, else a plain WSGI app.  Database
(``OTEL_UWSGI_DEMO_DB`` = ``mysql``, ``postgres``, ``sqlite`` or ``auto``): MySQL when mysqlclient is
installed and a server answers on its port, else PostgreSQL when psycopg or psycopg2 is and one
answers, else an SQLite file.  Cache (``OTEL_UWSGI_DEMO_REDIS`` = ``host:port``, ``off`` or
``auto``): Redis when redis-py is installed and a server answers on 127.0.0.1:6379.  HTTP client
(``OTEL_UWSGI_DEMO_HTTP`` = ``requests``, ``urllib3``, ``urllib`` or ``auto``): the first installed
with its instrumentation, else urllib.  Servers: ``OTEL_UWSGI_DEMO_MYSQL_HOST`` / ``_PORT`` /
``_DB`` / ``_USER`` / ``_PASSWORD`` (127.0.0.1, 3306, test, root, none), ``OTEL_UWSGI_DEMO_PG_...``
likewise (5432, user postgres), ``OTEL_UWSGI_DEMO_SQLITE`` (a file in the temporary directory).
Nothing is imported to find out: the app imports only what it uses.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from typing import Optional

_NAMES = {"django": "Django", "flask": "Flask", "wsgi": "plain WSGI", "mysql": "MySQL", "postgres": "PostgreSQL",
          "sqlite": "SQLite", "requests": "requests", "urllib3": "urllib3", "urllib": "urllib"}
#: What traces each part: a module to find, and the package that installs it.
_TRACED_BY = {
    "django": ("opentelemetry.instrumentation.django", "opentelemetry-instrumentation-django"),
    "flask": ("opentelemetry.instrumentation.flask", "opentelemetry-instrumentation-flask"),
    "psycopg": ("opentelemetry.instrumentation.psycopg", "opentelemetry-instrumentation-psycopg"),
    "psycopg2": ("opentelemetry.instrumentation.psycopg2", "opentelemetry-instrumentation-psycopg2"),
    "redis": ("opentelemetry.instrumentation.redis", "opentelemetry-instrumentation-redis"),
    "requests": ("opentelemetry.instrumentation.requests", "opentelemetry-instrumentation-requests"),
    "urllib3": ("opentelemetry.instrumentation.urllib3", "opentelemetry-instrumentation-urllib3"),
    "urllib": ("opentelemetry.instrumentation.urllib", "opentelemetry-instrumentation-urllib"),
}
_HTTP_LIBRARIES = {"requests": "requests", "urllib3": "urllib3", "urllib": "urllib.request"}


def importable(module: str) -> bool:
    """Whether ``module`` is installed, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or blocked in sys.modules
        return False


def traced(part: str) -> bool:
    """Whether ``part``'s instrumentation is installed (parts otel-uwsgi traces itself always are).
    Asked of the installed distributions, not by finding the module: that would import the
    ``opentelemetry`` packages into the untraced benchmark baseline (bench/plain_wsgi.py)."""
    if part not in _TRACED_BY:
        return True
    module, package = _TRACED_BY[part]
    if module in sys.modules and sys.modules[module] is None:  # blocked (the tests' "not installed")
        return False
    try:
        metadata.distribution(package)
    except metadata.PackageNotFoundError:
        return False
    return True


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def mysql_params() -> dict[str, str]:
    env = os.environ.get
    return {"host": env("OTEL_UWSGI_DEMO_MYSQL_HOST", "127.0.0.1"), "port": env("OTEL_UWSGI_DEMO_MYSQL_PORT", "3306"),
            "name": env("OTEL_UWSGI_DEMO_MYSQL_DB", "test"), "user": env("OTEL_UWSGI_DEMO_MYSQL_USER", "root"),
            "password": env("OTEL_UWSGI_DEMO_MYSQL_PASSWORD", "")}


def postgres_params() -> dict[str, str]:
    env = os.environ.get
    return {"host": env("OTEL_UWSGI_DEMO_PG_HOST", "127.0.0.1"), "port": env("OTEL_UWSGI_DEMO_PG_PORT", "5432"),
            "name": env("OTEL_UWSGI_DEMO_PG_DB", "test"), "user": env("OTEL_UWSGI_DEMO_PG_USER", "postgres"),
            "password": env("OTEL_UWSGI_DEMO_PG_PASSWORD", "")}


def sqlite_path() -> str:
    return os.environ.get("OTEL_UWSGI_DEMO_SQLITE", os.path.join(tempfile.gettempdir(), "otel-uwsgi-demo.sqlite3"))


def postgres_driver() -> Optional[str]:
    """psycopg or psycopg2, the one with its instrumentation first; None when neither is installed."""
    drivers = [d for d in ("psycopg", "psycopg2") if importable(d)]
    return next((d for d in drivers if traced(d)), drivers[0] if drivers else None)


def database() -> str:
    choice = os.environ.get("OTEL_UWSGI_DEMO_DB", "auto").lower()
    if choice != "auto":
        return choice
    mysql, postgres = mysql_params(), postgres_params()
    if importable("MySQLdb") and answers(mysql["host"], int(mysql["port"])):
        return "mysql"
    if postgres_driver() and answers(postgres["host"], int(postgres["port"])):
        return "postgres"
    return "sqlite"


def redis_address() -> Optional[tuple[str, int]]:
    choice = os.environ.get("OTEL_UWSGI_DEMO_REDIS", "auto").lower()
    host, _, port = ("127.0.0.1:6379" if choice == "auto" else choice).partition(":")
    if choice == "off" or not importable("redis") or not answers(host, int(port or 6379)):
        return None
    return host, int(port or 6379)


def _app() -> str:
    choice = os.environ.get("OTEL_UWSGI_DEMO_APP", "auto").lower()
    if choice != "auto":
        return choice
    return next((app for app in ("django", "flask") if importable(app) and traced(app)), "wsgi")


def _http() -> str:
    choice = os.environ.get("OTEL_UWSGI_DEMO_HTTP", "auto").lower()
    if choice != "auto":
        return choice
    return next((c for c, module in _HTTP_LIBRARIES.items() if importable(module) and traced(c)), "urllib")


@dataclass(frozen=True)
class Stack:
    app: str  # django, flask or wsgi
    db: str  # mysql, postgres or sqlite
    redis: Optional[tuple[str, int]]  # None: no cache, a second query instead
    http: str  # requests, urllib3 or urllib

    def describe(self) -> str:
        """``Flask + SQLite + Redis + urllib``."""
        parts = [self.app, self.db] + (["Redis"] if self.redis else []) + [self.http]
        return " + ".join(_NAMES.get(p, p) for p in parts)

    def untraced(self) -> list[str]:
        """What runs here without its instrumentation, with the package that would trace it."""
        parts = [self.http] + (["redis"] if self.redis else [])
        if self.db == "postgres" and self.app != "django":
            parts.append(postgres_driver() or "psycopg")
        return [f"{part} (pip install {_TRACED_BY[part][1]})" for part in parts if not traced(part)]


@lru_cache(maxsize=1)
def current() -> Stack:
    """The stack of this process, decided once (the ports are probed once)."""
    return Stack(app=_app(), db=database(), redis=redis_address(), http=_http())
