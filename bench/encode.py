"""Micro-benchmark of the export path: µs per span for encoding and gzip.

Compares the SDK's ``encode_spans(...).SerializeToString()`` with otel-uwsgi's direct encoder
(``otel_uwsgi.export.encoder``), and gzip level 1 with level 9 (the SDK exporter's), over batches of
realistic spans: one Django server span (~15 attributes) plus two MySQL spans per request, made
by the real SDK TracerProvider.  Prints medians of several rounds; numbers drift on shared
machines, so compare the columns of one run rather than across runs.

    python bench/encode.py [--batch 512] [--rounds 7]
"""

from __future__ import annotations

import argparse
import gzip
import io
import statistics
import time
import zlib
from collections.abc import Callable, Sequence

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_uwsgi.export.encoder import encode_spans


def make_spans(batch: int) -> list[ReadableSpan]:
    """``batch`` finished spans shaped like a Django + MySQL worker's (1 server + 2 DB spans a request)."""
    memory = InMemorySpanExporter()
    resource = Resource(
        {
            "service.name": "shop",
            "service.version": "1.4.2",
            "deployment.environment.name": "production",
            "host.name": "web-7f9c6d-abcde",
            "process.pid": 4242,
            "process.parent_pid": 4200,
            "service.instance.id": "6c3e5c1e-8a0e-4d5e-9a53-1c8f0e6b2d11",
            "uwsgi.worker.id": 3,
            "uwsgi.process.type": "worker",
            "telemetry.sdk.language": "python",
            "telemetry.sdk.name": "opentelemetry",
            "telemetry.sdk.version": "1.45.2",
        }
    )
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    django = provider.get_tracer(
        "opentelemetry.instrumentation.django", "0.66b2", schema_url="https://opentelemetry.io/schemas/1.11.0"
    )
    dbapi = provider.get_tracer("opentelemetry.instrumentation.dbapi", "0.66b2")
    request = 0
    while len(memory.get_finished_spans()) < batch:
        request += 1
        with django.start_as_current_span(
            "GET shop/product/<int:pk>",
            kind=SpanKind.SERVER,
            attributes={
                "http.method": "GET",
                "http.server_name": "web-7f9c6d-abcde",
                "http.scheme": "http",
                "net.host.port": 8000,
                "http.host": "shop.example.com",
                "http.target": f"/product/{request % 977}?ref=home",
                "http.url": f"http://shop.example.com/product/{request % 977}?ref=home",
                "net.peer.ip": "10.1.2.3",
                "net.peer.port": 40000 + request % 20000,
                "http.user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
                "http.flavor": "1.1",
                "http.route": "product/<int:pk>",
            },
        ) as server:
            for statement in (
                "SELECT `shop_product`.`id`, `shop_product`.`name` FROM `shop_product` WHERE `id` = %s",
                "SELECT COUNT(*) AS `__count` FROM `shop_review` WHERE `product_id` = %s",
            ):
                with dbapi.start_as_current_span(
                    "SELECT",
                    kind=SpanKind.CLIENT,
                    attributes={
                        "db.system": "mysql",
                        "db.name": "shop",
                        "db.statement": statement,
                        "db.user": "shop",
                        "net.peer.name": "db.internal",
                        "net.peer.port": 3306,
                    },
                ):
                    pass
            server.set_attribute("http.status_code", 200 if request % 50 else 500)
            server.set_attribute("http.response.content_length", 5120 + request % 300)
            server.set_attribute("uwsgi.worker.id", 3)
            if request % 50 == 0:
                server.set_status(Status(StatusCode.ERROR))
    return list(memory.get_finished_spans()[:batch])


def per_span(fns: dict[str, Callable[[], object]], spans: int, rounds: int) -> dict[str, float]:
    """Median CPU µs per span of each function, the functions alternated within every round.

    This thread's CPU time (not wall time) and alternation keep other processes and the machine's
    drift from favouring one column; each function runs ~0.1 s per round.
    """
    repeats = {}
    for label, fn in fns.items():
        fn()
        start = time.thread_time()
        fn()
        repeats[label] = max(1, int(0.1 / max(time.thread_time() - start, 1e-6)))
    samples: dict[str, list[float]] = {label: [] for label in fns}
    for _ in range(rounds):
        for label, fn in fns.items():
            start = time.thread_time()
            for _ in range(repeats[label]):
                fn()
            samples[label].append((time.thread_time() - start) / repeats[label] / spans * 1e6)
    return {label: statistics.median(values) for label, values in samples.items()}


def sdk_gzip(data: bytes) -> bytes:
    """The SDK exporter's compression (GzipFile, level 9)."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="w") as gz:
        gz.write(data)
    return buf.getvalue()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=512, help="spans per export batch (default 512)")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds, median reported (default 7)")
    args = parser.parse_args(argv)
    spans = make_spans(args.batch)
    n = len(spans)
    stock_bytes = sdk_encode_spans(spans).SerializeToString()
    ours = encode_spans(spans)
    print(
        f"batch: {n} spans ({n // 3} Django server spans + {n - n // 3} MySQL spans), "
        f"{len(ours)} bytes encoded, identical to the SDK's: {ours == stock_bytes}"
    )
    rows = {
        "encode: SDK encode_spans + SerializeToString": lambda: sdk_encode_spans(spans).SerializeToString(),
        "encode: otel_uwsgi.export.encoder.encode_spans": lambda: encode_spans(spans),
        "gzip level 9 (SDK exporter: GzipFile)": lambda: sdk_gzip(ours),
        "gzip level 9 (zlib)": lambda: zlib.compress(ours, 9, 31),
        "gzip level 1 (zlib, otel-gzip-level default)": lambda: zlib.compress(ours, 1, 31),
    }
    results = per_span(rows, n, args.rounds)
    for label, value in results.items():
        print(f"{label:<48} {value:7.2f} µs/span")
    level1, level9 = zlib.compress(ours, 1, 31), zlib.compress(ours, 9, 31)
    print(
        f"gzip sizes: level 1 {len(level1)} bytes ({len(ours) / len(level1):.1f}x), "
        f"level 9 {len(level9)} bytes ({len(ours) / len(level9):.1f}x), level 1 is "
        f"{(len(level1) / len(level9) - 1) * 100:.0f}% bigger"
    )
    labels = list(rows)
    stock_total = results[labels[0]] + results[labels[2]]
    fast_total = results[labels[1]] + results[labels[4]]
    print(
        f"encode+gzip per span: SDK {stock_total:.2f} µs, otel-uwsgi {fast_total:.2f} µs "
        f"({stock_total / fast_total:.1f}x less CPU)"
    )


if __name__ == "__main__":
    main()
