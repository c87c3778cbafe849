"""One line in the uWSGI wsgi file, before the application is created::

    import otel_uwsgi.auto

Reads the ``otel-*`` options from uwsgi.ini (``OTEL_*`` environment variables as fallback),
instruments Django / MySQL / SQLite now, and builds the tracer in each worker after fork.
Outside uWSGI it does nothing (one info line); use :func:`otel_uwsgi.setup` there.
"""

from otel_uwsgi.runtime.install import install

install()
