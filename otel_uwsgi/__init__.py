"""otel-uwsgi: OpenTelemetry tracing that just works under uWSGI.

Usage
-----
In the wsgi file, first line::

    import otel_uwsgi.auto

and in ``uwsgi.ini``::

    [uwsgi]
    master = true
    processes = 4
    otel-service-name = shop
    otel-exporter-otlp-endpoint = https://collector.example.com

A framework-less WSGI app also needs ``application = otel_uwsgi.wrap_wsgi(application)``.

Importing ``otel_uwsgi`` or any submodule other than ``otel_uwsgi.auto`` has no side effects.

Configuration
-------------
Every standard ``OTEL_*`` variable has a uWSGI option of the same name in lower case with
dashes (``OTEL_SERVICE_NAME`` -> ``otel-service-name``); the ini wins over the environment.
See the option table (docs/OPTIONS.md), generated from :mod:`otel_uwsgi.config.options`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Optional

__version__ = "0.1.0"  # the only place the version is written: pyproject.toml reads it from here
__all__ = ["delivery_counts", "instrumentation_options", "setup", "wrap_wsgi", "__version__"]


def setup(*, environ: Optional[Mapping[str, str]] = None, instrumentations: Optional[tuple[str, ...]] = None) -> bool:
    """Trace a process that is not a uWSGI worker (``manage.py``, scripts, tests).

    Reads the ``OTEL_*`` environment, instruments the installed libraries and starts exporting;
    queued spans are flushed (bounded) at exit.  Returns True when tracing started.
    """
    from otel_uwsgi.runtime.install import setup as _setup

    return _setup(environ=environ, instrumentations=instrumentations)


def instrumentation_options(name: str, **options: Any) -> None:
    """Keyword arguments for one instrumentation's ``instrument()`` call, given in the wsgi file
    *before* ``import otel_uwsgi.auto``::

        import otel_uwsgi
        otel_uwsgi.instrumentation_options("django", request_hook=my_hook, is_sql_commentor_enabled=True)
        import otel_uwsgi.auto

    ``name`` is the instrumentation's name in ``otel-instrumentations`` (``django``, ``psycopg``,
    ``requests`` ...); the options are those its OpenTelemetry instrumentation documents.
    """
    from otel_uwsgi.instrumentation.registry import set_options

    set_options(name, **options)


def wrap_wsgi(application: Callable[..., Any]) -> Callable[..., Any]:
    """Trace a framework-less WSGI application (server spans, ``traceparent`` honoured).

    Apps on a framework with an OpenTelemetry instrumentation (Django, Flask ...) need only
    ``import otel_uwsgi.auto``: a Flask app or Django handler it traces is returned unchanged, with
    one warning (wrapped too, its server spans would be named by URL instead of by route).
    """
    from otel_uwsgi.instrumentation.wsgi import wrap_wsgi as _wrap

    return _wrap(application)


def delivery_counts() -> dict[str, int]:
    """This process's span accounting: ``ended``, ``exported``, ``dropped`` and its reasons
    (``queue_full``, ``export_failed``, ``exit_timeout``) and ``pending``; empty if not tracing.

    Drops are also logged (one rate-limited warning, and a summary when the process exits).
    """
    from otel_uwsgi.runtime.process import delivery_counts as _counts

    return _counts()
