"""Reporting an instrumentation that could not run: a debug line under ``auto``, a warning naming
the package to install when the user listed it; and the fast path stepping aside for the stock
instrumentations, once per process."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def missing(name: str, explicit: bool, package: str, exc: BaseException) -> None:
    log = logger.warning if explicit else logger.debug
    log("otel-uwsgi: %s not instrumented: %s (install %s)", name, exc, package)


_fast_told = False


def fast_unavailable(error: BaseException) -> None:
    """otel-fast-instrumentation cannot load with the installed instrumentation packages: the
    stock instrumentations trace instead (said once)."""
    global _fast_told
    if not _fast_told:
        _fast_told = True
        logger.info(
            "otel-uwsgi: otel-fast-instrumentation is unavailable with the installed OpenTelemetry "
            "instrumentation packages (%s: %s); the stock instrumentations trace instead",
            type(error).__name__,
            error,
        )
