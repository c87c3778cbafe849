"""Every option otel-uwsgi understands, declared once: ini key, environment variable, parser,
default, help text and group.

Each option has a uWSGI ini key (``otel-service-name``) and, for the standard ones, the
OpenTelemetry environment variable of the same name (``OTEL_SERVICE_NAME``).  The option
table is generated from :data:`OPTIONS` (``otel-uwsgi options``); :mod:`.settings` resolves them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

from otel_uwsgi.config.parsers import (
    Invalid,
    any_text,
    at_least,
    attributes,
    boolean,
    choice,
    headers,
    in_range,
    names,
    number,
    path,
    url,
)

# --------------------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Option:
    """One setting: its ini key, environment variable, parser, default and help text."""

    name: str
    parse: Callable[[str], Any]
    default: Any
    help: str
    env: Optional[str] = None
    secret: bool = False
    group: str = "OpenTelemetry SDK"
    #: For pass-through options: the value is exported to os.environ for an instrumentation.
    passthrough: bool = False

    @property
    def accepted(self) -> str:
        try:
            self.parse("\x00invalid\x00")
        except Invalid as exc:
            return str(exc)
        return "any text"


def _std(name: str, parse: Callable[[str], Any], default: Any, help: str, **kw: Any) -> Option:
    """A standard OpenTelemetry variable: the env var is the ini key upper-cased."""
    return Option(name, parse, default, help, env=name.upper().replace("-", "_"), **kw)


_SAMPLERS = choice(
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
_PROPAGATORS = ("tracecontext", "baggage", "b3", "b3multi", "jaeger", "xray", "ottrace")
_OTLP = "OTLP exporter"
_OURS = "otel-uwsgi"
_PASS = "Instrumentation (passed to the instrumentations as environment variables)"
_SIGNALS = "Metrics and logs"


def _signal_exporter_options(signal: str) -> tuple[Option, ...]:
    """The OTLP exporter options of one more signal (``metrics``, ``logs``), twins of the generic ones."""
    name = f"otel-exporter-otlp-{signal}"
    variant = f"{signal.capitalize()}-only variant."
    return (
        _std(f"{name}-endpoint", url, None,
             f"Full {signal} URL, used as is (else the base URL plus `/v1/{signal}`).", group=_SIGNALS),
        _std(f"{name}-headers", headers, None, f"{signal.capitalize()}-only headers (replace the generic ones). "
             "Never logged.", secret=True, group=_SIGNALS),
        _std(f"{name}-compression", choice("gzip", "none"), None, variant, group=_SIGNALS),
        _std(f"{name}-timeout", number(0, exclusive_min=True), None, f"{variant[:-1]} (seconds).", group=_SIGNALS),
        _std(f"{name}-protocol", choice("http/protobuf"), None, variant, group=_SIGNALS),
        _std(f"{name}-certificate", path, None, variant, group=_SIGNALS),
        _std(f"{name}-client-key", path, None, variant, group=_SIGNALS),
        _std(f"{name}-client-certificate", path, None, variant, group=_SIGNALS),
    )

OPTIONS: tuple[Option, ...] = (
    # -- identity and resource
    _std("otel-sdk-disabled", boolean, False, "Disable tracing entirely (nothing is instrumented)."),
    _std("otel-service-name", any_text, "unknown_service", "`service.name` of every span."),
    Option("otel-service-version", any_text, None, "`service.version` (no OTel variable exists; "
           "`OTEL_RESOURCE_ATTRIBUTES=service.version=...` works too).", group=_OURS),
    Option("otel-deployment-environment", any_text, None, "`deployment.environment.name` "
           "(semantic conventions 1.27+).", group=_OURS),
    _std("otel-resource-attributes", attributes, {}, "Extra resource attributes, `key=value,...` "
         "(percent-encoded values). Explicit options above win over the same key here."),
    _std("otel-log-level", choice("debug", "info", "warning", "error", "critical"), None,
         "Level of the `otel_uwsgi` and `opentelemetry` loggers (unset: leave logging alone)."),
    # -- tracing behaviour
    _std("otel-traces-exporter", choice("otlp", "console", "none"), "otlp",
         "`otlp` (OTLP/HTTP protobuf), `console` (stdout, for debugging) or `none`."),
    _std("otel-propagators", names(*_PROPAGATORS, special=("none",)), ("tracecontext", "baggage"),
         "Context propagators for incoming/outgoing requests (non-W3C ones need their package)."),
    _std("otel-traces-sampler", _SAMPLERS, "parentbased_always_on", "Sampler."),
    _std("otel-traces-sampler-arg", number(0.0, 1.0), None,
         "Sampling ratio for the `*traceidratio` samplers (default 1.0)."),
    _std("otel-bsp-schedule-delay", at_least(0), 5000, "Milliseconds between two batch exports."),
    _std("otel-bsp-export-timeout", at_least(0), 30000, "Milliseconds (accepted; the SDK does not use it yet)."),
    _std("otel-bsp-max-queue-size", at_least(1), 2048, "Spans queued per worker before the oldest are dropped."),
    _std("otel-bsp-max-export-batch-size", at_least(1), 512,
         "Spans per export request (must not exceed the queue size)."),
    _std("otel-attribute-value-length-limit", at_least(0), None, "Longest attribute value (unset: unlimited)."),
    _std("otel-attribute-count-limit", at_least(0), 128, "Most attributes per span, event or link."),
    _std("otel-span-attribute-value-length-limit", at_least(0), None, "Span-only variant of the above."),
    _std("otel-span-attribute-count-limit", at_least(0), None, "Span-only variant of the above."),
    _std("otel-span-event-count-limit", at_least(0), 128, "Most events per span."),
    _std("otel-span-link-count-limit", at_least(0), 128, "Most links per span."),
    _std("otel-event-attribute-count-limit", at_least(0), None, "Most attributes per event."),
    _std("otel-link-attribute-count-limit", at_least(0), None, "Most attributes per link."),
    # -- OTLP exporter (generic, then traces-specific)
    _std("otel-exporter-otlp-endpoint", url, "http://localhost:4318",
         "Collector base URL; `/v1/traces` (and `/v1/metrics`, `/v1/logs`) is appended.", group=_OTLP),
    _std("otel-exporter-otlp-traces-endpoint", url, None,
         "Full traces URL, used as is (wins over the base URL).", group=_OTLP),
    _std("otel-exporter-otlp-headers", headers, {}, "Request headers `name=value,...` "
         "(percent-encoded). Never logged.", secret=True, group=_OTLP),
    _std("otel-exporter-otlp-traces-headers", headers, None, "Traces-only headers (replace the above).",
         secret=True, group=_OTLP),
    _std("otel-exporter-otlp-compression", choice("gzip", "none"), "gzip",
         "Request body compression (otel-uwsgi defaults to gzip; the SDK to none).", group=_OTLP),
    _std("otel-exporter-otlp-traces-compression", choice("gzip", "none"), None, "Traces-only variant.",
         group=_OTLP),
    _std("otel-exporter-otlp-timeout", number(0, exclusive_min=True), 10.0,
         "Seconds one export may take, retries included (the Python SDK reads this variable "
         "in seconds).", group=_OTLP),
    _std("otel-exporter-otlp-traces-timeout", number(0, exclusive_min=True), None, "Traces-only variant.",
         group=_OTLP),
    _std("otel-exporter-otlp-protocol", choice("http/protobuf"), "http/protobuf",
         "Only OTLP/HTTP protobuf is supported.", group=_OTLP),
    _std("otel-exporter-otlp-traces-protocol", choice("http/protobuf"), None, "Traces-only variant.",
         group=_OTLP),
    _std("otel-exporter-otlp-certificate", path, None, "CA bundle to verify the collector (TLS).",
         group=_OTLP),
    _std("otel-exporter-otlp-traces-certificate", path, None, "Traces-only variant.", group=_OTLP),
    _std("otel-exporter-otlp-client-key", path, None, "Client key for mTLS.", group=_OTLP),
    _std("otel-exporter-otlp-traces-client-key", path, None, "Traces-only variant.", group=_OTLP),
    _std("otel-exporter-otlp-client-certificate", path, None, "Client certificate for mTLS.", group=_OTLP),
    _std("otel-exporter-otlp-traces-client-certificate", path, None, "Traces-only variant.", group=_OTLP),
    # -- ours
    Option("otel-instrumentations", names(special=("auto", "none")), ("auto",),
           "Libraries to instrument at import: `auto` (every installed OpenTelemetry instrumentation, as "
           "`opentelemetry-instrument` finds them, plus mysqlclient and sqlite3), `none`, or a list of "
           "their names (`django,psycopg,redis,requests`); a listed one that is not installed is a "
           "warning naming its package, an unknown name an error listing what is installed.",
           env="OTEL_UWSGI_INSTRUMENTATIONS", group=_OURS),
    _std("otel-python-disabled-instrumentations", names(), None,
         "Instrumentations `auto` leaves out (names as in `otel-instrumentations`).", group=_OURS),
    Option("otel-exit-flush-timeout", at_least(1), 5000,
           "Milliseconds a worker may spend flushing queued spans when it exits; must stay below "
           "uWSGI's `worker-reload-mercy`.", env="OTEL_UWSGI_EXIT_FLUSH_TIMEOUT", group=_OURS),
    Option("otel-span-journal", boolean, True,
           "Write each ended span, encoded, into this process's journal (a file-backed region under "
           "`otel-span-journal-dir`) and ship it from there: spans survive harakiri, SIGKILL, the OOM "
           "killer and segfaults (whoever outlives the process ships them), and the request a worker "
           "died in becomes an ERROR span. `false`: the SDK's in-memory batch queue (lost at any death).",
           env="OTEL_UWSGI_SPAN_JOURNAL", group=_OURS),
    Option("otel-span-journal-dir", path, None,
           "Directory of the span journals (default `/dev/shm/otel-uwsgi`, else the temp directory): "
           "one subdirectory per service and uWSGI instance, one file per process.",
           env="OTEL_UWSGI_SPAN_JOURNAL_DIR", group=_OURS),
    Option("otel-span-journal-size", at_least(64), 4096,
           "KiB of ended spans a process's journal holds before new spans are dropped (and counted); "
           "about 10,000 typical spans in the default 4096.",
           env="OTEL_UWSGI_SPAN_JOURNAL_SIZE", group=_OURS),
    Option("otel-fast-export", boolean, True,
           "Encode spans with otel-uwsgi's direct OTLP protobuf encoder (same bytes as the SDK's, about "
           "5x less CPU; C where built), gzip at `otel-gzip-level`, and post to a plain `http://` "
           "collector through the SDK's urllib3 transport (see How spans are sent); `false` uses the "
           "SDK's exporter unchanged.",
           env="OTEL_UWSGI_FAST_EXPORT", group=_OURS),
    Option("otel-gzip-level", in_range(1, 9), 1,
           "gzip level of export requests with `otel-fast-export` (1: a third of level 9's CPU, ~6% "
           "bigger).",
           env="OTEL_UWSGI_GZIP_LEVEL", group=_OURS),
    Option("otel-lean-spans", boolean, True,
           "Start and end spans (the stock instrumentations' too) with otel-uwsgi's lean code instead of "
           "the SDK's `Tracer.start_span`: the same SDK span objects and exported data for less CPU; "
           "it steps aside for custom samplers, links and value-length limits. `false`: the SDK's code.",
           env="OTEL_UWSGI_LEAN_SPANS", group=_OURS),
    Option("otel-fast-instrumentation", boolean, True,
           "Trace Django and the database drivers it uses with otel-uwsgi's fast path (the same spans "
           "as the stock instrumentations, about half the CPU) wherever it is proven equal with what is "
           "installed; elsewhere the stock instrumentation traces and one info line says why "
           "(docs/FAST_PATH.md). `false`: always the stock instrumentations.",
           env="OTEL_UWSGI_FAST_INSTRUMENTATION", group=_OURS),
    # -- pass-through to instrumentations (read by them from os.environ)
    _std("otel-python-excluded-urls", any_text, None, "URLs (regexes, comma-separated) not traced.",
         group=_PASS, passthrough=True),
    _std("otel-python-django-excluded-urls", any_text, None, "Django-only variant of the above.",
         group=_PASS, passthrough=True),
    _std("otel-python-django-traced-request-attrs", any_text, None,
         "Django request attributes recorded on the server span.", group=_PASS, passthrough=True),
    _std("otel-instrumentation-http-capture-headers-server-request", any_text, None,
         "Request headers recorded on server spans.", group=_PASS, passthrough=True),
    _std("otel-instrumentation-http-capture-headers-server-response", any_text, None,
         "Response headers recorded on server spans.", group=_PASS, passthrough=True),
    _std("otel-instrumentation-http-capture-headers-sanitize-fields", any_text, None,
         "Captured headers whose values are redacted.", group=_PASS, passthrough=True),
    _std("otel-semconv-stability-opt-in", any_text, None,
         "Semantic-convention mode of the instrumentations (e.g. `http`).", group=_PASS, passthrough=True),
    # -- metrics and logs (built per worker after fork, like the tracer; see otel_uwsgi.runtime.metrics_and_logs)
    _std("otel-metrics-exporter", choice("otlp", "console", "none"), "none",
         "Per-worker metrics (the instrumentations' HTTP server metrics, span delivery counts) and "
         "uWSGI server metrics: `otlp`, `console` or `none` (otel-uwsgi defaults to none; the SDK to otlp).",
         group=_SIGNALS),
    _std("otel-metric-export-interval", at_least(100), 60000, "Milliseconds between two metric exports.",
         group=_SIGNALS),
    _std("otel-metric-export-timeout", at_least(1), 30000, "Milliseconds one metric export may take.",
         group=_SIGNALS),
    _std("otel-metrics-exemplar-filter", choice("trace_based", "always_on", "always_off"), "trace_based",
         "Which measurements may carry an exemplar (a trace id on a histogram point).", group=_SIGNALS),
    *_signal_exporter_options("metrics"),
    _std("otel-exporter-otlp-metrics-temporality-preference", choice("cumulative", "delta", "lowmemory"),
         "cumulative", "Temporality of exported sums and histograms.", group=_SIGNALS),
    _std("otel-exporter-otlp-metrics-default-histogram-aggregation",
         choice("explicit_bucket_histogram", "base2_exponential_bucket_histogram"), "explicit_bucket_histogram",
         "Aggregation of histograms.", group=_SIGNALS),
    Option("otel-uwsgi-server-metrics", boolean, True,
           "With metrics on, export uWSGI's own health (`uwsgi.*`: worker status, requests, respawns, "
           "harakiri, memory, listen queue) once per uWSGI instance, from worker 1.",
           env="OTEL_UWSGI_SERVER_METRICS", group=_SIGNALS),
    _std("otel-logs-exporter", choice("otlp", "console", "none"), "none",
         "Python log records per worker over OTLP, with their trace context: `otlp`, `console` or `none` "
         "(otel-uwsgi defaults to none: uWSGI's log already has them; the SDK to otlp).", group=_SIGNALS),
    *_signal_exporter_options("logs"),
    _std("otel-blrp-schedule-delay", at_least(0), 1000, "Milliseconds between two log record exports.",
         group=_SIGNALS),
    _std("otel-blrp-max-queue-size", at_least(1), 2048,
         "Log records queued per worker before new ones are dropped (batches are at most 512, and at "
         "most this).", group=_SIGNALS),
    _std("otel-python-log-correlation", boolean, False,
         "Set the root logger's format to `otel-python-log-format` (trace and span ids in every line, "
         "as the logging instrumentation does). The ids are on every log record either way: "
         "`%(otelTraceID)s`, `%(otelSpanID)s`, `%(otelTraceSampled)s`, `%(otelServiceName)s`.",
         group=_SIGNALS),
    _std("otel-python-log-format", any_text, None,
         "Format for `otel-python-log-correlation` (unset: the logging instrumentation's, with "
         "trace_id, span_id, service name and sampled flag).", group=_SIGNALS),
    _std("otel-python-log-level", choice("debug", "info", "warning", "error", "critical"), None,
         "Root logger level, e.g. `info` to export INFO records with `otel-logs-exporter` (unset: leave "
         "it to the app).", group=_SIGNALS),
)

#: Every option by its ini key.
BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}


