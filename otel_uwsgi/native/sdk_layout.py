"""Probes of how the installed OpenTelemetry API and SDK lay out their objects, checked once at
import, which the lean span start and the direct encoder read instead of the public properties."""

from __future__ import annotations

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.trace import SpanContext, TraceFlags
from opentelemetry.trace.span import TraceState

# SpanContext is the tuple (trace_id, span_id, is_remote, trace_flags, trace_state, is_valid) its
# properties read: the lean tracer (and the encoder) build and read it as such while this API release does.
_probe = SpanContext(3, 5, True, TraceFlags(1), TraceState([("k", "v")]))
CONTEXT_AS_TUPLE = tuple(_probe) == (3, 5, True, TraceFlags(1), _probe.trace_state, True) and (
    _probe.trace_id,
    _probe.span_id,
    _probe.is_remote,
    _probe.trace_flags,
    _probe.is_valid,
) == (3, 5, True, 1, True)
del _probe

#: Every lean span class (one per tracer), whose instance fields were checked to be exactly the SDK
#: span's: the encoder reads these spans' fields directly, as it does the SDK's own ``_Span``.
LEAN_SPAN_CLASSES: set[type] = set()

#: The attribute mappings the encoders read through their ``_dict``, ``_immutable`` and ``dropped``
#: fields: the API's BoundedAttributes and the lean span's subclass of it (added by
#: otel_uwsgi.traces.lean.span), whose fields are the same.
BOUNDED_ATTRIBUTE_TYPES: set[type] = {BoundedAttributes}
