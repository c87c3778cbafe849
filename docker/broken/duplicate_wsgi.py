"""BROKEN ON PURPOSE: fixture of ``docker/harness --broken duplicate`` (with duplicate.ini).

Every worker claims the uWSGI server metrics that only worker 1 should export, so each interval
brings one ``uwsgi.*`` point per worker for the same instance: the double counting the Docker
checker must reject ("uWSGI server metrics arrived N extra time(s) within one interval").
Loaded in the master before fork; the workers build their metrics after fork with the patched rule.
"""

import os

from otel_uwsgi.metrics import server as server_metrics

server_metrics.owns_server_metrics = lambda process_type, worker_id: process_type == "worker"  # the bug

from django.core.wsgi import get_wsgi_application  # noqa: E402

import otel_uwsgi.auto  # noqa: E402,F401

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "otel_uwsgi.demo.settings")
application = get_wsgi_application()
