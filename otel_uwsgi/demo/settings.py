"""Settings of the demo site.

Database: ``OTEL_UWSGI_DEMO_DB`` = ``mysql``, ``sqlite`` or ``auto`` (default: MySQL when a server
answers at ``OTEL_UWSGI_DEMO_MYSQL_HOST``:``OTEL_UWSGI_DEMO_MYSQL_PORT``, else an SQLite file), so
the demo runs on any machine.
"""

from __future__ import annotations

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


def _mysql_answers() -> bool:
    try:
        import MySQLdb  # noqa: F401
    except ImportError:
        return False
    try:
        with socket.create_connection((_host, _port), timeout=1):
            return True
    except OSError:
        return False


if _choice == "mysql" or (_choice == "auto" and _mysql_answers()):
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
