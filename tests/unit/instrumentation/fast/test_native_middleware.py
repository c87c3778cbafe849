"""otel_uwsgi/native/_django.c: the C base of the Django middleware when what the view chain raises
escapes it (Django turns a view's Exception into a response; what reaches the middleware is a
middleware's own failure or a BaseException): the span ends, records an Exception as the Python
twin does (ERROR, an ``exception`` event) and not a BaseException, the context is restored, and
the exception goes up unchanged.  Each case runs through the C base and through the Python twin.

Run as a script (``python tests/unit/instrumentation/fast/test_native_middleware.py c|python``) it
is that subprocess: it prints what it saw as JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from django.http import HttpResponse
from django.urls import path as route

from tests.unit.instrumentation.fast.spans import run_script, wsgi_environ


def run(path: str) -> dict[str, Any]:
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="native-middleware-test",
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        DATABASES={},
        LOGGING_CONFIG=None,
    )
    from django.core.handlers.wsgi import WSGIRequest
    from django.core.wsgi import get_wsgi_application
    from opentelemetry import trace

    from otel_uwsgi.instrumentation.fast import middleware
    from otel_uwsgi.instrumentation.registry import instrument
    from tests.unit.instrumentation.fast.spans import collect_spans

    if path == "python":  # the twins as Django's hooks, as without the extension
        middleware.ServerSpanMiddleware.__call__ = middleware.ServerSpanMiddleware._call
    instrument(("django",), fast=True)
    exporter = collect_spans("fast")
    app = get_wsgi_application()
    for _ in range(2):  # the Host accepted once, by the twin
        result = app(wsgi_environ("/"), lambda status, headers, exc_info=None: None)
        b"".join(result)
        result.close()
    (chain,) = [m for m in _instances(middleware.ServerSpanMiddleware)]
    twin_calls: list[int] = []
    twin = middleware.ServerSpanMiddleware._call

    def counted(self: Any, request: Any) -> Any:
        twin_calls.append(1)
        return twin(self, request)

    middleware.ServerSpanMiddleware._call = counted  # type: ignore[method-assign]
    out: dict[str, Any] = {"c_base": middleware._Base is not object}
    for raised in (ValueError("middleware failed"), KeyboardInterrupt("stop")):
        exporter.clear()
        twin_calls.clear()
        current: list[Any] = []

        def fails(request: Any, raised: BaseException = raised, current: list[Any] = current) -> Any:
            current.append(trace.get_current_span())
            raise raised

        mw = middleware.ServerSpanMiddleware(fails)
        mw._hosts = chain._hosts
        try:
            mw(WSGIRequest(wsgi_environ("/")))
            escaped = None
        except BaseException as exc:  # noqa: BLE001
            escaped = exc
        (span,) = exporter.get_finished_spans()
        out[type(raised).__name__] = {
            "same exception": escaped is raised,
            "span was current": current[0].get_span_context().span_id == span.context.span_id,
            "context restored": not trace.get_current_span().get_span_context().is_valid,
            "status": span.status.status_code.name,
            "events": [event.name for event in span.events],
            "twin ran": bool(twin_calls),
        }
    return out


def _instances(cls: type) -> list[Any]:
    import gc

    return [o for o in gc.get_objects() if type(o) is cls]


def _home(request: Any) -> Any:
    return HttpResponse("home")


urlpatterns = [route("", _home, name="home")]


HERE = Path(__file__).resolve()


@pytest.mark.parametrize("path", ["c", "python"])
def test_what_escapes_the_view_chain_ends_the_span_and_goes_up(path):
    seen = run_script(HERE, path)
    from otel_uwsgi.instrumentation.fast import middleware

    if path == "c" and middleware._Base is object:
        pytest.skip("the C extension is not built here")
    assert seen["c_base"] is (middleware._Base is not object)
    error, interrupt = seen["ValueError"], seen["KeyboardInterrupt"]
    for case in (error, interrupt):
        assert case["same exception"] and case["span was current"] and case["context restored"]
        assert case["twin ran"] is False or path == "python"
    assert error["status"] == "ERROR" and error["events"] == ["exception"]
    assert interrupt["status"] == "UNSET" and interrupt["events"] == []


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1])))
