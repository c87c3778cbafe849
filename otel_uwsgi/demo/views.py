"""Demo views: a whole trace (a query, the cache, and a call to a second view over HTTP), trivial,
one query, ten queries, slow, failing, who-served-me, and two for fault tests: one that grows the
worker's memory (reload-on-rss) and one that kills its worker."""

from __future__ import annotations

import json
import os
import time

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse

import otel_uwsgi
from otel_uwsgi.demo import services
from otel_uwsgi.demo.services import worker_id as _worker_id  # bench/fast_profile.py replaces it


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok\n", content_type="text/plain")


def whole_trace(request: HttpRequest) -> JsonResponse:
    """What a service does: a query, the cache (Redis when the demo has it, else a second
    query), and a call to another service, here the demo's own ``/downstream``, over HTTP with the
    stack's client (``?downstream=URL`` calls another): its server span joins this request's trace."""
    from django.core.cache import caches

    rows = _query(1)
    cache = caches["default"]
    if "redis" in type(cache).__module__:
        hits = cache.get_or_set("otel-uwsgi-demo", 0)
    else:
        hits = _query(1)[0]
    url = request.GET.get("downstream") or f"http://{request.get_host()}/downstream"
    return JsonResponse(
        {"rows": rows, "cache": hits, "downstream": services.call(url), "pid": os.getpid(), "worker": _worker_id()}
    )


def downstream(request: HttpRequest) -> JsonResponse:
    """The second service of :func:`whole_trace`: who answered, and the trace it was called in."""
    return JsonResponse(services.downstream(request.META.get("HTTP_TRACEPARENT")))


def _query(n: int, alias: str = "default") -> list:
    from django.db import connections

    rows = []
    with connections[alias].cursor() as cursor:
        for i in range(n):
            cursor.execute("SELECT %s", [i])
            rows.append(cursor.fetchone()[0])
    return rows


def one_query(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"rows": _query(1), "pid": os.getpid(), "worker": _worker_id()})


def pg_query(request: HttpRequest) -> JsonResponse:
    """One query on PostgreSQL: ``/db`` through psycopg (the default database when it is
    PostgreSQL, else the settings' ``DEMO_POSTGRES``, added as the ``pg`` alias at the first call)."""
    from django.conf import settings
    from django.db import connections

    alias = "default"
    if connections["default"].vendor != "postgresql":
        alias = "pg"
        if alias not in connections.settings:
            both = connections.configure_settings({"default": {}, alias: dict(settings.DEMO_POSTGRES)})
            connections.settings[alias] = both[alias]
    return JsonResponse({"rows": _query(1, alias), "pid": os.getpid(), "worker": _worker_id()})


def ten_queries(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"rows": _query(10), "pid": os.getpid(), "worker": _worker_id()})


def slow(request: HttpRequest) -> HttpResponse:
    time.sleep(float(request.GET.get("s", "1")))
    return HttpResponse("slow\n", content_type="text/plain")


def error(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("demo error")


def whoami(request: HttpRequest) -> HttpResponse:
    return HttpResponse(
        json.dumps(
            {
                "pid": os.getpid(),
                "worker": _worker_id(),
                "traceparent": request.META.get("HTTP_TRACEPARENT"),
                "vendor": connection.vendor,
                "delivery": otel_uwsgi.delivery_counts(),
            }
        ),
        content_type="application/json",
    )


_grown: list[bytes] = []  # kept for the worker's lifetime, so its RSS stays up


def grow(request: HttpRequest) -> JsonResponse:
    """Allocate ``mb`` megabytes (pages touched, so RSS grows) and keep them: trips reload-on-rss."""
    _grown.append(b"\x01" * (int(request.GET.get("mb", "10")) << 20))
    return JsonResponse({"pid": os.getpid(), "worker": _worker_id(), "held_mb": sum(map(len, _grown)) >> 20})


def exit_now(request: HttpRequest) -> HttpResponse:
    """End the worker at once with ``os._exit(1)``: no exit hook runs, as with a crash."""
    os._exit(1)
