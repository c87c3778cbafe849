"""The demo app with no tracing at all: the ``plain`` baseline of ``bench/run.py``.

Django (default): the same settings, URLs and views as ``otel_uwsgi/demo/wsgi.py`` but without
``import otel_uwsgi.auto``.  Flask (``OTEL_UWSGI_DEMO_APP=flask``, ``run.py --app flask``): the demo
Flask app itself, its first line ``import otel_uwsgi.auto`` made a no-op, so the views are the
very same.  The demo lives inside the ``otel_uwsgi`` package, whose import has no side effects;
startup fails if anything pulled in OpenTelemetry, so the baseline cannot silently trace.
"""

import os
import sys
import types

if os.environ.get("OTEL_UWSGI_DEMO_APP") == "flask":
    sys.modules["otel_uwsgi.auto"] = types.ModuleType("otel_uwsgi.auto")  # the app's `import otel_uwsgi.auto`
    from otel_uwsgi.demo.flask_app import application
else:
    from django.core.wsgi import get_wsgi_application
    from django.urls import get_resolver

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "otel_uwsgi.demo.settings")
    application = get_wsgi_application()
    if os.environ.get("BENCH_PLAIN_URLCONF") != "lazy":  # lazy: as a usual wsgi.py, at the first request
        get_resolver().url_patterns  # noqa: B018 - load the URLconf (and views) now, to check them too

_traced = sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry" or m == "otel_uwsgi.runtime.install")
if _traced:
    raise RuntimeError(f"bench/plain_wsgi.py must load no tracing code, but these were imported: {_traced[:5]}")
