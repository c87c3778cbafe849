"""The demo Django site with no tracing at all: the ``plain`` baseline of ``bench/run.py``.

Same settings, URLs and views as ``otel_uwsgi/demo/wsgi.py`` but without ``import
otel_uwsgi.auto``.  The demo lives inside the ``otel_uwsgi`` package, whose import has no side
effects; startup fails if anything pulled in OpenTelemetry, so the baseline cannot silently trace.
"""

import os
import sys

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "otel_uwsgi.demo.settings")
application = get_wsgi_application()
get_resolver().url_patterns  # noqa: B018 - load the URLconf (and views) now, to check them too

_traced = sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry" or m == "otel_uwsgi.runtime.install")
if _traced:
    raise RuntimeError(f"bench/plain_wsgi.py must load no tracing code, but these were imported: {_traced[:5]}")
