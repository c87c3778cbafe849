"""Every option otel-uwsgi understands, declared once, and the pure loader.

Each option has a uWSGI ini key (``otel-service-name``) and, for the standard ones, the
OpenTelemetry environment variable of the same name (``OTEL_SERVICE_NAME``).  Precedence is
*uwsgi option > environment variable > default*.  What the user wrote in ``uwsgi.ini`` is held
strictly (:class:`ConfigError`, which stops uWSGI); what the shared environment says is treated
as the OpenTelemetry specification asks: one warning line, then the value is ignored.

Nothing here imports uWSGI or the SDK, so it is unit-testable and the README's option table is
generated from :data:`OPTIONS`.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Optional
from urllib.parse import unquote, urlsplit

PREFIX = "otel-"

#: Where a value came from, most important first.
SOURCES = ("uwsgi", "env", "default")


class ConfigError(ValueError):
    """A value the user wrote for us in uwsgi.ini is wrong: startup must stop."""


class _Invalid(ValueError):
    """Raised by a parser; the message says what is accepted."""


# --------------------------------------------------------------------------- parsers
# Each parser takes the text value and returns the Python value or raises _Invalid whose
# message completes the sentence "accepted: ...".


def _str(text: str) -> str:
    return text


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise _Invalid("true or false")


def _int(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise _Invalid(f"a whole number >= {minimum}") from None
        if value < minimum:
            raise _Invalid(f"a whole number >= {minimum}")
        return value

    return parse


def _int_range(minimum: int, maximum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise _Invalid(f"a whole number from {minimum} to {maximum}") from None
        if not minimum <= value <= maximum:
            raise _Invalid(f"a whole number from {minimum} to {maximum}")
        return value

    return parse


def _number(minimum: float, maximum: float = math.inf, *, exclusive_min: bool = False) -> Callable[[str], float]:
    bound = f"> {minimum:g}" if exclusive_min else f">= {minimum:g}"
    accepted = f"a number {bound}" + (f" and <= {maximum:g}" if maximum != math.inf else "")

    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise _Invalid(accepted) from None
        if math.isnan(value) or value > maximum or value < minimum or (exclusive_min and value == minimum):
            raise _Invalid(accepted)
        return value

    return parse


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        lowered = text.strip().lower()
        if lowered not in choices:
            raise _Invalid(", ".join(choices))
        return lowered

    parse.choices = choices  # type: ignore[attr-defined]
    return parse


def _url(text: str) -> str:
    stripped = text.strip()
    parts = urlsplit(stripped)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _Invalid("an http:// or https:// URL, e.g. http://localhost:4318")
    return stripped


def _pairs(text: str, what: str) -> dict[str, str]:
    """Parse the OpenTelemetry ``key=value,key2=value2`` list (values percent-encoded)."""
    result: dict[str, str] = {}
    for entry in text.split(","):
        if not entry.strip():
            continue
        key, sep, value = entry.partition("=")
        key = unquote(key.strip())
        if not sep or not key:
            raise _Invalid(f"a comma-separated list of {what}=value pairs, values percent-encoded")
        result[key] = unquote(value.strip())
    return result


def _headers(text: str) -> dict[str, str]:
    pairs = _pairs(text, "header")
    for key, value in pairs.items():
        if not (key.isascii() and key.replace("-", "").replace("_", "").isalnum()):
            raise _Invalid("a comma-separated list of header=value pairs; header names are letters, digits, - and _")
        # A control character (a percent-encoded newline...) or a character HTTP cannot carry
        # would make every export fail later; say so now.
        if any(ord(c) < 0x20 and c != "\t" or 0x7F <= ord(c) <= 0x9F or ord(c) > 0xFF for c in value):
            raise _Invalid(
                "a comma-separated list of header=value pairs; header values are printable text without "
                "control characters"
            )
    return {key.lower(): value for key, value in pairs.items()}


def _attributes(text: str) -> dict[str, str]:
    return _pairs(text, "key")


def _names(*choices: str, special: Iterable[str] = ()) -> Callable[[str], tuple[str, ...]]:
    specials = tuple(special)

    def parse(text: str) -> tuple[str, ...]:
        names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
        accepted = "a comma-separated list of " + ", ".join(choices) + (
            " (or " + " / ".join(specials) + " alone)" if specials else ""
        )
        if not names:
            raise _Invalid(accepted)
        for name in names:
            if name in specials:
                if len(names) > 1:
                    raise _Invalid(accepted)
            elif choices and name not in choices:
                raise _Invalid(accepted)
        return names

    parse.choices = choices + specials  # type: ignore[attr-defined]
    return parse


def _path(text: str) -> str:
    return text.strip()


def _mask(option: Option, text: str) -> str:
    """Show a value in a message; secrets keep only their shape."""
    if not option.secret:
        return repr(text)
    masked = []
    for entry in text.split(","):
        key, sep, _ = entry.partition("=")
        masked.append(f"{key.strip()}=***" if sep else "***")
    return repr(",".join(masked))


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
    def env_var(self) -> Optional[str]:
        return self.env

    @property
    def accepted(self) -> str:
        try:
            self.parse("\x00invalid\x00")
        except _Invalid as exc:
            return str(exc)
        return "any text"


def _std(name: str, parse: Callable[[str], Any], default: Any, help: str, **kw: Any) -> Option:
    """A standard OpenTelemetry variable: the env var is the ini key upper-cased."""
    return Option(name, parse, default, help, env=name.upper().replace("-", "_"), **kw)


_SAMPLERS = _choice(
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
_PROPAGATORS = ("tracecontext", "baggage", "b3", "b3multi", "jaeger", "xray", "ottrace")
INSTRUMENTATIONS = ("django", "mysql", "sqlite3")
_OTLP = "OTLP exporter"
_OURS = "otel-uwsgi"
_PASS = "Instrumentation (passed to the instrumentations as environment variables)"
_SIGNALS = "Metrics and logs"


def _signal_exporter_options(signal: str) -> tuple[Option, ...]:
    """The OTLP exporter options of one more signal (``metrics``, ``logs``), twins of the generic ones."""
    name = f"otel-exporter-otlp-{signal}"
    variant = f"{signal.capitalize()}-only variant."
    return (
        _std(f"{name}-endpoint", _url, None,
             f"Full {signal} URL, used as is (else the base URL plus `/v1/{signal}`).", group=_SIGNALS),
        _std(f"{name}-headers", _headers, None, f"{signal.capitalize()}-only headers (replace the generic ones). "
             "Never logged.", secret=True, group=_SIGNALS),
        _std(f"{name}-compression", _choice("gzip", "none"), None, variant, group=_SIGNALS),
        _std(f"{name}-timeout", _number(0, exclusive_min=True), None, f"{variant[:-1]} (seconds).", group=_SIGNALS),
        _std(f"{name}-protocol", _choice("http/protobuf"), None, variant, group=_SIGNALS),
        _std(f"{name}-certificate", _path, None, variant, group=_SIGNALS),
        _std(f"{name}-client-key", _path, None, variant, group=_SIGNALS),
        _std(f"{name}-client-certificate", _path, None, variant, group=_SIGNALS),
    )

OPTIONS: tuple[Option, ...] = (
    # -- identity and resource
    _std("otel-sdk-disabled", _bool, False, "Disable tracing entirely (nothing is instrumented)."),
    _std("otel-service-name", _str, "unknown_service", "`service.name` of every span."),
    Option("otel-service-version", _str, None, "`service.version` (no OTel variable exists; "
           "`OTEL_RESOURCE_ATTRIBUTES=service.version=...` works too).", group=_OURS),
    Option("otel-deployment-environment", _str, None, "`deployment.environment.name` "
           "(semantic conventions 1.27+).", group=_OURS),
    _std("otel-resource-attributes", _attributes, {}, "Extra resource attributes, `key=value,...` "
         "(percent-encoded values). Explicit options above win over the same key here."),
    _std("otel-log-level", _choice("debug", "info", "warning", "error", "critical"), None,
         "Level of the `otel_uwsgi` and `opentelemetry` loggers (unset: leave logging alone)."),
    # -- tracing behaviour
    _std("otel-traces-exporter", _choice("otlp", "console", "none"), "otlp",
         "`otlp` (OTLP/HTTP protobuf), `console` (stdout, for debugging) or `none`."),
    _std("otel-propagators", _names(*_PROPAGATORS, special=("none",)), ("tracecontext", "baggage"),
         "Context propagators for incoming/outgoing requests (non-W3C ones need their package)."),
    _std("otel-traces-sampler", _SAMPLERS, "parentbased_always_on", "Sampler."),
    _std("otel-traces-sampler-arg", _number(0.0, 1.0), None,
         "Sampling ratio for the `*traceidratio` samplers (default 1.0)."),
    _std("otel-bsp-schedule-delay", _int(0), 5000, "Milliseconds between two batch exports."),
    _std("otel-bsp-export-timeout", _int(0), 30000, "Milliseconds (accepted; the SDK does not use it yet)."),
    _std("otel-bsp-max-queue-size", _int(1), 2048, "Spans queued per worker before the oldest are dropped."),
    _std("otel-bsp-max-export-batch-size", _int(1), 512,
         "Spans per export request (must not exceed the queue size)."),
    _std("otel-attribute-value-length-limit", _int(0), None, "Longest attribute value (unset: unlimited)."),
    _std("otel-attribute-count-limit", _int(0), 128, "Most attributes per span, event or link."),
    _std("otel-span-attribute-value-length-limit", _int(0), None, "Span-only variant of the above."),
    _std("otel-span-attribute-count-limit", _int(0), None, "Span-only variant of the above."),
    _std("otel-span-event-count-limit", _int(0), 128, "Most events per span."),
    _std("otel-span-link-count-limit", _int(0), 128, "Most links per span."),
    _std("otel-event-attribute-count-limit", _int(0), None, "Most attributes per event."),
    _std("otel-link-attribute-count-limit", _int(0), None, "Most attributes per link."),
    # -- OTLP exporter (generic, then traces-specific)
    _std("otel-exporter-otlp-endpoint", _url, "http://localhost:4318",
         "Collector base URL; `/v1/traces` (and `/v1/metrics`, `/v1/logs`) is appended.", group=_OTLP),
    _std("otel-exporter-otlp-traces-endpoint", _url, None,
         "Full traces URL, used as is (wins over the base URL).", group=_OTLP),
    _std("otel-exporter-otlp-headers", _headers, {}, "Request headers `name=value,...` "
         "(percent-encoded). Never logged.", secret=True, group=_OTLP),
    _std("otel-exporter-otlp-traces-headers", _headers, None, "Traces-only headers (replace the above).",
         secret=True, group=_OTLP),
    _std("otel-exporter-otlp-compression", _choice("gzip", "none"), "gzip",
         "Request body compression (otel-uwsgi defaults to gzip; the SDK to none).", group=_OTLP),
    _std("otel-exporter-otlp-traces-compression", _choice("gzip", "none"), None, "Traces-only variant.",
         group=_OTLP),
    _std("otel-exporter-otlp-timeout", _number(0, exclusive_min=True), 10.0,
         "Seconds one export may take, retries included (the Python SDK reads this variable "
         "in seconds).", group=_OTLP),
    _std("otel-exporter-otlp-traces-timeout", _number(0, exclusive_min=True), None, "Traces-only variant.",
         group=_OTLP),
    _std("otel-exporter-otlp-protocol", _choice("http/protobuf"), "http/protobuf",
         "Only OTLP/HTTP protobuf is supported.", group=_OTLP),
    _std("otel-exporter-otlp-traces-protocol", _choice("http/protobuf"), None, "Traces-only variant.",
         group=_OTLP),
    _std("otel-exporter-otlp-certificate", _path, None, "CA bundle to verify the collector (TLS).",
         group=_OTLP),
    _std("otel-exporter-otlp-traces-certificate", _path, None, "Traces-only variant.", group=_OTLP),
    _std("otel-exporter-otlp-client-key", _path, None, "Client key for mTLS.", group=_OTLP),
    _std("otel-exporter-otlp-traces-client-key", _path, None, "Traces-only variant.", group=_OTLP),
    _std("otel-exporter-otlp-client-certificate", _path, None, "Client certificate for mTLS.", group=_OTLP),
    _std("otel-exporter-otlp-traces-client-certificate", _path, None, "Traces-only variant.", group=_OTLP),
    # -- ours
    Option("otel-instrumentations", _names(*INSTRUMENTATIONS, special=("auto", "none")), ("auto",),
           "Libraries to instrument at import: `auto` (each of django, mysql (mysqlclient), sqlite3 "
           "that is installed), `none`, or a list; a listed library that is missing is a warning.",
           env="OTEL_UWSGI_INSTRUMENTATIONS", group=_OURS),
    Option("otel-exit-flush-timeout", _int(1), 5000,
           "Milliseconds a worker may spend flushing queued spans when it exits; must stay below "
           "uWSGI's `worker-reload-mercy`.", env="OTEL_UWSGI_EXIT_FLUSH_TIMEOUT", group=_OURS),
    Option("otel-fast-export", _bool, True,
           "Encode spans with otel-uwsgi's direct OTLP protobuf encoder (same bytes as the SDK's, about "
           "5x less CPU; C where built), gzip at `otel-gzip-level`, and post to a plain `http://` "
           "collector through the SDK's urllib3 transport (see How spans are sent); `false` uses the "
           "SDK's exporter unchanged.",
           env="OTEL_UWSGI_FAST_EXPORT", group=_OURS),
    Option("otel-gzip-level", _int_range(1, 9), 1,
           "gzip level of export requests with `otel-fast-export` (1: a third of level 9's CPU, ~6% "
           "bigger).", env="OTEL_UWSGI_GZIP_LEVEL", group=_OURS),
    Option("otel-lean-spans", _bool, True,
           "Start and end spans (the stock instrumentations' too) with otel-uwsgi's lean code instead of "
           "the SDK's `Tracer.start_span`: the same SDK span objects and exported data for less CPU; "
           "it steps aside for custom samplers, links and value-length limits. `false`: the SDK's code.",
           env="OTEL_UWSGI_LEAN_SPANS", group=_OURS),
    Option("otel-fast-instrumentation", _bool, False,
           "Trace Django and its database queries with otel-uwsgi's lean middleware and "
           "`connection.execute_wrapper` instead of the stock instrumentations (same spans, less CPU; "
           "see README for what it does not cover).", env="OTEL_UWSGI_FAST_INSTRUMENTATION", group=_OURS),
    # -- pass-through to instrumentations (read by them from os.environ)
    _std("otel-python-excluded-urls", _str, None, "URLs (regexes, comma-separated) not traced.",
         group=_PASS, passthrough=True),
    _std("otel-python-django-excluded-urls", _str, None, "Django-only variant of the above.",
         group=_PASS, passthrough=True),
    _std("otel-python-django-traced-request-attrs", _str, None,
         "Django request attributes recorded on the server span.", group=_PASS, passthrough=True),
    _std("otel-instrumentation-http-capture-headers-server-request", _str, None,
         "Request headers recorded on server spans.", group=_PASS, passthrough=True),
    _std("otel-instrumentation-http-capture-headers-server-response", _str, None,
         "Response headers recorded on server spans.", group=_PASS, passthrough=True),
    _std("otel-instrumentation-http-capture-headers-sanitize-fields", _str, None,
         "Captured headers whose values are redacted.", group=_PASS, passthrough=True),
    _std("otel-semconv-stability-opt-in", _str, None,
         "Semantic-convention mode of the instrumentations (e.g. `http`).", group=_PASS, passthrough=True),
    # -- metrics and logs (built per worker after fork, like the tracer; see otel_uwsgi.signals)
    _std("otel-metrics-exporter", _choice("otlp", "console", "none"), "none",
         "Per-worker metrics (the instrumentations' HTTP server metrics, span delivery counts) and "
         "uWSGI server metrics: `otlp`, `console` or `none` (otel-uwsgi defaults to none; the SDK to otlp).",
         group=_SIGNALS),
    _std("otel-metric-export-interval", _int(100), 60000, "Milliseconds between two metric exports.",
         group=_SIGNALS),
    _std("otel-metric-export-timeout", _int(1), 30000, "Milliseconds one metric export may take.",
         group=_SIGNALS),
    _std("otel-metrics-exemplar-filter", _choice("trace_based", "always_on", "always_off"), "trace_based",
         "Which measurements may carry an exemplar (a trace id on a histogram point).", group=_SIGNALS),
    *_signal_exporter_options("metrics"),
    _std("otel-exporter-otlp-metrics-temporality-preference", _choice("cumulative", "delta", "lowmemory"),
         "cumulative", "Temporality of exported sums and histograms.", group=_SIGNALS),
    _std("otel-exporter-otlp-metrics-default-histogram-aggregation",
         _choice("explicit_bucket_histogram", "base2_exponential_bucket_histogram"), "explicit_bucket_histogram",
         "Aggregation of histograms.", group=_SIGNALS),
    Option("otel-uwsgi-server-metrics", _bool, True,
           "With metrics on, export uWSGI's own health (`uwsgi.*`: worker status, requests, respawns, "
           "harakiri, memory, listen queue) once per uWSGI instance, from worker 1.",
           env="OTEL_UWSGI_SERVER_METRICS", group=_SIGNALS),
    _std("otel-logs-exporter", _choice("otlp", "console", "none"), "none",
         "Python log records per worker over OTLP, with their trace context: `otlp`, `console` or `none` "
         "(otel-uwsgi defaults to none: uWSGI's log already has them; the SDK to otlp).", group=_SIGNALS),
    *_signal_exporter_options("logs"),
    _std("otel-blrp-schedule-delay", _int(0), 1000, "Milliseconds between two log record exports.",
         group=_SIGNALS),
    _std("otel-blrp-max-queue-size", _int(1), 2048,
         "Log records queued per worker before new ones are dropped (batches are at most 512, and at "
         "most this).", group=_SIGNALS),
    _std("otel-python-log-correlation", _bool, False,
         "Set the root logger's format to `otel-python-log-format` (trace and span ids in every line, "
         "as the logging instrumentation does). The ids are on every log record either way: "
         "`%(otelTraceID)s`, `%(otelSpanID)s`, `%(otelTraceSampled)s`, `%(otelServiceName)s`.",
         group=_SIGNALS),
    _std("otel-python-log-format", _str, None,
         "Format for `otel-python-log-correlation` (unset: the logging instrumentation's, with "
         "trace_id, span_id, service name and sampled flag).", group=_SIGNALS),
    _std("otel-python-log-level", _choice("debug", "info", "warning", "error", "critical"), None,
         "Root logger level, e.g. `info` to export INFO records with `otel-logs-exporter` (unset: leave "
         "it to the app).", group=_SIGNALS),
)

BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}


# --------------------------------------------------------------------------- loading


@dataclass
class Settings:
    """Resolved values plus where each came from (``uwsgi``, ``env`` or ``default``)."""

    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def source(self, name: str) -> str:
        return self.sources[name]

    def pick(self, specific: str, generic: str) -> tuple[str, Any]:
        """A signal-specific option and its generic twin: which one applies, and its value.

        The user's ini beats the environment, then the specific beats the generic, as the SDK
        does for ``OTEL_EXPORTER_OTLP_TRACES_*`` over ``OTEL_EXPORTER_OTLP_*``.
        """
        ranked = sorted((SOURCES.index(self.sources[n]), i, n) for i, n in enumerate((specific, generic)))
        for _, _, name in ranked:
            if self.values[name] is not None:
                return name, self.values[name]
        return generic, None


def _text(value: Any) -> Optional[str]:
    """Normalise a uwsgi.opt value: bytes, str, True for a bare flag, list for a repeated key."""
    if isinstance(value, (list, tuple)):
        # Some uWSGI versions give a repeated key as a list; 2.0.x keeps only the last value.
        # Behave the same everywhere: the last one wins.
        value = value[-1] if value else b""
    if value is True:
        return "true"
    if isinstance(value, bytes):
        value = value.decode("utf-8")  # UnicodeDecodeError handled by the caller
    if value is None:
        return None
    return str(value)


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def suggest(name: str) -> Optional[str]:
    """The closest known option name, for 'did you mean' hints."""
    matches = difflib.get_close_matches(name, list(BY_NAME), n=1, cutoff=0.6)
    return matches[0] if matches else None


def load(
    opt: Mapping[str, Any],
    environ: Mapping[str, str],
    *,
    where: str = "uwsgi.ini",
) -> Settings:
    """Resolve every option from ``uwsgi.opt`` and the environment.

    Raises :class:`ConfigError` (one line, secrets masked) for an unknown or invalid ``otel-*``
    uWSGI option; an invalid environment variable adds a line to ``Settings.warnings`` and is
    ignored.
    """
    settings = Settings()
    for key in opt:
        name = key.decode() if isinstance(key, bytes) else str(key)
        if name.startswith(PREFIX) and name not in BY_NAME:
            hint = suggest(name)
            shown = name if name.isprintable() else repr(name)
            raise ConfigError(
                f"otel-uwsgi: unknown option {shown} in {where}"
                + (f"; did you mean {hint}?" if hint else "; see the option table in otel-uwsgi's README")
            )
    for option in OPTIONS:
        settings.values[option.name] = option.default
        settings.sources[option.name] = "default"
        if option.name in opt:
            try:
                text = _text(opt[option.name])
            except UnicodeDecodeError:
                raise ConfigError(
                    f"otel-uwsgi: invalid value for {option.name} in {where}: not valid UTF-8; "
                    f"accepted: {option.accepted}"
                ) from None
            if text is not None and text.strip():
                try:
                    settings.values[option.name] = option.parse(text)
                except _Invalid as exc:
                    raise ConfigError(
                        f"otel-uwsgi: invalid value for {option.name} in {where}: "
                        f"{_mask(option, text)}; accepted: {exc}"
                    ) from None
                settings.sources[option.name] = "uwsgi"
                continue
        if option.env and environ.get(option.env, "").strip():
            raw = environ[option.env]
            if not _is_utf8(raw):
                # Python hands non-UTF-8 bytes over as surrogates, which no exporter can encode:
                # accepted, every span of the process would fail to export.
                settings.warnings.append(
                    f"otel-uwsgi: ignoring invalid environment variable {option.env}: not valid UTF-8; "
                    f"accepted: {option.accepted}"
                )
                continue
            try:
                settings.values[option.name] = option.parse(raw)
                settings.sources[option.name] = "env"
            except _Invalid as exc:
                settings.warnings.append(
                    f"otel-uwsgi: ignoring invalid environment variable {option.env}="
                    f"{_mask(option, raw)}; accepted: {exc}"
                )
    _cross_check(settings, where)
    return settings


def _cross_check(settings: Settings, where: str) -> None:
    """Checks that involve two options."""
    queue = settings["otel-bsp-max-queue-size"]
    batch = settings["otel-bsp-max-export-batch-size"]
    if batch > queue:
        message = (
            f"otel-uwsgi: otel-bsp-max-export-batch-size ({batch}) is larger than "
            f"otel-bsp-max-queue-size ({queue}); accepted: a batch size <= the queue size"
        )
        if "uwsgi" in (settings.source("otel-bsp-max-queue-size"), settings.source("otel-bsp-max-export-batch-size")):
            raise ConfigError(message + f" (in {where})")
        settings.warnings.append(message + "; using the queue size as the batch size")
        settings.values["otel-bsp-max-export-batch-size"] = queue
