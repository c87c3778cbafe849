"""The OpenTelemetry context steps of a traced request (current context, attach, detach, the span
made current), without the API's layers of Python calls around the ``ContextVar`` that holds it.

Each is what the API does with its default runtime context (``contextvars_context``): the same
``ContextVar``, the same token, the same ``Failed to detach context`` log on a bad detach.  With
another runtime context (``OTEL_PYTHON_CONTEXT``) or an API without the names read here, the
API's own functions are used.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from typing import Any, Optional

from opentelemetry import context as _api
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import propagation as _propagation

_logger = logging.getLogger(_api.__name__)  # where the API logs a failed detach


def _current_context_var() -> Optional[contextvars.ContextVar[Context]]:
    """The API's ``ContextVar`` of the current context, when its default runtime context is in use."""
    runtime = getattr(_api, "_RUNTIME_CONTEXT", None)
    try:
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
    except ImportError:
        return None
    var = getattr(runtime, "_current_context", None)
    return var if type(runtime) is ContextVarsRuntimeContext and isinstance(var, contextvars.ContextVar) else None


_VAR = _current_context_var()
#: The context key of the current span (the API's private name), or None: then the API's calls.
SPAN_KEY: Optional[str] = getattr(_propagation, "_SPAN_KEY", None)

get_current: Callable[[], Context]
attach: Callable[[Context], object]
detach: Callable[[object], None]

#: ``reset(token)``: a detach that raises on a bad token (then call :func:`detach_failed`), for a
#: caller that inlines :func:`detach` in a try block of its own: one Python call less.
reset: Callable[[object], None]


def detach_failed() -> None:
    """What the API does when a detach fails: log it, never raise."""
    _logger.exception("Failed to detach context")


if _VAR is not None:
    get_current = _VAR.get  # ContextVarsRuntimeContext.get_current
    attach = _VAR.set  # ContextVarsRuntimeContext.attach
    reset = _VAR.reset  # type: ignore[assignment]

    def detach(token: object) -> None:
        """``opentelemetry.context.detach``: a token of another context is logged, never raised."""
        try:
            _VAR.reset(token)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - the API's behaviour
            detach_failed()

else:
    get_current, attach, detach = _api.get_current, _api.attach, _api.detach
    reset = _api.detach  # logs a bad token itself


def with_span(span: Any, ctx: Context, value: Optional[tuple[str, Any]] = None) -> Context:
    """``trace.set_span_in_context(span, ctx)``: a copy of ``ctx`` with ``span`` current; with
    ``value`` = ``(key, v)`` also ``context.set_value(key, v, ...)`` on it, in the same copy."""
    if SPAN_KEY is None:
        made = trace.set_span_in_context(span, ctx)
        return made if value is None else _api.set_value(value[0], value[1], made)
    made = Context(ctx)
    dict.__setitem__(made, SPAN_KEY, span)  # Context refuses item assignment; the API copies the same way
    if value is not None:
        dict.__setitem__(made, value[0], value[1])
    return made
