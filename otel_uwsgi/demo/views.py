"""Demo views: trivial, one query, ten queries, slow, failing, who-served-me, and two for fault
tests: one that grows the worker's memory (reload-on-rss) and one that kills its worker."""

from __future__ import annotations

import json
import os
import time

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse

import otel_uwsgi


def _worker_id() -> int:
    try:
        import uwsgi  # type: ignore[import-not-found]

        return uwsgi.worker_id()
    except ImportError:
        return 0


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok\n", content_type="text/plain")


def _query(n: int) -> list:
    rows = []
    with connection.cursor() as cursor:
        for i in range(n):
            cursor.execute("SELECT %s", [i])
            rows.append(cursor.fetchone()[0])
    return rows


def one_query(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"rows": _query(1), "pid": os.getpid(), "worker": _worker_id()})


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
