"""The test receiver (bound to 0.0.0.0 by the Docker checker) trusts no client: a Content-Length
over its cap, a bad one, or a body that inflates past its cap is answered 413 / 400 without being
read or inflated whole; a normal gzip body still decodes."""

from __future__ import annotations

import http.client
import zlib

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_uwsgi.tools import receiver as receiver_module
from otel_uwsgi.tools.receiver import Receiver


def _post(port: int, body: bytes, headers: dict[str, str]) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("POST", "/v1/traces")
        for key, value in headers.items():
            conn.putheader(key, value)
        conn.endheaders()
        if body:
            conn.send(body)
        return conn.getresponse().status
    finally:
        conn.close()


def _gzip(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


def test_oversized_bad_and_bombed_bodies_are_refused(monkeypatch):
    monkeypatch.setattr(receiver_module, "MAX_INFLATED", 1 << 20)
    with Receiver() as r:
        port = int(r.endpoint.rsplit(":", 1)[1])
        assert _post(port, b"", {"Content-Length": str(receiver_module.MAX_BODY + 1)}) == 413
        assert _post(port, b"", {"Content-Length": "-5"}) == 400
        bomb = _gzip(b"\x00" * (4 << 20))  # 4 MiB of zeros in a few KiB
        assert _post(port, bomb, {"Content-Length": str(len(bomb)), "Content-Encoding": "gzip"}) == 413
        ok = _gzip(ExportTraceServiceRequest().SerializeToString())
        assert _post(port, ok, {"Content-Length": str(len(ok)), "Content-Encoding": "gzip"}) == 200
