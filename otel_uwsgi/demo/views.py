"""Demo views: trivial, one query, ten queries, slow, failing, and who-served-me."""

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
