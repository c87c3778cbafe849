"""Reading ``uwsgi.opt`` values, written once for the option loader and the uWSGI checks.

uWSGI hands options over with ``str`` keys and ``bytes`` values, ``True`` for a bare flag on the
command line, and on some versions a list for a key repeated in the ini (2.0.x keeps only the
last value).  Everything here behaves the same on all of them: the last value wins.  An ini file
read with :mod:`.uwsgi_ini` has the same shape, so the tools read it with these rules too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

#: The spellings uWSGI itself takes as "on" for a boolean option (an empty value included).
_ON = ("", "true", "1", "yes", "on")


def text(value: Any, *, errors: str = "strict") -> Optional[str]:
    """A ``uwsgi.opt`` value as text: the last of a repeated key, bytes decoded as UTF-8
    (``errors="strict"`` raises :class:`UnicodeDecodeError`), a bare flag ``"true"``; None when
    there is no value."""
    if isinstance(value, (list, tuple)):
        value = value[-1] if value else None
    if value is True:
        return "true"
    if isinstance(value, bytes):
        return value.decode("utf-8", errors)
    return None if value is None else str(value)


def flag(opt: Mapping[str, Any], key: str) -> bool:
    """Whether a boolean uWSGI option is on (absent: off)."""
    value = text(opt.get(key), errors="replace")
    return value is not None and value.strip().lower() in _ON


def integer(opt: Mapping[str, Any], key: str, default: int) -> int:
    """A whole-number uWSGI option, or ``default`` when it is absent or not a number."""
    value = text(opt.get(key), errors="replace")
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def first_text(opt: Mapping[str, Any], *keys: str) -> Optional[str]:
    """The first of ``keys`` that has a text value (a bare flag does not count)."""
    for key in keys:
        raw = opt.get(key)
        value = None if raw is True else text(raw, errors="replace")
        if value is not None:
            return value
    return None


def sigterm_reloads(opt: Mapping[str, Any], version: Optional[tuple[int, ...]] = None) -> bool:
    """Whether SIGTERM makes this uWSGI reload instead of stopping (what ``docker stop`` sends):
    uWSGI 2.0 reloads unless ``die-on-term`` is on; 2.1 stops by default.  ``version`` None (not
    known, as in ``otel-uwsgi check`` before uWSGI runs) is taken as 2.0."""
    return not flag(opt, "die-on-term") and (version is None or version[:2] < (2, 1))


def config_file(opt: Mapping[str, Any]) -> str:
    """Name the configuration for messages: the ini (or yaml, json, xml) file when there is one."""
    return first_text(opt, "ini", "yaml", "json", "xml") or "the uWSGI options"
