"""The optional C extension ``otel_uwsgi.native._accel``, or None.

Built by ``setup.py`` when a C compiler is there (uWSGI needs one anyway).  Every function in it
has a Python twin that gives the same answer (``tests/unit/native/test_accel_equals_python.py``); without the
extension, or with ``OTEL_UWSGI_NO_EXTENSIONS`` set to anything but empty or ``0`` (the
aiohttp/yarl convention), the Python code runs, at more CPU per span.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Optional

logger = logging.getLogger(__name__)

#: Set to anything but "" or "0" to leave the C extension unused (and unbuilt, at install time).
NO_EXTENSIONS = "OTEL_UWSGI_NO_EXTENSIONS"


def disabled() -> bool:
    return os.environ.get(NO_EXTENSIONS, "") not in ("", "0")


def load() -> Optional[Any]:
    """The ``otel_uwsgi.native._accel`` module, or None (not built, or turned off)."""
    if disabled():
        return None
    try:
        from otel_uwsgi.native import _accel
    except ImportError:
        logger.debug("otel-uwsgi: otel_uwsgi.native._accel was not built; its Python twins run instead")
        return None
    global _configured
    if _configured is None:
        return None
    if not _configured:  # the classes its checks compare with, handed over once (it imports no OpenTelemetry)
        try:
            from opentelemetry.attributes import BoundedAttributes
            from opentelemetry.sdk.util import BoundedList
            from opentelemetry.trace import SpanContext, SpanKind
            from opentelemetry.trace.span import DEFAULT_TRACE_STATE
            from opentelemetry.trace.status import Status
        except ImportError as error:  # an OpenTelemetry whose names moved: the Python twins run
            logger.info("otel-uwsgi: the C accelerator is unavailable with this OpenTelemetry (%s)", error)
            _configured = None
            return None
        _accel.configure(SpanContext, Status, SpanKind, BoundedAttributes, BoundedList, DEFAULT_TRACE_STATE)
        _configured = True
    return _accel


_configured: Optional[bool] = False  # None: configure() cannot be given what it needs
