"""What runs inside uWSGI, and when: at ``import otel_uwsgi.auto`` (:mod:`.install`), after fork
in each worker, mule and the spooler (:mod:`.process`, with :mod:`.resource` and the metrics and
logs :mod:`.metrics_and_logs`), and at exit (:mod:`.exit_flush` for a graceful exit; the master's
:mod:`.master_exit` and its C part ``_exit.c`` ship the span journals busy or dead workers left).

Belongs here: the only code that imports ``uwsgi`` / ``uwsgidecorators`` (:mod:`.uwsgi_api`), the
checks of the uWSGI setup (:mod:`.preflight`), the process's state (:mod:`.state`), the hooks
and their order.  Every hook that runs in a worker logs its exception and leaves the worker
serving.

Does not belong here: how spans are made, counted or encoded (:mod:`otel_uwsgi.traces`,
:mod:`otel_uwsgi.export`), option declarations (:mod:`otel_uwsgi.config`), the CLI and test
tools (:mod:`otel_uwsgi.tools`).  Nothing below this room imports it.
"""
