"""BROKEN ON PURPOSE: fixture of ``docker/harness --broken partial`` (with partial.ini).

Tracing is initialised only in odd-numbered workers (``lazy-apps``: this file is loaded in
each worker, after fork), so the even-numbered workers serve requests without sending a span.
The Docker checker must reject this setup.
"""

import os

import uwsgi  # type: ignore[import-not-found]

if uwsgi.worker_id() % 2:
    import otel_uwsgi.auto  # noqa: F401  (odd workers only: the bug this fixture plays)

from django.core.wsgi import get_wsgi_application  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "otel_uwsgi.demo.settings")
application = get_wsgi_application()
