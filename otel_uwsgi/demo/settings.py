"""Settings of the demo site.

Database: ``OTEL_UWSGI_DEMO_DB`` = ``mysql``, ``postgres``, ``sqlite`` or ``auto`` (default: MySQL
when a server answers at ``OTEL_UWSGI_DEMO_MYSQL_HOST``:``OTEL_UWSGI_DEMO_MYSQL_PORT``, else an
SQLite file), so the demo runs on any machine.  PostgreSQL: ``OTEL_UWSGI_DEMO_PG_HOST`` /
``_PG_PORT`` / ``_PG_DB`` / ``_PG_USER`` (127.0.0.1, 5432, test, postgres).

Cache: ``OTEL_UWSGI_DEMO_REDIS`` = ``host:port``, ``off`` or ``auto`` (default: Django's Redis
cache when redis-py is installed and a server answers at 127.0.0.1:6379, else the local-memory
cache, which makes no span: then ``/trace`` runs a second query instead).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import tempfile

SECRET_KEY = "demo-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "otel_uwsgi.demo.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
USE_TZ = True
LOGGING_CONFIG = None

_host = os.environ.get("OTEL_UWSGI_DEMO_MYSQL_HOST", "127.0.0.1")
_port = int(os.environ.get("OTEL_UWSGI_DEMO_MYSQL_PORT", "3306"))
_choice = os.environ.get("OTEL_UWSGI_DEMO_DB", "auto").lower()


def _importable(module: str) -> bool:
    """Whether ``module`` is installed, without importing it (redis-py imports OpenTelemetry)."""
    return importlib.util.find_spec(module) is not None


def _answers(host: str, port: int, module: str) -> bool:
    if not _importable(module):
        return False
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


_POSTGRES = {
    "ENGINE": "django.db.backends.postgresql",
    "NAME": os.environ.get("OTEL_UWSGI_DEMO_PG_DB", "test"),
    "USER": os.environ.get("OTEL_UWSGI_DEMO_PG_USER", "postgres"),
    "PASSWORD": os.environ.get("OTEL_UWSGI_DEMO_PG_PASSWORD", ""),
    "HOST": os.environ.get("OTEL_UWSGI_DEMO_PG_HOST", "127.0.0.1"),
    "PORT": os.environ.get("OTEL_UWSGI_DEMO_PG_PORT", "5432"),
    "CONN_MAX_AGE": 60,
}

if _choice == "postgres":
    DATABASES = {"default": _POSTGRES}
elif _choice == "mysql" or (_choice == "auto" and _answers(_host, _port, "MySQLdb")):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": os.environ.get("OTEL_UWSGI_DEMO_MYSQL_DB", "test"),
            "USER": os.environ.get("OTEL_UWSGI_DEMO_MYSQL_USER", "root"),
            "PASSWORD": os.environ.get("OTEL_UWSGI_DEMO_MYSQL_PASSWORD", ""),
            "HOST": _host,
            "PORT": str(_port),
            "CONN_MAX_AGE": 60,
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get(
                "OTEL_UWSGI_DEMO_SQLITE", os.path.join(tempfile.gettempdir(), "otel-uwsgi-demo.sqlite3")
            ),
        }
    }

# PostgreSQL as a second database for the `/pg` view (the benchmark's): added to Django's
# connections by that view when first called, since an alias in DATABASES costs every request of
# every view (~45k instructions on `/`).
DEMO_POSTGRES = _POSTGRES

_redis = os.environ.get("OTEL_UWSGI_DEMO_REDIS", "auto").lower()
_redis_host, _, _redis_port = ("127.0.0.1:6379" if _redis == "auto" else _redis).partition(":")
if _redis != "off" and _answers(_redis_host, int(_redis_port or 6379), "redis"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://{_redis_host}:{_redis_port or 6379}",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
