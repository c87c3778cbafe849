"""DB-API drivers through opentelemetry-instrumentation-dbapi's ``trace_integration``: mysqlclient
(``MySQLdb``) and the standard ``sqlite3``, whose ``connect`` Django's backends call."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from otel_uwsgi.instrumentation.missing import fast_unavailable, missing


def dbapi_integration(
    module_name: str, system: str, attributes: dict[str, str], package: str
) -> Callable[[bool, bool], bool]:
    def instrument(explicit: bool, fast: bool = False) -> bool:
        try:
            module = importlib.import_module(module_name)
            from opentelemetry.instrumentation.dbapi import trace_integration
        except ImportError as exc:
            missing(system, explicit, package, exc)
            return False
        if fast:  # Django's queries through connection.execute_wrapper; without Django, the stock way
            try:
                from otel_uwsgi.instrumentation.fast.enable import install_db

                if install_db(system, attributes):
                    return True
            except ImportError as error:  # an instrumentation release it was not built for
                fast_unavailable(error)
        trace_integration(module, "connect", system, connection_attributes=attributes)
        return True

    return instrument
