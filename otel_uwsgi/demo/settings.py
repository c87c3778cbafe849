"""Settings of the demo site.

Database and cache as :mod:`otel_uwsgi.demo.stack` chooses them (``OTEL_UWSGI_DEMO_DB`` = ``mysql``,
``postgres``, ``sqlite`` or ``auto``; ``OTEL_UWSGI_DEMO_REDIS`` = ``host:port``, ``off`` or ``auto``),
so the demo runs on any machine.  Without Redis the cache is the local-memory one, which makes no
span: then ``/trace`` runs a second query instead.
"""

from __future__ import annotations

from otel_uwsgi.demo import stack

SECRET_KEY = "demo-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "otel_uwsgi.demo.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
USE_TZ = True
LOGGING_CONFIG = None


def _django(engine: str, params: dict[str, str]) -> dict[str, object]:
    return {"ENGINE": f"django.db.backends.{engine}", "NAME": params["name"], "USER": params["user"],
            "PASSWORD": params["password"], "HOST": params["host"], "PORT": params["port"], "CONN_MAX_AGE": 60}


_POSTGRES = _django("postgresql", stack.postgres_params())
_database = stack.current().db
if _database == "postgres":
    DATABASES = {"default": _POSTGRES}
elif _database == "mysql":
    DATABASES = {"default": _django("mysql", stack.mysql_params())}
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": stack.sqlite_path()}}

# PostgreSQL as a second database for the `/pg` view (the benchmark's): added to Django's
# connections by that view when first called, since an alias in DATABASES costs every request of
# every view (~45k instructions on `/`).
DEMO_POSTGRES = _POSTGRES

_redis = stack.current().redis
if _redis is not None:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                          "LOCATION": f"redis://{_redis[0]}:{_redis[1]}"}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
