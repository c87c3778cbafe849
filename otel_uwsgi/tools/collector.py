"""Does the ini's own collector take an export?

``otel-uwsgi check`` runs the app against its own receiver, which proves the workers export but
not that the collector the ini names is there.  So after the run, one real OTLP/HTTP export per
signal that is on (a probe span; a metric point, a log record when their exporters are on) goes
to the ini's endpoint with its headers, compression, TLS files and timeout, through the SDK's
own exporters built from the ini's settings (:func:`otel_uwsgi.export.otlp.build_otlp_exporter`),
one attempt each; the HTTP status or the connection's failure is read from the exporter's
requests session.

The settings are the ones the workers resolve: uWSGI itself expands the ini's values (``$(VAR)``,
``%(placeholder)``, included files; a repeated key gives its first value here) in a copy that
starts nothing.  Never printed: header values; a ``user:password@`` or a query in an endpoint URL
is masked (:func:`mask_url`).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import ssl
import subprocess
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Union
from urllib.parse import urlsplit, urlunsplit

import requests

from otel_uwsgi.config import uwsgi_ini
from otel_uwsgi.config.options import OPTIONS
from otel_uwsgi.config.settings import Settings, load
from otel_uwsgi.export.otlp import build_otlp_exporter, otlp_arguments, stop_retrying
from otel_uwsgi.tools.harness import OWNED_KEYS, prepare_ini, side_jobs

#: The options that decide where and how each signal is exported.
NAMES = tuple(
    o.name for o in OPTIONS
    if o.name.startswith("otel-exporter-otlp")
    or o.name in ("otel-sdk-disabled", "otel-service-name", "otel-traces-exporter", "otel-metrics-exporter",
                  "otel-logs-exporter")
)
_MARK = "otel-uwsgi-check-option "
_ENV_MARK = "otel-uwsgi-check-env "


@dataclass
class Probe:
    """What the collector said to one signal's export."""

    signal: str
    endpoint: str  # masked
    ok: bool
    answer: str  # "accepted (HTTP 200)", "refused: HTTP 401 Unauthorized", "nothing listening ..."
    advice: str = ""

    @property
    def line(self) -> str:
        return f"{self.signal} to {self.endpoint}: {self.answer}" + (f"; {self.advice}" if self.advice else "")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "line": self.line}


def mask_url(url: str) -> str:
    """``url`` with its ``user:password@`` and its query values replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    netloc = ("***@" + parts.netloc.rpartition("@")[2]) if "@" in parts.netloc else parts.netloc
    query = "&".join(
        f"{key}=***" if sep else key for key, sep, _ in (item.partition("=") for item in parts.query.split("&"))
    ) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def mask_urls(text: str) -> str:
    """``text`` with every URL in it masked (:func:`mask_url`)."""
    return _URL.sub(lambda m: mask_url(m.group(0)), text)


# -- the ini's settings, as uWSGI resolves them


def ini_settings(
    ini: Union[str, Path], uwsgi: str, workdir: str, extra: Optional[Mapping[str, str]] = None
) -> Settings:
    """The exporter settings the ini's workers resolve (plus ``extra``, the check's own options).

    uWSGI expands the values: a copy of the ini without what starts processes or runs commands
    (:func:`.harness.side_jobs`) ends with ``print`` lines naming each option, and uWSGI stops
    after reading it (``--get``).  Raises :class:`ConfigError` when they are invalid, OSError
    when uWSGI cannot read the ini."""
    items = uwsgi_ini.read(ini)
    prints = [f"{_MARK}{name}=%({name})" for name in NAMES]
    prints += [f"{_ENV_MARK}{value}" for key, value in items if key == "env" and value.startswith("OTEL_")]
    copy = Path(workdir) / "collector.ini"
    # Nothing of a running service may be touched by this uWSGI either: its pidfile (which
    # ``vacuum`` removes at exit), FIFO, sockets, logs; only the exporter's options are kept.
    drop = (OWNED_KEYS - set(NAMES)) | side_jobs(items).drop
    copy.write_text(prepare_ini(ini, {"print": prints}, drop=drop))
    try:
        done = subprocess.run(
            [uwsgi, "--ini", str(copy), "--get", "otel-uwsgi-check-nothing"],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
        )
        output = done.stdout + "\n" + done.stderr
    finally:
        copy.unlink()
    if _MARK not in output:  # uWSGI stopped before the end of the ini
        last = [line for line in output.splitlines() if line.strip()][-1:] or ["no output"]
        raise OSError(f"uwsgi did not read it through: {mask_urls(last[0])}")
    opt: dict[str, str] = {}
    environ = dict(os.environ)
    for line in output.splitlines():
        if line.startswith(_MARK):
            name, _, value = line[len(_MARK) :].partition("=")
            if value != f"%({name})":  # uWSGI leaves an undefined name as written
                opt[name] = value
        elif line.startswith(_ENV_MARK):
            name, _, value = line[len(_ENV_MARK) :].partition("=")
            environ[name] = value
    opt.update({k: v for k, v in (extra or {}).items() if k.startswith("otel-")})
    return load(opt, environ, where=str(ini))


# -- the probes


def signals_on(settings: Settings) -> list[str]:
    """The signals the ini exports over OTLP."""
    if settings["otel-sdk-disabled"]:
        return []
    return [s for s in ("traces", "metrics", "logs") if settings[f"otel-{s}-exporter"] == "otlp"]


def probe(settings: Settings) -> list[Probe]:
    """One export per signal that is on, at once (a hanging collector costs one timeout)."""
    on = signals_on(settings)
    if not on:
        return []
    with _quiet(), ThreadPoolExecutor(len(on)) as pool:
        return list(pool.map(lambda signal: _probe(settings, signal), on))


class _Recording(requests.Session):
    """The exporter's session: keeps the last answer (a response, or the exception) it got."""

    answer: Union[requests.Response, BaseException, None] = None

    def request(self, method: Union[str, bytes], url: Union[str, bytes], *args: Any, **kwargs: Any) -> Any:
        try:
            self.answer = super().request(method, url, *args, **kwargs)
        except BaseException as error:
            self.answer = error
            raise
        return self.answer


