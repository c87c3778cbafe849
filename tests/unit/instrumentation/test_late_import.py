"""An app created before otel-uwsgi instrumented its framework is said once, naming the module and
the file to fix; the app is untraced indeed.  With the import first, nothing is said and the app is
traced.  Real Flask and Django, each in its own interpreter (instrumenting changes them for good).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from otel_uwsgi.instrumentation import late_import

ROOT = Path(__file__).resolve().parents[3]

#: Each script ends by printing the server span names of two requests to /item/1 and /item/2.
TRACE = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
"""
INSTRUMENT = """
from otel_uwsgi.runtime import own_log
own_log.to_uwsgi_log()
from otel_uwsgi.instrumentation import registry
registry.instrument(["flask"])
"""
SHOP = """
from flask import Flask
app = Flask(__name__)
@app.route("/item/<int:i>")
def item(i):
    return str(i)
"""
SERVE = """
import json
client = app.test_client()
assert [client.get(f"/item/{i}").status_code for i in (1, 2)] == [200, 200]
print(json.dumps([s.name for s in exporter.get_finished_spans() if s.kind.name == "SERVER"]))
"""


def run(tmp_path: Path, files: dict[str, str], main: str) -> tuple[list[str], list[str]]:
    """Run ``import <main>`` with ``files`` written to ``tmp_path``: (server span names, warnings)."""
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    out = subprocess.run(
        [sys.executable, "-c", f"import {main}"], capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={"PYTHONPATH": f"{ROOT}:{tmp_path}", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    warnings = [line for line in out.stderr.splitlines() if line.startswith("otel-uwsgi: WARNING: ")]
    return json.loads(out.stdout.strip().splitlines()[-1]), warnings


def test_a_flask_app_created_before_is_named_with_the_fix(tmp_path):
    wsgi = TRACE + "from shop import app\n" + INSTRUMENT + SERVE
    names, warnings = run(tmp_path, {"shop/__init__.py": SHOP, "late_wsgi.py": wsgi}, "late_wsgi")
    assert names == [], "the claim: an app created before is not traced"
    assert len(warnings) == 1, warnings
    assert "the Flask app of 'shop' was created before otel_uwsgi.auto" in warnings[0]
    assert f"put `import otel_uwsgi.auto` first in {tmp_path / 'late_wsgi.py'}" in warnings[0]


def test_a_flask_class_imported_before_is_named_with_the_fix(tmp_path):
    """``from flask import Flask`` before instrumenting: the app made from it after is untraced too."""
    wsgi = TRACE + "from flask import Flask\n" + INSTRUMENT + SHOP.replace("from flask import Flask\n", "") + SERVE
    names, warnings = run(tmp_path, {"class_wsgi.py": wsgi}, "class_wsgi")
    assert names == []
    assert len(warnings) == 1, warnings
    assert "'class_wsgi' imported flask.Flask before otel_uwsgi.auto" in warnings[0]
    assert f"first in {tmp_path / 'class_wsgi.py'}" in warnings[0]


def test_with_the_import_first_nothing_is_said_and_routes_name_the_spans(tmp_path):
    wsgi = TRACE + INSTRUMENT + "from shop import app\n" + SERVE
    names, warnings = run(tmp_path, {"shop/__init__.py": SHOP, "first_wsgi.py": wsgi}, "first_wsgi")
    assert warnings == []
    assert names == ["GET /item/<int:i>"] * 2


def test_the_fast_path_adopts_every_app_so_nothing_is_said():
    assert late_import.check({"flask"}, {"flask"}, {"flask"}) == []
    assert late_import.check(set(), {"flask"}, set()) == [], "Flask imported after instrumenting: no scan"


DJANGO = """
from django.conf import settings
settings.configure(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"], MIDDLEWARE=[], INSTALLED_APPS=[])
import django
from django.core.wsgi import get_wsgi_application
from django.http import HttpResponse
from django.urls import path
urlpatterns = [path("item/<int:i>", lambda request, i: HttpResponse(str(i)))]
"""
DJANGO_SERVE = """
import json
from wsgiref.util import setup_testing_defaults
for i in (1, 2):
    environ = {"PATH_INFO": f"/item/{i}"}
    setup_testing_defaults(environ)
    b"".join(handler(environ, lambda status, headers, exc_info=None: None))
print(json.dumps([s.name for s in exporter.get_finished_spans() if s.kind.name == "SERVER"]))
"""


def test_a_django_handler_built_before_is_named_with_the_fix(tmp_path):
    wsgi = TRACE + DJANGO + "handler = get_wsgi_application()\n" + INSTRUMENT.replace('"flask"', '"django"')
    names, warnings = run(tmp_path, {"dj_wsgi.py": wsgi + DJANGO_SERVE}, "dj_wsgi")
    assert names == [], "the claim: a handler built before is not traced"
    assert len(warnings) == 1, warnings
    assert "Django was set up before otel_uwsgi.auto" in warnings[0]
    assert "handler already built in 'dj_wsgi'" in warnings[0]
    assert f"put `import otel_uwsgi.auto` first in {tmp_path / 'dj_wsgi.py'}" in warnings[0]
