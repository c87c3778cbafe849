"""Which lines of uWSGI's log explain a failed check, most consequential first: the headline.

The order: uWSGI's own fatal line (it could not run this configuration at all), the exception
line of the app's traceback while it loaded (``ModuleNotFoundError: No module named 'flask'``),
otel-uwsgi's line that stopped the start, uWSGI saying the app did not load, then otel-uwsgi's
warnings by consequence (an error, a late import, another TracerProvider, no master, the rest).
Info lines are never a cause.  Advisory warnings, about what would happen elsewhere (a stop in a
container without ``die-on-term``, ``skip-atexit``), are kept apart: they never lead when the run
has a problem of its own.  Pure: unit-tested over log text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Optional

from otel_uwsgi.runtime.own_log import PREFIX
from otel_uwsgi.runtime.preflight import CONTAINER_STOP

#: uWSGI lines that mean it could not run the configuration (it stops right after them).
UWSGI_FATAL = re.compile(
    r"^(?:\[strict-mode\] unknown config directive"
    r"|The -s/--socket option is missing"
    r"|!!! UNABLE to load uWSGI plugin"
    r"|unable to load configuration from"
    r"|uwsgi: unrecognized option|uwsgi: option .* requires an argument"
    r"|(?:chdir|bind|setuid|setgid|chroot|initgroups)\(\): "
    r"|probably another instance of uWSGI is running"
    r"|Listen queue size is greater than the system max"
    r"|unable to find \".*\" callable"
    r"|Fatal Python error"
    r"|!!! Python Home is not a directory)"
)
#: uWSGI lines saying the app did not load (the traceback before them, if any, says why).
APP_NOT_LOADED = re.compile(r"^(?:unable to load app \d+|\*\*\* no app loaded)")
#: Requests logged by the check (:data:`otel_uwsgi.tools.harness.REQUEST_LOG`): after the first,
#: a traceback is a request's, not the app's load.
_REQUEST = "otel-uwsgi-req "
_TRACEBACK = "Traceback (most recent call last):"
_CHAINED = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
_FRAME = re.compile(r'^  File "(.+)", line (\d+)')
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(?::|$)")
_PROBLEM_LEVELS = ("WARNING: ", "ERROR: ", "CRITICAL: ")
_OWN_PROBLEMS = tuple(PREFIX + level for level in _PROBLEM_LEVELS)
#: otel-uwsgi's warnings by consequence for this run (a pattern, its rank: lower leads).
_OWN_RANKS = (
    (re.compile(r"^(?:ERROR|CRITICAL): "), 0),
    (re.compile(r"before otel_uwsgi\.auto"), 1),
    (re.compile(r"TracerProvider"), 2),
    (re.compile(r"`master` is not enabled"), 3),
)
#: Warnings about what happens elsewhere than this run.
_ADVISORY = (CONTAINER_STOP[len(PREFIX) :], "`skip-atexit` is set")
#: The words of otel-uwsgi's lines that stop uWSGI's start (configuration errors and preflight's
#: fatal problems: runtime.install prints them without a level, then exits).
_STOPPING = re.compile(
    r"^(?:unknown option |invalid value for |unknown instrumentation |Python threads are disabled"
    r"|otel-exit-flush-timeout \(\d+ ms\) must be below|otel-bsp-max-export-batch-size \(\d+\) is larger)"
)

UWSGI, APP, STOPPED, NOT_LOADED, OWN = 0, 10, 20, 30, 40


@dataclass(frozen=True)
class Cause:
    """One line of the log that explains a failure: ``rank`` orders them (lower leads)."""

    rank: int
    line: str
    advisory: bool = False


def causes(log: str, *, renamed: Optional[dict[str, str]] = None) -> list[Cause]:
    """The lines of ``log`` that may explain a failed run, most consequential first (each once;
    paths in ``renamed``, the check's copy of the ini, replaced by the user's)."""
    lines = log.splitlines()
    for old, new in (renamed or {}).items():
        lines = [line.replace(old, new) for line in lines]
    unique: dict[str, Cause] = {}
    for cause in (*_uwsgi_lines(lines), *_app_exceptions(lines), *_own_lines(lines)):
        unique.setdefault(cause.line, cause)
    return sorted(unique.values(), key=lambda c: (c.advisory, c.rank))


def _uwsgi_lines(lines: list[str]) -> Iterable[Cause]:
    for line in lines:
        if UWSGI_FATAL.match(line):
            yield Cause(UWSGI, line.strip())
        elif APP_NOT_LOADED.match(line):
            yield Cause(NOT_LOADED, line.strip())


def _app_exceptions(lines: list[str]) -> Iterable[Cause]:
    """The exception line of each traceback of the app's load (the last of a chain: what Python
    raised in the end); a traceback right after otel-uwsgi's warning or error is otel-uwsgi's own."""
    first_request = next((i for i, line in enumerate(lines) if line.startswith(_REQUEST)), len(lines))
    not_loaded = any(APP_NOT_LOADED.match(line) for line in lines)
    i = 0
    while i < len(lines):
        if lines[i] != _TRACEBACK or (i and lines[i - 1].startswith(_OWN_PROBLEMS)):
            i += 1
            continue
        start = i
        exception, i = _exception_of(lines, i)
        if exception and (start < first_request or not_loaded):
            yield Cause(APP, exception)


def _exception_of(lines: list[str], i: int) -> tuple[Optional[str], int]:
    """The final exception line of the traceback (chain) starting at ``lines[i]``, with where it was
    raised (the last frame), and the index after it."""
    exception = None
    while i < len(lines) and lines[i] == _TRACEBACK:
        i += 1
        where = ""
        while i < len(lines) and (lines[i][:1] in (" ", "\t")):
            frame = _FRAME.match(lines[i])
            where = f" (at {frame.group(1)}:{frame.group(2)})" if frame else where
            i += 1
        if i < len(lines) and _EXCEPTION.match(lines[i]):
            exception = lines[i].strip() + where
            i += 1
        # a chained exception: blank, the chaining sentence, blank, the next traceback
        j = i
        while j < len(lines) and not lines[j].strip():
            j += 1
        if j < len(lines) and lines[j] in _CHAINED:
            j += 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            i = j
    return exception, i


def _own_lines(lines: list[str]) -> Iterable[Cause]:
    for line in lines:
        if not line.startswith(PREFIX):
            continue
        text = line[len(PREFIX) :]
        if _STOPPING.match(text):
            yield Cause(STOPPED, line)
        elif text.startswith(_PROBLEM_LEVELS):
            advisory = any(words in text for words in _ADVISORY)
            rank = next((r for pattern, r in _OWN_RANKS if pattern.search(text)), len(_OWN_RANKS))
            yield Cause(OWN + rank, line, advisory)


def headline(log: str, *, renamed: Optional[dict[str, str]] = None) -> Optional[str]:
    """The line that best explains a failed run, or None (no fatal line, traceback or warning)."""
    found = [c for c in causes(log, renamed=renamed) if not c.advisory]
    return found[0].line if found else None
