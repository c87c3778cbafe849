"""Value parsers of the options: text in, a Python value out, or :class:`Invalid`.

Each parser's :class:`Invalid` message completes the sentence "accepted: ...", so every error
names what would have been accepted.  Pure functions: no uWSGI, no SDK.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from urllib.parse import unquote, urlsplit


class Invalid(ValueError):
    """Raised by a parser; the message says what is accepted."""



def any_text(text: str) -> str:
    return text


def boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise Invalid("true or false")


def at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise Invalid(f"a whole number >= {minimum}") from None
        if value < minimum:
            raise Invalid(f"a whole number >= {minimum}")
        return value

    return parse


def in_range(minimum: int, maximum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise Invalid(f"a whole number from {minimum} to {maximum}") from None
        if not minimum <= value <= maximum:
            raise Invalid(f"a whole number from {minimum} to {maximum}")
        return value

    return parse


def number(minimum: float, maximum: float = math.inf, *, exclusive_min: bool = False) -> Callable[[str], float]:
    bound = f"> {minimum:g}" if exclusive_min else f">= {minimum:g}"
    accepted = f"a number {bound}" + (f" and <= {maximum:g}" if maximum != math.inf else "")

    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise Invalid(accepted) from None
        if math.isnan(value) or value > maximum or value < minimum or (exclusive_min and value == minimum):
            raise Invalid(accepted)
        return value

    return parse


def choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        lowered = text.strip().lower()
        if lowered not in choices:
            raise Invalid(", ".join(choices))
        return lowered

    parse.choices = choices  # type: ignore[attr-defined]
    return parse


def url(text: str) -> str:
    stripped = text.strip()
    parts = urlsplit(stripped)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid("an http:// or https:// URL, e.g. http://localhost:4318")
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
            raise Invalid(f"a comma-separated list of {what}=value pairs, values percent-encoded")
        result[key] = unquote(value.strip())
    return result


def headers(text: str) -> dict[str, str]:
    pairs = _pairs(text, "header")
    for key, value in pairs.items():
        if not (key.isascii() and key.replace("-", "").replace("_", "").isalnum()):
            raise Invalid("a comma-separated list of header=value pairs; header names are letters, digits, - and _")
        # A control character (a percent-encoded newline...) or a character HTTP cannot carry
        # would make every export fail later; say so now.
        if any(ord(c) < 0x20 and c != "\t" or 0x7F <= ord(c) <= 0x9F or ord(c) > 0xFF for c in value):
            raise Invalid(
                "a comma-separated list of header=value pairs; header values are printable text without "
                "control characters"
            )
    return {key.lower(): value for key, value in pairs.items()}


def attributes(text: str) -> dict[str, str]:
    return _pairs(text, "key")


_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")


def names(*choices: str, special: Iterable[str] = ()) -> Callable[[str], tuple[str, ...]]:
    specials = tuple(special)

    def parse(text: str) -> tuple[str, ...]:
        names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
        accepted = "a comma-separated list of " + (", ".join(choices) if choices else "names") + (
            " (or " + " / ".join(specials) + " alone)" if specials else ""
        )
        if not names:
            raise Invalid(accepted)
        for name in names:
            if name in specials:
                if len(names) > 1:
                    raise Invalid(accepted)
            elif choices and name not in choices or not _NAME.fullmatch(name):
                raise Invalid(accepted)
        return names

    parse.choices = choices + specials  # type: ignore[attr-defined]
    return parse


def path(text: str) -> str:
    return text.strip()
