"""Which HTTP transport the fast exporter's SDK client sends through, and that both send the same.

A plain ``http://`` collector gets the SDK's urllib3 transport; anything requests would add to
the POST (a proxy from the environment, netrc credentials, a credential-provider session) or an
``https://`` endpoint keeps the SDK's default, requests.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import pytest
from opentelemetry.exporter.http.transport._requests import RequestsHTTPTransport
from opentelemetry.exporter.http.transport._urllib3 import Urllib3HTTPTransport
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_uwsgi.export import span_exporter as exporter
from otel_uwsgi.export.span_exporter import FastOTLPSpanExporter
from tests.unit.export.test_encoder_equals_sdk import Capture, django_like_spans

PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy",
                   "NO_PROXY", "NETRC", *exporter._CREDENTIAL_PROVIDERS)  # fmt: skip


@pytest.fixture(autouse=True)
def _no_proxy_settings(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc of the machine's


@pytest.fixture
def capture() -> Iterator[Capture]:
    server = Capture()
    yield server
    server.stop()


def _transport(endpoint: str) -> object:
    built = FastOTLPSpanExporter(endpoint=endpoint, compression=Compression.Gzip)
    try:
        return built._client._transport
    finally:
        built.shutdown()


def test_plain_http_collector_gets_the_urllib3_transport():
    """http:// with nothing requests would add: the SDK's urllib3 transport."""
    assert type(_transport("http://127.0.0.1:4318/v1/traces")) is Urllib3HTTPTransport


@pytest.mark.parametrize(
    "env",
    [
        {"HTTP_PROXY": "http://proxy.invalid:3128"},
        {"all_proxy": "http://proxy.invalid:3128"},
        {"OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER": "mine"},
        {"OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER": "mine"},
    ],
    ids=["http_proxy", "all_proxy", "traces_credentials", "credentials"],
)
def test_what_requests_adds_keeps_requests(monkeypatch, env):
    """A proxy for the collector in the environment, or a credential provider: the SDK's requests."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert exporter.plain_http_transport("http://collector:4318/v1/traces") is None
    if "proxy" in next(iter(env)).lower():
        assert type(_transport("http://collector:4318/v1/traces")) is RequestsHTTPTransport


def test_a_proxy_bypassed_for_the_collector_does_not_count(monkeypatch):
    """NO_PROXY naming the collector: requests would not proxy it, so urllib3 may send."""
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "collector,localhost")
    assert type(_transport("http://collector:4318/v1/traces")) is Urllib3HTTPTransport


def test_netrc_credentials_for_the_collector_keep_requests(monkeypatch, tmp_path):
    """requests sends Basic credentials from netrc to a matching host; then it stays the transport."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine collector login user password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert type(_transport("http://collector:4318/v1/traces")) is RequestsHTTPTransport
    assert type(_transport("http://other:4318/v1/traces")) is Urllib3HTTPTransport


def test_https_keeps_requests():
    """TLS stays with requests (its CA bundle, REQUESTS_CA_BUNDLE, client certificates)."""
    assert type(_transport("https://collector:4318/v1/traces")) is RequestsHTTPTransport


def test_both_transports_post_the_same_request(capture, monkeypatch):
    """The same body, Content-Type, Content-Encoding, User-Agent and user headers either way."""
    spans = django_like_spans(30)
    sent = []
    for transport in ("urllib3", "requests"):
        if transport == "requests":
            monkeypatch.setattr(exporter, "plain_http_transport", lambda endpoint: None)
        built = FastOTLPSpanExporter(endpoint=capture.url, compression=Compression.Gzip, headers={"x-api-key": "k"})
        assert type(built._client._transport).__name__.lower().startswith(transport)
        assert built.export(spans) is SpanExportResult.SUCCESS
        built.shutdown()
    for headers, body in capture.requests:
        assert gzip.decompress(body) == sdk_encode_spans(spans).SerializeToString()
        names = ("content-type", "content-encoding", "user-agent", "x-api-key")
        sent.append({name: headers.get(name) for name in names})
    assert len(sent) == 2 and sent[0] == sent[1]
    assert sent[0]["content-type"] == "application/x-protobuf" and sent[0]["content-encoding"] == "gzip"


@pytest.mark.parametrize("level", [1, 6, 9])
def test_gzip_body_is_zlibs_gzip_container_on_every_python(level):
    """Python 3.10's ``zlib.compress`` has no ``wbits``: the exporter's gzip works there too and gives
    the bytes ``zlib.compress(body, level, 31)`` gives where that exists, at every level (level 1
    included: zlib's, not ISA-L's, even where python-isal is installed; bench/README.md says why)."""
    import gzip
    import sys
    import zlib

    body = sdk_encode_spans(django_like_spans(200)).SerializeToString()
    packed = exporter.gzip_body(body, level)
    assert gzip.decompress(packed) == body
    with_zlib = zlib.compressobj(level, zlib.DEFLATED, 31)
    assert packed == with_zlib.compress(body) + with_zlib.flush()
    if sys.version_info >= (3, 11):
        assert packed == zlib.compress(body, level, 31)


def test_the_exporter_never_imports_isal():
    """ISA-L's vector code in the shipping thread slowed the worker's request threads under load, so
    the exporter does not load python-isal even where it is installed (a fresh interpreter)."""
    import subprocess
    import sys

    code = "import sys, otel_uwsgi.export.span_exporter; print('isal' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"
