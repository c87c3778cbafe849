"""``Tracer.start_as_current_span`` as one small context manager instead of the SDK's two nested
generator-based ones.

The stock instrumentations that stay (Redis, requests, urllib3 ...) and most user code open their
spans with ``with tracer.start_as_current_span(...)``.  The SDK makes that a generator context
manager wrapping ``trace.use_span``, another one: about 20 Python frames, two generators and
four exception-handling blocks around every span, ~31k instructions per span under callgrind,
more than the lean span's own start and end (~28k).  :class:`CurrentSpan` does the same steps
(start the span, make it current in the current context, and on leaving: detach, record the
exception and set the ERROR status as ``use_span`` does, end the span) in two method calls.

What ``use_span`` does on an exception changed across API releases (since 1.34 it records
``Exception`` only, not every ``BaseException``), so :data:`VERIFIED` is decided once by running the
installed ``use_span`` and :func:`leave` side by side on a probe span; anything but the same calls
in the same order, or an SDK whose ``start_as_current_span`` is not the expected pair of steps,
leaves the SDK's own context manager in place.  Used as a decorator, a :class:`CurrentSpan` hands
the function to the SDK's own context manager (whose span start is still the lean one).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Optional

from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.trace.status import Status, StatusCode

from otel_uwsgi.traces import context_ops

_logger = logging.getLogger(__name__)
_get_current, _attach, _reset, _with_span = (
    context_ops.get_current,
    context_ops.attach,
    context_ops.reset,
    context_ops.with_span,
)


class CurrentSpan:
    """What ``tracer.start_as_current_span(...)`` returns for a lean tracer: single use, like the SDK's."""

    __slots__ = ("_tracer", "_args", "_flags", "_span", "_token")

    def __init__(
        self,
        tracer: SdkTracer,
        args: tuple[str, Any, Any, Any, Optional[int]],
        flags: tuple[bool, bool, bool],
    ) -> None:
        self._tracer = tracer
        self._args = args  # name, context, kind, attributes, start_time
        self._flags = flags  # record_exception, set_status_on_exception, end_on_exit
        self._span: Any = None

    def __enter__(self) -> trace_api.Span:
        if self._span is not None:
            # the type the SDK's raises when entered twice (its arguments were deleted at the first)
            raise AttributeError("start_as_current_span(...) was already entered: make a new one per with")
        name, context, kind, attributes, start_time = self._args
        record, set_status, _ = self._flags
        if record and set_status:  # LeanSdkTracer.start_span's common case, without its frame
            span = self._tracer._lean.start_span(name, context, kind, attributes, start_time)
        else:
            span = self._tracer.start_span(name, context, kind, attributes, (), start_time, record, set_status)
        self._span = span
        self._token = _attach(_with_span(span, _get_current()))  # use_span's set_value(_SPAN_KEY, span)
        return span

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> bool:
        try:
            _reset(self._token)
        except Exception:  # noqa: BLE001 - the API logs a bad detach, never raises
            context_ops.detach_failed()
        if exc_type is None:
            if self._flags[2]:
                self._span.end()
            return False
        if exc is None:
            exc = exc_type()
        leave(self._span, exc, *self._flags)
        return False  # the exception goes on

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """As a decorator: the SDK's own context manager, made afresh for each call."""
        name, context, kind, attributes, start_time = self._args
        record, set_status, end = self._flags
        return SdkTracer.start_as_current_span(  # type: ignore[no-any-return]
            self._tracer,
            name,
            context=context,
            kind=kind,
            attributes=attributes,
            start_time=start_time,
            record_exception=record,
            set_status_on_exception=set_status,
            end_on_exit=end,
        )(func)


def leave(span: Any, exc: Optional[BaseException], record: bool, set_status: bool, end: bool) -> None:
    """``use_span``'s steps after its ``yield``, the context already detached."""
    try:
        if isinstance(exc, _RECORDED) and isinstance(span, trace_api.Span) and span.is_recording():
            if record:
                span.record_exception(exc)
            if set_status:
                span.set_status(Status(status_code=StatusCode.ERROR, description=f"{type(exc).__name__}: {exc}"))
    finally:
        if end:
            span.end()


class _ProbeSpan(trace_api.NonRecordingSpan):
    """A span that says it records and logs what is done to it."""

    def __init__(self) -> None:
        super().__init__(trace_api.INVALID_SPAN_CONTEXT)
        self.calls: list[tuple[Any, ...]] = []

    def is_recording(self) -> bool:
        return True

    def record_exception(self, exception: BaseException, *args: Any, **kwargs: Any) -> None:
        self.calls.append(("record_exception", exception, args, kwargs))

    def set_status(self, status: Any, description: Optional[str] = None) -> None:
        self.calls.append(("set_status", status.status_code, status.description, description))

    def end(self, end_time: Optional[int] = None) -> None:
        self.calls.append(("end", end_time))


class _ProbeExit(BaseException):
    pass


def _stock_calls(exc: Optional[BaseException], flags: tuple[bool, bool, bool]) -> list[tuple[Any, ...]]:
    """What the installed ``use_span`` does to a span when its block raises ``exc`` (None: nothing)."""
    span = _ProbeSpan()
    try:
        with trace_api.use_span(
            span, end_on_exit=flags[2], record_exception=flags[0], set_status_on_exception=flags[1]
        ):
            if exc is not None:
                raise exc
    except BaseException as raised:  # noqa: BLE001 - the probe's own exception
        if raised is not exc:
            span.calls.append(("raised", raised))
    return span.calls


def _lean_calls(exc: Optional[BaseException], flags: tuple[bool, bool, bool]) -> list[tuple[Any, ...]]:
    """What :func:`leave` does to a span for the same block."""
    span = _ProbeSpan()
    leave(span, exc, *flags)
    return span.calls


def _verify() -> Optional[str]:
    """None when :class:`CurrentSpan` does what the installed SDK and API do, else why not."""
    if context_ops.SPAN_KEY is None:
        return "the API's current-span key is not where it was"
    code = getattr(getattr(SdkTracer.start_as_current_span, "__wrapped__", None), "__code__", None)
    if code is None or not {"start_span", "use_span"} <= set(code.co_names) or len(code.co_names) > 3:
        return "the SDK's start_as_current_span is not start_span + use_span"
    for flags in ((True, True, True), (False, True, True), (True, False, True), (True, True, False)):
        for exc in (ValueError("probe"), _ProbeExit("probe"), None):
            if _stock_calls(exc, flags) != _lean_calls(exc, flags):
                return f"use_span does something else with {type(exc).__name__} (flags {flags})"
    return None


def _recorded_type() -> type[BaseException]:
    """The exceptions ``use_span`` records: ``Exception`` since API 1.34, every one before."""
    return Exception if not _stock_calls(_ProbeExit("probe"), (True, True, False)) else BaseException


try:
    _RECORDED: type[BaseException] = _recorded_type()
    _PROBLEM = _verify()
except Exception as exc:  # noqa: BLE001 - an API that differs: the SDK's own context manager
    _RECORDED, _PROBLEM = Exception, f"probing use_span failed: {exc!r}"

#: Whether lean tracers return :class:`CurrentSpan` from ``start_as_current_span``.
VERIFIED = _PROBLEM is None
if _PROBLEM is not None:
    _logger.debug("otel-uwsgi: start_as_current_span stays the SDK's: %s", _PROBLEM)
