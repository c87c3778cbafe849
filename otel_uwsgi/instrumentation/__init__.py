"""What makes spans: the libraries instrumented at import, before the app exists.

Belongs here: the registry that turns ``otel-instrumentations`` into instrumented libraries
(:mod:`.registry`), one module per library (:mod:`.django`, :mod:`.dbapi` for MySQL and SQLite,
:mod:`.wsgi` for a framework-less app), the warning for an app created before instrumenting
(:mod:`.late_import`), and the lean Django and Flask instrumentation, the default where it is
proven span-equal (:mod:`.fast`).  Instrumenting creates no thread and no provider: it is safe
in the master.

Does not belong here: the provider the spans go to (:mod:`otel_uwsgi.traces`), anything that
runs after fork (:mod:`otel_uwsgi.runtime`).
"""
