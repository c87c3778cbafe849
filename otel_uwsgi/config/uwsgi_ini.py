"""Reading a uWSGI ini file, written once for ``otel-uwsgi check``, its harness and its verdicts.

Only the ``[uwsgi]`` section counts (the one ``uwsgi --ini FILE`` reads); blank lines and
comments (``;`` or ``#``) are skipped; a repeated key is kept each time, in order, as uWSGI
applies it.  :func:`options` shapes the result like ``uwsgi.opt``, so :mod:`.uwsgi_opt` reads
an ini's values with the same rules (the last value wins, uWSGI's boolean spelling).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union


@dataclass(frozen=True)
class Line:
    """One line of the ``[uwsgi]`` section: ``key`` and ``value`` stripped (``key`` None for a line
    without ``=``), ``raw`` as written."""

    key: Optional[str]
    value: str
    raw: str


def lines(text: str) -> Iterator[Line]:
    """The lines of ``text``'s ``[uwsgi]`` section, in order, without blank lines and comments."""
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif section == "uwsgi" and line and line[0] not in ";#":
            key, equals, value = line.partition("=")
            yield Line(key.strip() if equals else None, value.strip(), raw)


def items(text: str) -> list[tuple[str, str]]:
    """The ``key = value`` pairs of ``text``'s ``[uwsgi]`` section, in order."""
    return [(line.key, line.value) for line in lines(text) if line.key is not None]


def read(path: Union[str, Path]) -> list[tuple[str, str]]:
    """The ``key = value`` pairs of the ini file at ``path`` (:func:`items`)."""
    return items(Path(path).read_text())


def options(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """``pairs`` shaped like ``uwsgi.opt``: each key's values in order (read them with :mod:`.uwsgi_opt`)."""
    opt: dict[str, list[str]] = {}
    for key, value in pairs:
        opt.setdefault(key, []).append(value)
    return opt
