"""otel-uwsgi's own log lines, in uWSGI's log.

Left to the root logger, a library's lines vanish under uWSGI: with no logging configured only
warnings reach stderr (Python's last resort), so "why is this not traced" would not be answered;
with ``opentelemetry-instrument``'s ``LoggingHandler`` on the root logger, not even warnings do.
So inside uWSGI the ``otel_uwsgi`` logger gets its own stderr handler (uWSGI's log) at INFO, or
at ``otel-log-level``, and does not propagate: each line appears once, whatever the app or an
agent did to the root logger.

**Logger names.**  Every module logs to ``logging.getLogger(__name__)``: all are children of
``otel_uwsgi``, so this handler, ``otel-log-level`` (set on ``otel_uwsgi``) and a user's logging
config for ``otel_uwsgi`` reach them all, and a user can still quiet one part (for example
``otel_uwsgi.traces.journal``).  The one exception speaks for the SDK: the lean span's "ended
span" warnings go to the SDK's own logger (``opentelemetry.sdk.trace``), as the SDK's span would.
"""

from __future__ import annotations

import logging
import sys
from typing import Optional

PREFIX = "otel-uwsgi: "


class _Formatter(logging.Formatter):
    """``otel-uwsgi: [LEVEL: ]message``: our messages start with ``otel-uwsgi:`` (others, a library's
    wording logged on our logger, get the prefix), and a warning or error says so after it, as
    uWSGI's own warnings do, so a reader (and ``otel-uwsgi check``) can tell problems from news."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        text = line[len(PREFIX) :] if line.startswith(PREFIX) else line
        return PREFIX + (f"{record.levelname}: " if record.levelno >= logging.WARNING else "") + text


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`to_uwsgi_log` installs (told apart from any the app adds)."""


def to_uwsgi_log(level: Optional[str] = None) -> None:
    """Send the ``otel_uwsgi`` logger's lines to stderr, once each, at ``level`` (default INFO)."""
    own = logging.getLogger("otel_uwsgi")
    if not any(isinstance(h, _Handler) for h in own.handlers):
        handler = _Handler(sys.stderr)
        handler.setFormatter(_Formatter("%(message)s"))
        own.addHandler(handler)
    own.propagate = False
    own.setLevel((level or "info").upper())
