"""A Flask app under real uWSGI, in the orders users get wrong (issue 30, items 3 and 9).

Wrapped with wrap_wsgi() as the stock WSGI docs show: wrap_wsgi() returns it unchanged with one
warning, and server spans keep Flask's route names and http.route (two names for two routes, not
one per URL).  Created before ``import otel_uwsgi.auto``: the Flask fast path (the default) traces
it anyway; with the stock instrumentation, one warning naming the app's module and the file to fix
(``put `import otel_uwsgi.auto` first in ...``), and wrap_wsgi() is its tracing meanwhile.
"""

from __future__ import annotations

import pytest

from ..conftest import ROOT

pytestmark = pytest.mark.integration

APP = "tests.integration.apps.flask_order:application"
FILE = ROOT / "tests" / "integration" / "apps" / "flask_order.py"
PATHS = [f"/item/{i}" for i in range(10)] + [f"/user/u{i}" for i in range(10)]


def _run(start_uwsgi, receiver, order: str, **options: str) -> tuple[list, list[str]]:
    server = start_uwsgi("minimal.ini", workers=2, extra={"module": APP, **options},
                         env={"OTEL_UWSGI_TEST_ORDER": order}, ready_path="/item/0")
    for path in PATHS:
        assert server.get(path)[0] == 200
    server.stop()
    served = server.uwsgi.served().total
    assert receiver.wait_for(lambda spans: sum(s.kind == "SERVER" for s in spans) >= served, 15)
    warnings = [line for line in server.uwsgi.log().splitlines() if line.startswith("otel-uwsgi: WARNING: ")]
    return [s for s in receiver.snapshot() if s.kind == "SERVER"], warnings


def test_wrap_wsgi_on_a_traced_flask_app_keeps_route_names(start_uwsgi, receiver):
    servers, warnings = _run(start_uwsgi, receiver, "wrapped")
    assert {s.name for s in servers} == {"GET /item/<int:item_id>", "GET /user/<name>"}
    assert {s.attributes.get("http.route") for s in servers} == {"/item/<int:item_id>", "/user/<name>"}
    assert len(warnings) == 1, warnings
    assert "wrap_wsgi() returned the Flask app of 'tests.integration.apps.flask_order' unchanged" in warnings[0]
    assert f"remove otel_uwsgi.wrap_wsgi() from {FILE}" in warnings[0]


def test_a_late_flask_app_is_traced_by_route_on_the_fast_path(start_uwsgi, receiver):
    """By default the Flask fast path adopts an app created before the import (at its first
    request): routes name the spans, and wrap_wsgi() steps aside as for any traced app."""
    servers, warnings = _run(start_uwsgi, receiver, "late")
    assert {s.name for s in servers} == {"GET /item/<int:item_id>", "GET /user/<name>"}
    assert len(warnings) == 1 and "wrap_wsgi() returned the Flask app" in warnings[0], warnings


def test_a_flask_app_created_before_the_import_is_named_with_the_fix(start_uwsgi, receiver):
    """With the stock Flask instrumentation (otel-fast-instrumentation = false), which traces only
    apps made after it, a late app gets the warning naming the fix."""
    servers, warnings = _run(start_uwsgi, receiver, "late", **{"otel-fast-instrumentation": "false"})
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(
        "otel-uwsgi: WARNING: the Flask app of 'tests.integration.apps.flask_order' was created before "
        "otel_uwsgi.auto was imported"
    )
    assert warnings[0].endswith(f"put `import otel_uwsgi.auto` first in {FILE}")
    assert len(servers) >= len(PATHS), "wrap_wsgi() traces it meanwhile"
