"""Resolving the options: ``uwsgi.opt`` > environment variable > default, validated.

What the user wrote in ``uwsgi.ini`` is held strictly (:class:`ConfigError`, which stops uWSGI);
what the shared environment says is treated as the OpenTelemetry specification asks: one warning
line, then the value is ignored.  :func:`load` is pure (no uWSGI, no SDK) and records where each
value came from.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

from otel_uwsgi.config.options import BY_NAME, OPTIONS, Option
from otel_uwsgi.config.parsers import Invalid
from otel_uwsgi.config.uwsgi_opt import text as opt_text

PREFIX = "otel-"

#: Where a value came from, most important first.
SOURCES = ("uwsgi", "env", "default")


class ConfigError(ValueError):
    """A value the user wrote for us in uwsgi.ini is wrong: startup must stop."""


def _mask(option: Option, text: str) -> str:
    """Show a value in a message; secrets keep only their shape."""
    if not option.secret:
        return repr(text)
    masked = []
    for entry in text.split(","):
        key, sep, _ = entry.partition("=")
        masked.append(f"{key.strip()}=***" if sep else "***")
    return repr(",".join(masked))




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
    _reject_unknown(opt, where)
    settings = Settings()
    for option in OPTIONS:
        settings.values[option.name] = option.default
        settings.sources[option.name] = "default"
        if not _take_from_uwsgi(settings, option, opt, where):
            _take_from_env(settings, option, environ)
    _cross_check(settings, where)
    return settings


def _reject_unknown(opt: Mapping[str, Any], where: str) -> None:
    """An ``otel-*`` key in the ini that no option declares stops startup, with a 'did you mean'."""
    for key in opt:
        name = key.decode() if isinstance(key, bytes) else str(key)
        if name.startswith(PREFIX) and name not in BY_NAME:
            hint = suggest(name)
            shown = name if name.isprintable() else repr(name)
            raise ConfigError(
                f"otel-uwsgi: unknown option {shown} in {where}"
                + (f"; did you mean {hint}?" if hint else "; see the option table in otel-uwsgi's docs/OPTIONS.md")
            )


def _take_from_uwsgi(settings: Settings, option: Option, opt: Mapping[str, Any], where: str) -> bool:
    """The ini's value of ``option``, held strictly; False when the ini leaves it unset or blank."""
    if option.name not in opt:
        return False
    try:
        text = opt_text(opt[option.name])
    except UnicodeDecodeError:
        raise ConfigError(
            f"otel-uwsgi: invalid value for {option.name} in {where}: not valid UTF-8; accepted: {option.accepted}"
        ) from None
    if text is None or not text.strip():
        return False
    try:
        settings.values[option.name] = option.parse(text)
    except Invalid as exc:
        raise ConfigError(
            f"otel-uwsgi: invalid value for {option.name} in {where}: {_mask(option, text)}; accepted: {exc}"
        ) from None
    settings.sources[option.name] = "uwsgi"
    return True


def _take_from_env(settings: Settings, option: Option, environ: Mapping[str, str]) -> None:
    """The environment's value of ``option``; an invalid one is a warning and leaves the default."""
    if not option.env or not environ.get(option.env, "").strip():
        return
    raw = environ[option.env]
    if not _is_utf8(raw):
        # Python hands non-UTF-8 bytes over as surrogates, which no exporter can encode:
        # accepted, every span of the process would fail to export.
        settings.warnings.append(
            f"otel-uwsgi: ignoring invalid environment variable {option.env}: not valid UTF-8; "
            f"accepted: {option.accepted}"
        )
        return
    try:
        settings.values[option.name] = option.parse(raw)
        settings.sources[option.name] = "env"
    except Invalid as exc:
        settings.warnings.append(
            f"otel-uwsgi: ignoring invalid environment variable {option.env}={_mask(option, raw)}; accepted: {exc}"
        )


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
