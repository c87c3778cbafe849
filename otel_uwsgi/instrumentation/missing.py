"""Reporting an instrumentation that could not run: a debug line under ``auto``, a warning naming
the package to install when the user listed it."""

from __future__ import annotations

import logging

logger = logging.getLogger("otel_uwsgi.instrumentation")


def missing(name: str, explicit: bool, package: str, exc: BaseException) -> None:
    log = logger.warning if explicit else logger.debug
    log("otel-uwsgi: %s not instrumented: %s (install %s)", name, exc, package)
