"""Library instrumentation done at import time, before the application exists.

Instrumentation must precede the app: Django builds its middleware chain once, in
``get_wsgi_application()``, so instrumenting later (e.g. in a post-fork hook while the app was
loaded in the master) yields no server spans at all.  Instrumenting creates no threads, so doing
it in the master is fork-safe; only the provider and exporter are built after fork.

Each integration is optional and guarded: a missing library is a debug line under ``auto`` and a
warning naming the package to install when the user asked for it explicitly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from otel_uwsgi.instrumentation.dbapi import dbapi_integration
from otel_uwsgi.instrumentation.django import instrument_django

logger = logging.getLogger("otel_uwsgi.instrumentation")

_done: set[str] = set()

_INTEGRATIONS: dict[str, Callable[[bool, bool], bool]] = {
    "django": instrument_django,
    # mysqlclient through the generic DB-API integration; Django's MySQL backend calls
    # MySQLdb.connect, so its queries become children of the request span.
    "mysql": dbapi_integration(
        "MySQLdb", "mysql", {"database": "db", "port": "port", "host": "host", "user": "user"}, "otel-uwsgi[mysql]"
    ),
    # Django's SQLite backend imports sqlite3.dbapi2 and calls its connect.
    "sqlite3": dbapi_integration("sqlite3.dbapi2", "sqlite", {"database": "database"}, "the standard sqlite3 module"),
}


def instrument(names: Iterable[str], *, fast: bool = False) -> list[str]:
    """Instrument the named libraries (``auto``: every supported one that is installed).

    ``fast`` (``otel-fast-instrumentation``) uses :mod:`otel_uwsgi.instrumentation.fast` for Django and its
    queries instead of the stock instrumentations.  Idempotent per library.  Returns the names
    instrumented by this or an earlier call.
    """
    names = tuple(names)
    explicit = names not in (("auto",),)
    if names == ("none",):
        return sorted(_done)
    wanted = list(_INTEGRATIONS) if not explicit else list(names)
    for name in wanted:
        if name in _done:
            continue
        try:
            if _INTEGRATIONS[name](explicit, fast):
                _done.add(name)
        except Exception:  # noqa: BLE001 - a broken library is logged, never fatal
            logger.exception("otel-uwsgi: could not instrument %s", name)
    if _done:
        logger.info("otel-uwsgi: instrumented %s%s", ", ".join(sorted(_done)), " (fast path)" if fast else "")
    return sorted(_done)
