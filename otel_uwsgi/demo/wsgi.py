"""WSGI entry point of the demo Django site: the one-line integration in context."""

import os

from django.core.wsgi import get_wsgi_application

import otel_uwsgi.auto  # noqa: F401  (first: instruments before the app exists)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "otel_uwsgi.demo.settings")
application = get_wsgi_application()