def _probe(settings: Settings, signal: str) -> Probe:
    arguments = otlp_arguments(settings, signal)
    endpoint, timeout = mask_url(arguments["endpoint"]), float(arguments["timeout"])
    session = _Recording()
    try:
        exporter = build_otlp_exporter(_exporter_classes()[signal], settings, signal, session=session)
        stop_retrying(exporter)  # one attempt: the first answer tells
        try:
            _SENDERS[signal](exporter, settings)
        finally:
            exporter.shutdown()
    except Exception as error:  # noqa: BLE001 - said in the report, never raised out of the check
        if session.answer is None:
            return Probe(signal, endpoint, False, f"not sent: {type(error).__name__}: {mask_urls(str(error))}")
    ok, answer, advice = judge(session.answer, timeout, signal)
    return Probe(signal, endpoint, ok, answer, advice)


def judge(answer: Union[requests.Response, BaseException, None], timeout: float, signal: str) -> tuple[bool, str, str]:
    """(accepted, what answered, what to do) for the exporter's last answer."""
    headers = f"otel-exporter-otlp-headers or otel-exporter-otlp-{signal}-headers"
    if answer is None:
        return False, "not sent (the exporter made no request)", ""
    if isinstance(answer, requests.Response):
        code, reason = answer.status_code, (answer.reason or "").strip()
        status = f"HTTP {code}" + (f" {reason}" if reason else "")
        if 200 <= code < 300:
            return True, f"accepted ({status})", ""
        if code in (401, 403):
            return False, f"refused: {status}", f"check the headers ({headers}; values not shown)"
        if code in (404, 405):
            return False, f"refused: {status}", "is it the collector's OTLP/HTTP endpoint (port 4318; not gRPC's 4317)?"
        return False, f"refused: {status}", ""
    chain = _chain(answer)
    tls = [e for e in chain if isinstance(e, (ssl.SSLError, requests.exceptions.SSLError))]
    if tls:
        raw = next((e for e in tls if isinstance(e, ssl.SSLError)), tls[0])
        why = getattr(raw, "verify_message", None) or getattr(raw, "reason", None) or type(raw).__name__
        if why == "WRONG_VERSION_NUMBER":
            return False, "TLS error: no TLS there (WRONG_VERSION_NUMBER)", "use http://, or the collector's TLS port"
        return False, f"TLS error: {why}", "check otel-exporter-otlp-certificate (and the client certificate and key)"
    if any(isinstance(e, (requests.exceptions.Timeout, TimeoutError, socket.timeout)) for e in chain):
        return False, f"no answer within {timeout:g} s (timeout)", "is the collector overloaded, or a firewall between?"
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return False, "nothing listening (connection refused)", "is the collector running, the endpoint right?"
    if any(isinstance(e, socket.gaierror) for e in chain):
        return False, "host name not found", "is the endpoint's host right?"
    oserror = next((e for e in chain if isinstance(e, OSError) and e.strerror), None)
    if oserror is not None:
        return False, f"connection failed: {oserror.strerror}", ""
    return False, f"failed: {type(answer).__name__}", ""


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and what it wraps (causes, contexts, urllib3's ``reason``, exceptions in ``args``)."""
    seen: list[BaseException] = []
    todo: list[Any] = [error]
    while todo:
        current = todo.pop()
        if not isinstance(current, BaseException) or any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
    return seen


@contextmanager
def _quiet() -> Iterator[None]:
    """The SDK's exporters log each failed export: the report says it once, in its own words."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(previous)


def _resource(settings: Settings) -> Any:
    from opentelemetry.sdk.resources import Resource

    name = settings["otel-service-name"] or "unknown_service"
    return Resource({"service.name": name, "otel_uwsgi.probe": "otel-uwsgi check"})


def _send_span(exporter: Any, settings: Settings) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    span = TracerProvider(resource=_resource(settings)).get_tracer("otel-uwsgi check").start_span(
        "otel-uwsgi check: collector probe"
    )
    span.end()
    exporter.export([span])


def _send_metric(exporter: Any, settings: Settings) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(resource=_resource(settings), metric_readers=[reader])
    provider.get_meter("otel-uwsgi check").create_counter("otel_uwsgi.probe").add(1)
    exporter.export(reader.get_metrics_data())
    provider.shutdown()


def _send_log(exporter: Any, settings: Settings) -> None:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

    from otel_uwsgi.logs.export import OTLPHandler

    provider = LoggerProvider(resource=_resource(settings), shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))  # exports on emit
    record = logging.LogRecord("otel_uwsgi.probe", logging.INFO, __file__, 0, "otel-uwsgi check: collector probe",
                               None, None)
    OTLPHandler(provider).emit(record)


def _exporter_classes() -> dict[str, Any]:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return {"traces": OTLPSpanExporter, "metrics": OTLPMetricExporter, "logs": OTLPLogExporter}


_SENDERS = {"traces": _send_span, "metrics": _send_metric, "logs": _send_log}
