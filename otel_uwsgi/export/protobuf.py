"""The protobuf wire format the encoder writes: varints, length-delimited fields, proto3 scalars,
``AnyValue`` / ``KeyValue`` as the SDK's encoder builds them, and repeated attribute fields with a
cache of the encoded (key, value) pairs that repeat from span to span."""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Optional

from otel_uwsgi.native.sdk_layout import BOUNDED_ATTRIBUTE_TYPES

logger = logging.getLogger(__name__)

pack_double = struct.Struct("<d").pack
pack_fixed64 = struct.Struct("<Q").pack
pack_fixed32 = struct.Struct("<I").pack
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
UINT64 = (1 << 64) - 1
SMALL_VARINT = [bytes((i,)) for i in range(128)]

CACHE_LIMIT = 4096  # entries per attribute cache before it starts over
_CACHED_FIELD_MAX = 1024  # bytes: long values (SQL with inlined literals...) are encoded each time


class Unencodable(ValueError):
    """An attribute value the SDK's encoder would reject (it logs and skips the attribute)."""


def varint(n: int) -> bytes:
    if n < 0x80:
        return SMALL_VARINT[n]
    if n < 0x4000:  # most span and field lengths
        return bytes((n & 0x7F | 0x80, n >> 7))
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    n = len(payload)
    return tag + (SMALL_VARINT[n] if n < 0x80 else varint(n)) + payload


def text(tag: bytes, value: Optional[str]) -> bytes:
    """A proto3 string field outside a oneof: absent when empty or None."""
    if not value:
        return b""
    return field(tag, value.encode())


def uint(tag: bytes, value: Optional[int]) -> bytes:
    """A proto3 uint32 field: absent when 0 or None."""
    if not value:
        return b""
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"uint32 out of range: {value}")
    return tag + varint(value)


def any_value(value: Any) -> bytes:
    """The body of an AnyValue, checking types in the order the SDK's encoder does."""
    t = type(value)
    if t is str:
        return field(b"\x0a", value.encode())
    if t is bool:
        return b"\x10\x01" if value else b"\x10\x00"
    if t is int:
        return b"\x18" + int64(value)
    if t is float:
        return b"\x21" + pack_double(value)
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return field(b"\x0a", str.encode(value))
    if isinstance(value, int):
        return b"\x18" + int64(int(value))
    if isinstance(value, float):
        return b"\x21" + pack_double(value)
    if isinstance(value, bytes):
        return field(b"\x3a", bytes(value))
    if isinstance(value, Sequence):
        return field(b"\x2a", b"".join([field(b"\x0a", any_value(v)) for v in value]))
    if isinstance(value, Mapping):
        return field(b"\x32", b"".join([field(b"\x0a", key_value(str(k), v)) for k, v in value.items()]))
    raise Unencodable(f"Invalid type {type(value)} of value {value}")


def int64(value: int) -> bytes:
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise Unencodable(f"Value out of range: {value}")
    return varint(value & UINT64)


def key_value(key: str, value: Any) -> bytes:
    return text(b"\x0a", key) + field(b"\x12", any_value(value))


# Encoded attribute fields of (key, value) pairs with a str or int value seen before, per field
# tag: most attributes repeat (http.method=GET, db.system=mysql, net.host.port=8000...).  When a
# mapping holds only str and int values, the look-up is one ``map`` over its items; with a bool or
# float among them (True == 1 == 1.0 as dict keys) each value is looked up by its own type.
_field_cache: dict[bytes, dict[tuple[str, Any], bytes]] = {}
_STR_INT = frozenset((str, int))


def attributes(out: list[bytes], tag: bytes, values: Optional[Mapping[str, Any]]) -> list[bytes]:
    """Append each attribute as a repeated KeyValue field; one the SDK cannot encode is logged and skipped."""
    if not values:
        return out
    if type(values) is MappingProxyType or type(values) in BOUNDED_ATTRIBUTE_TYPES:
        values = values.copy()  # a plain dict: iterating the SDK's mapping is 2x slower
    cache = _field_cache.get(tag)
    if cache is None:
        cache = _field_cache[tag] = {}
    items = values.items()
    if set(map(type, values.values())) <= _STR_INT:
        found = list(map(cache.get, items))
        if all(found):  # every field is non-empty bytes: no miss (None)
            out += found
            return out
    else:
        found = [None] * len(values)
    for (key, value), encoded in zip(items, found, strict=False):
        if encoded is None:
            cacheable = type(value) in _STR_INT
            if cacheable:
                encoded = cache.get((key, value))
            if encoded is None:
                try:
                    encoded = field(tag, key_value(key, value))
                except (Unencodable, UnicodeEncodeError) as error:
                    logger.error("Failed to encode key %s: %s", key, error)
                    continue
                if cacheable and len(encoded) <= _CACHED_FIELD_MAX:
                    if len(cache) >= CACHE_LIMIT:
                        cache.clear()
                    cache[(key, value)] = encoded
        out.append(encoded)
    return out
