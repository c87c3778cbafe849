"""Journal records to OTLP: what a record holds, the request body a batch of records becomes, and
handing that body to the exporter.

A record's payload is its span's scope (as a prefix shared by every span of that scope) and the
span's ``ScopeSpans.spans`` field, both encoded the moment the span ended
(:mod:`otel_uwsgi.export.encoder`).  A batch becomes one ``ResourceSpans`` under the resource
stored in the journal's header, with one ``ScopeSpans`` per scope in first-seen order: the bytes
the SDK's encoder makes for the same spans (``tests/unit/traces/journal/test_ship.py``).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Sequence
from typing import Any, Optional

from opentelemetry import context

from otel_uwsgi.export.encoder import resource_fields, scope_fields, span_field
from otel_uwsgi.export.protobuf import field

logger = logging.getLogger(__name__)

#: The key the SDK's processors set around an export (instrumentations check it): the API's, or
#: the plain name older instrumentation utilities also honour.
_SUPPRESS = getattr(context, "_SUPPRESS_INSTRUMENTATION_KEY", "suppress_instrumentation")
_PREFIX = struct.Struct("<HH")  # lengths of the scope field and of the schema-url field that follow
prefixes: dict[int, tuple[Any, bytes]] = {}  # id(scope) -> (scope, prefix); the scope is held


def scope_prefix(scope: Any) -> bytes:
    """The record prefix of ``scope`` (cached by identity: a tracer's spans share one scope)."""
    entry = prefixes.get(id(scope))
    if entry is None or entry[0] is not scope:
        scope_field, schema_field = scope_fields(scope)
        entry = (scope, _PREFIX.pack(len(scope_field), len(schema_field)) + scope_field + schema_field)
        if len(prefixes) >= 256:
            prefixes.clear()
        prefixes[id(scope)] = entry
    return entry[1]


def record_of(span: Any) -> bytes:
    """The journal payload of an ended SDK (or lean) span."""
    scope, encoded = span_field(span)
    return scope_prefix(scope) + encoded


def resource_blob(resource: Any) -> bytes:
    """What a journal's header keeps of its process's Resource: the ``ResourceSpans.resource`` and
    ``schema_url`` fields, behind the same length prefix as a scope."""
    resource_field, schema_field = resource_fields(resource)
    return _PREFIX.pack(len(resource_field), len(schema_field)) + resource_field + schema_field


def _split(prefixed: bytes) -> tuple[bytes, bytes, int]:
    a, b = _PREFIX.unpack_from(prefixed)
    start = _PREFIX.size
    return prefixed[start : start + a], prefixed[start + a : start + a + b], start + a + b


def body(resource: bytes, payloads: Sequence[bytes]) -> bytes:
    """The serialised ``ExportTraceServiceRequest`` for records of one journal."""
    groups: dict[bytes, list[bytes]] = {}
    for payload in payloads:
        a, b = _PREFIX.unpack_from(payload)
        cut = _PREFIX.size + a + b
        key = payload[:cut]
        spans = groups.get(key)
        if spans is None:
            spans = groups[key] = []
        spans.append(payload[cut:])
    scope_spans = []
    for key, spans in groups.items():
        scope_field, schema_field, _ = _split(key)
        scope_spans.append(field(b"\x12", b"".join([scope_field, *spans, schema_field])))
    resource_field, schema_field, _ = _split(resource)
    return field(b"\x0a", b"".join([resource_field, *scope_spans, schema_field]))


def can_send(exporter: Any) -> bool:
    """Whether ``exporter`` takes a ready body (otel-uwsgi's OTLP/HTTP exporter does)."""
    return callable(getattr(exporter, "export_body", None))


def send(exporter: Any, data: bytes, count: int) -> Optional[bool]:
    """POST one body; True when the collector took it, False when it refused or could not be
    reached, None when the exporter raised (a fault on this side, logged).

    Instrumentation is suppressed meanwhile, as the SDK's span processors do around an export:
    otherwise the urllib3/requests instrumentation traces the POST itself, a span that is shipped
    by the next POST, and so on."""
    from opentelemetry.sdk.trace.export import SpanExportResult

    token = context.attach(context.set_value(_SUPPRESS, True))
    try:
        return exporter.export_body(data, count) is SpanExportResult.SUCCESS
    except OSError:
        return False
    except Exception:  # noqa: BLE001 - never into the shipping thread's loop
        logger.exception("otel-uwsgi: the span exporter raised while sending %d span(s)", count)
        return None
    finally:
        context.detach(token)
