"""The requests a process is serving, as journal slots, and the span each becomes if it dies.

A server span that starts takes a slot (its ids, parent, scope, name and start); the shipping
thread refreshes the slots of requests that run longer (their name and attributes as they are
now, and the request thread's Python stack), and the span's end frees it.  When the process
dies with a slot busy, whoever ships its journal turns the slot into the span the request would
have ended: the same ids, status ERROR, the cause, and the last stack as an ``exception`` event.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Optional

from otel_uwsgi.export.protobuf import attributes, field, pack_fixed32, pack_fixed64, text

#: trace id (high, low 64 bits), span id, parent span id, parent remote, kind, thread, start, stack time
FIXED = struct.Struct("<QQQQBBxxQQQ")
_U64 = (1 << 64) - 1
_LEN = struct.Struct("<I")
#: Room a stack may take in a slot (the rest of the slot holds the ids, name and attributes).
STACK_LIMIT = 4000
_OTLP_KIND_SERVER = 2


@dataclass
class Request:
    """One slot's content."""

    trace_id: bytes  # 16 bytes, big-endian
    span_id: int
    parent_span_id: int  # 0: none
    parent_remote: bool
    kind: int  # OTLP Span.SpanKind number
    thread: int  # threading.get_ident() of the request thread
    start_ns: int
    stack_ns: int  # when ``stack`` was taken; 0: never
    scope: bytes  # the record prefix of the span's scope (ship.scope_prefix)
    name: str
    attributes: bytes  # encoded Span.attributes fields
    stack: str

    def pack(self) -> bytes:
        trace_id = int.from_bytes(self.trace_id, "big")
        head = FIXED.pack(
            trace_id >> 64, trace_id & _U64, self.span_id, self.parent_span_id, self.parent_remote, self.kind,
            self.thread, self.start_ns, self.stack_ns,
        )
        return head + tail(self.scope, self.name, self.attributes, self.stack)

    @classmethod
    def unpack(cls, blob: bytes) -> Request:
        high, low, span_id, parent, remote, kind, thread, start, stack_ns = FIXED.unpack_from(blob)
        trace_id = ((high << 64) | low).to_bytes(16, "big")
        at, parts = FIXED.size, []
        for _ in range(4):
            (n,) = _LEN.unpack_from(blob, at)
            at += _LEN.size
            if at + n > len(blob):
                raise ValueError("a slot's field runs past its end")
            parts.append(blob[at : at + n])
            at += n
        scope, name, attributes, stack = parts
        return cls(
            trace_id, span_id, parent, bool(remote), kind, thread, start, stack_ns, scope,
            name.decode("utf-8", "replace"), attributes, stack.decode("utf-8", "replace"),
        )


def tail(scope: bytes, name: str, attributes: bytes = b"", stack: str = "") -> bytes:
    """What follows a slot's fixed fields: scope prefix, name, attributes, stack, each length-prefixed
    (a request's start writes the same tail for every span of one scope and name: it is cached)."""
    parts = []
    for blob in (scope, name.encode(), attributes, stack[-STACK_LIMIT:].encode("utf-8", "replace")):
        parts.append(_LEN.pack(len(blob)))
        parts.append(blob)
    return b"".join(parts)


@dataclass(frozen=True)
class Death:
    """Why and when a request's process died, as the span will say it."""

    kind: str  # exception.type and error.type: "harakiri" or "worker_died"
    message: str
    end_ns: int


def death_of(request: Request, *, heartbeat_ns: int, harakiri_s: int, pid: int, worker_id: int) -> Death:
    """What ended ``request``: harakiri when it ran (nearly) as long as ``harakiri_s`` before the
    process's last heartbeat (uWSGI checks about once a second), else a death during the request.
    It ended at that heartbeat: the last moment the process was seen alive."""
    end = max(heartbeat_ns, request.start_ns)
    who = f"worker {worker_id} (pid {pid})" if worker_id > 0 else f"pid {pid}"
    if harakiri_s > 0 and end - request.start_ns >= (harakiri_s - 1) * 1_000_000_000:
        return Death(
            "harakiri",
            f"harakiri: the request ran past harakiri = {harakiri_s} s and uWSGI killed {who}",
            end,
        )
    return Death("worker_died", f"{who} died during the request (killed or crashed)", end)


def dead_span_field(request: Request, death: Death) -> bytes:
    """The ``ScopeSpans.spans`` field (tag, length, Span) of the request's span, ended by ``death``."""
    parts = [b"\x0a\x10" + request.trace_id, b"\x12\x08" + request.span_id.to_bytes(8, "big")]
    if request.parent_span_id:
        parts.append(b"\x22\x08" + request.parent_span_id.to_bytes(8, "big"))
    parts.append(text(b"\x2a", request.name))
    parts.append(b"\x30" + bytes((request.kind or _OTLP_KIND_SERVER,)))
    parts.append(b"\x39" + pack_fixed64(request.start_ns) + b"\x41" + pack_fixed64(death.end_ns))
    parts.append(request.attributes)
    attributes(parts, b"\x4a", {"error.type": death.kind})
    event = [b"\x09" + pack_fixed64(death.end_ns), text(b"\x12", "exception")]
    exception = {"exception.type": death.kind, "exception.message": death.message}
    if request.stack:
        exception["exception.stacktrace"] = request.stack
    attributes(event, b"\x1a", exception)  # Event.attributes
    parts.append(field(b"\x5a", b"".join(event)))
    parts.append(field(b"\x7a", text(b"\x12", death.message) + b"\x18\x02"))  # status ERROR
    parts.append(b"\x85\x01" + pack_fixed32(0x300 if request.parent_remote else 0x100))
    return field(b"\x12", b"".join(parts))


def stack_text(frame: Optional[object], limit: int = STACK_LIMIT) -> str:
    """A request thread's Python stack, as a traceback prints it, most recent call last; the
    innermost frames are kept when it is longer than ``limit`` characters."""
    if frame is None:
        return ""
    import traceback

    lines = traceback.format_stack(frame)  # type: ignore[arg-type]
    text_ = "Traceback (most recent call last):\n" + "".join(lines)
    if len(text_) > limit:
        text_ = "Traceback (innermost frames):\n" + text_[-(limit - 32) :]
    return text_
