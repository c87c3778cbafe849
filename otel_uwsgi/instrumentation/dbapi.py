"""Database drivers: otel-uwsgi's own integrations for drivers that have no instrumentor installed
(mysqlclient and ``sqlite3`` through opentelemetry-instrumentation-dbapi's ``trace_integration``),
and the fast path's DB spans for every driver Django uses.

Each driver is described once (:data:`DRIVERS`): the ``db.system`` its spans carry and where its
connection keeps the attributes the stock instrumentation of that driver reads.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from otel_uwsgi.instrumentation.missing import fast_unavailable, missing


@dataclass(frozen=True)
class Driver:
    module: str  # what Django's backend imports and calls ``connect`` on
    system: str  # db.system, as the stock instrumentation of the driver sets it
    attributes: dict[str, str]  # span attribute -> path on the driver's connection
    package: str  # what to install when it is missing


_MYSQL = {"database": "db", "port": "port", "host": "host", "user": "user"}
_POSTGRES = {"database": "info.dbname", "port": "info.port", "host": "info.host", "user": "info.user"}

#: By instrumentation name (the contrib entry point's, where one exists).
DRIVERS = {
    "mysqlclient": Driver("MySQLdb", "mysql", _MYSQL, "mysqlclient"),
    "sqlite3": Driver("sqlite3.dbapi2", "sqlite", {"database": "database"}, "the standard sqlite3 module"),
    "psycopg": Driver("psycopg", "postgresql", _POSTGRES, "psycopg"),
    "psycopg2": Driver("psycopg2", "postgresql", _POSTGRES, "psycopg2"),
}
#: Drivers otel-uwsgi instruments itself when no instrumentor for them is installed.
OWN = ("mysqlclient", "sqlite3")


def fast_queries(name: str, scope: tuple[str, str]) -> bool:
    """The fast path: trace Django's queries through this driver from Django's ``execute_wrapper``
    with the stock instrumentation's ``scope`` (True), or leave them to the stock instrumentation
    (False: no Django, or the fast path cannot load here)."""
    driver = DRIVERS[name]
    try:
        from otel_uwsgi.instrumentation.fast.enable import install_db

        return install_db(driver.system, driver.attributes, scope)
    except ImportError as error:  # an instrumentation release it was not built for
        fast_unavailable(error)
        return False


def django_installed() -> bool:
    """The fast path's DB spans come from Django's connections: without Django, the stock ones."""
    try:
        importlib.import_module("django")
    except ImportError:
        return False
    return True


def driver_installed(name: str) -> bool:
    try:
        importlib.import_module(DRIVERS[name].module)
    except ImportError:
        return False
    return True


def instrument_own(name: str, explicit: bool) -> bool:
    """The driver's queries through the dbapi integration; False when the driver is missing."""
    driver = DRIVERS[name]
    try:
        module = importlib.import_module(driver.module)
        from opentelemetry.instrumentation.dbapi import trace_integration
    except ImportError as exc:
        missing(name, explicit, driver.package, exc)
        return False
    trace_integration(module, "connect", driver.system, connection_attributes=driver.attributes)
    return True
