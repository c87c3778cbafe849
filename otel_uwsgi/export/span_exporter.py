"""OTLP/HTTP span exporter that encodes with :mod:`otel_uwsgi.export.encoder` and gzips at a chosen level.

A subclass of the SDK's ``OTLPSpanExporter``: endpoint, headers, TLS, session, timeout, retries
with backoff, ``Retry-After`` and shutdown stay the SDK's (its HTTP client sends the body).  Only
two steps of ``export`` change: the body is encoded by the direct encoder (same bytes, ~5x less
CPU) and, with gzip, compressed at ``gzip_level`` (1 by default: a third of level 9's CPU for a
body ~8% bigger; the stdlib's zlib, not ISA-L: see :func:`gzip_body`).  The
SDK client is built without compression and the exporter sends ``Content-Encoding: gzip`` itself,
so the client never compresses a second time.

For a plain ``http://`` endpoint that needs nothing ``requests`` adds (a proxy from the
environment, ``~/.netrc`` credentials, a credential-provider session), the client sends through
the SDK's own urllib3 transport instead of its default, requests: the same POST with the same
retries and timeouts, at a quarter of the CPU per export (~0.3 against ~1 ms per batch here).
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_uwsgi.export.encoder import encode_spans

logger = logging.getLogger(__name__)

# What export() reuses from the SDK exporter (1.45); if a later SDK renames them, export() is the SDK's.
_SDK_PARTS = ("_client", "_metrics", "_max_request_size", "_shutdown")
# Set, they make the SDK build a requests session of its own (an entry point's), which a transport
# passed in would bypass.
_CREDENTIAL_PROVIDERS = (
    "OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER",
    "OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER",
)


def plain_http_transport(endpoint: Optional[str]) -> Optional[Any]:
    """The SDK's urllib3 transport for ``endpoint`` when it is ``http://`` and requests would add
    nothing to a POST there (no proxy for it in the environment, no netrc entry, no credential
    provider); None otherwise: the SDK's default transport (requests) is used."""
    if not endpoint or not endpoint.lower().startswith("http://"):
        return None
    if any(os.environ.get(name) for name in _CREDENTIAL_PROVIDERS):
        return None
    try:
        from opentelemetry.exporter.http.transport._urllib3 import Urllib3HTTPTransport
        from requests.utils import get_environ_proxies, get_netrc_auth
    except ImportError:  # another exporter release: its own transport
        return None
    if get_environ_proxies(endpoint) or get_netrc_auth(endpoint):
        return None
    return Urllib3HTTPTransport(verify=True, cert=None)


_told = False


def _stepping_aside() -> None:
    global _told
    if not _told:
        _told = True
        logger.info(
            "otel-uwsgi: otel-fast-export steps aside for this opentelemetry-exporter-otlp-proto-http (its "
            "exporter lacks the parts it reuses); spans are exported by the SDK's own code path"
        )


class FastOTLPSpanExporter(OTLPSpanExporter):
    """``OTLPSpanExporter`` with the direct encoder and gzip at ``gzip_level`` (1-9).

    ``compression`` is taken as given (``None`` is no compression): the environment is not
    consulted for it, as otel-uwsgi resolves every option itself.
    """

    def __init__(
        self,
        *,
        compression: Optional[Compression] = None,
        gzip_level: int = 1,
        headers: Optional[Mapping[str, str]] = None,
        **kwargs: Any,
    ) -> None:
        if not 1 <= gzip_level <= 9:
            raise ValueError(f"gzip_level must be 1..9, got {gzip_level!r}")
        self._gzip_level: Optional[int] = None
        if compression is Compression.Gzip:
            self._gzip_level = gzip_level
            headers = {**(headers or {}), "Content-Encoding": "gzip"}
            compression = Compression.NoCompression
        transport = plain_http_transport(kwargs.get("endpoint"))
        try:
            super().__init__(
                compression=compression or Compression.NoCompression,
                headers=headers,
                **({"_transport": transport} if transport is not None else {}),
                **kwargs,
            )
        except TypeError:  # an exporter without the _transport argument: its default client
            if transport is None:
                raise
            transport.close()
            super().__init__(compression=compression or Compression.NoCompression, headers=headers, **kwargs)
        self._fast = all(hasattr(self, name) for name in _SDK_PARTS)
        if not self._fast:
            _stepping_aside()
            if self._gzip_level is not None:  # rebuilt so that the SDK's own code compresses
                self._gzip_level = None
                OTLPSpanExporter.shutdown(self)  # releases the first session
                super().__init__(compression=Compression.Gzip, headers=headers, **kwargs)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Encode, check the size, compress and hand the body to the SDK's HTTP client (retries there)."""
        if not self._fast:
            return super().export(spans)
        try:
            body = encode_spans(spans)
        except Exception as error:  # noqa: BLE001 - a batch that cannot be encoded fails, as in the SDK
            logger.error("Failed to encode span batch: %s", error)
            return SpanExportResult.FAILURE
        return self.export_body(body, len(spans))

    def export_body(self, body: bytes, count: int) -> SpanExportResult:
        """Send an encoded ``ExportTraceServiceRequest`` of ``count`` spans (the span journal's
        batches, :mod:`otel_uwsgi.traces.journal.ship`): size check, gzip, the SDK's client."""
        if not self._fast:
            return self._export_body_stock(body)
        if self._shutdown:
            logger.warning("Exporter already shutdown, ignoring batch")
            return SpanExportResult.FAILURE
        with self._metrics.export_operation(count) as result:
            if 0 < self._max_request_size < len(body):
                message = (
                    f"Dropping span batch: serialized size {len(body)} bytes exceeds max_request_size "
                    f"{self._max_request_size} bytes."
                )
                logger.warning("%s", message)
                result.error = _payload_too_large(message)
                return SpanExportResult.FAILURE
            if self._gzip_level is not None:
                body = gzip_body(body, self._gzip_level)
            sent = self._client.export(body)
            if not sent.success:
                result.error = sent.error
                result.error_attrs = (
                    {"http.response.status_code": sent.status_code} if sent.status_code is not None else None
                )
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def _export_body_stock(self, body: bytes) -> SpanExportResult:
        """An exporter release without the parts the fast path reuses (OpenTelemetry 1.33-1.4x):
        its own ``_export`` posts the body (compressing as configured), one attempt."""
        post = getattr(self, "_export", None)
        if post is None:
            return SpanExportResult.FAILURE
        try:
            response = post(body)
        except TypeError:  # releases whose _export also takes the timeout
            response = post(body, self._timeout)
        return SpanExportResult.SUCCESS if getattr(response, "ok", False) else SpanExportResult.FAILURE


def gzip_body(body: bytes, level: int) -> bytes:
    """``body`` in a gzip container at ``level``: ``zlib.compress(body, level, wbits=31)``, whose
    ``wbits`` argument Python 3.10 lacks (a compressor object gives the same bytes everywhere).

    Not Intel ISA-L (python-isal), although its level 1 makes the same size at a seventh of zlib's
    instructions: under load, ISA-L's vector code in the shipping thread made the request threads of
    the same worker slower (bench/README.md, "ISA-L's gzip, measured under load"), by more CPU per
    request than its whole saving."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    return compressor.compress(body) + compressor.flush()


def _payload_too_large(message: str) -> Exception:
    """The SDK's error type for an oversized request (its class name is the metric's ``error.type``)."""
    try:
        from opentelemetry.exporter.otlp.proto.http._common import RequestPayloadTooLargeError
    except ImportError:
        return ValueError(message)
    return RequestPayloadTooLargeError(message)
