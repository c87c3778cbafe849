"""One process's journal file: a header, slots for the requests in flight, and a ring of records.

The file is mapped shared, so every store lands in the page cache at once and survives the
process whatever kills it (SIGKILL, a segfault, harakiri); only a crash of the machine loses it.

Layout (little-endian)::

    header   HEADER_SIZE bytes: magic, format version, sizes, owner, counters, resource
    slots    slot_count x slot_size bytes: [state u32][length u32][crc32 u32][pad u32][blob]
    ring     capacity bytes of records: [length u32][crc32 u32][span id u64][payload][pad to 8]

``head`` and ``tail`` are byte counters that only grow (position = counter % capacity).  A
record is written whole before ``head`` moves past it, so a process killed mid-write leaves an
invisible record, not a torn one; the checksum still catches a record that is torn some other
way (a file written by something else, a bug), which the reader skips with one warning.  A record
that would cross the end of the ring is preceded by a wrap marker and written at position 0.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Optional

MAGIC = b"OTUWJRN\x00"
#: Bumped whenever the layout changes: a region of another version is never read.
VERSION = 1
HEADER_SIZE = 8192
SLOT_SIZE = 8192

_HEADER = struct.Struct("<8sIIQIIiIQQQQQIIIQ")
_OFF_HEARTBEAT, _OFF_HEAD, _OFF_TAIL, _OFF_DROPPED, _OFF_FLAGS = 48, 56, 64, 72, 92
#: Flag: the owner's exit flush began and has not finished (it may have run out of time).
EXIT_FLUSHING = 1
_RESOURCE_AT = _HEADER.size
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_RECORD = struct.Struct("<IIQ")  # payload length, crc32, span id
_SLOT = struct.Struct("<IIII")  # state, blob length, crc32, pad
_WRAP = 0xFFFFFFFF
_FREE, _BUSY = 0, 1


def _native(name: str) -> Optional[Any]:
    """A C twin from ``otel_uwsgi.native._accel`` (None: not built, turned off, or an older build)."""
    from otel_uwsgi.native import accel

    return getattr(accel.load(), name, None)


#: ring_append(...): :meth:`Region.append` of a prefix and a field, in C (same bytes).
_RING_APPEND = _native("ring_append")
#: ring_batch(...): the request body of records read without checksums, in C (same bytes as Python's).
_RING_BATCH = _native("ring_batch")
#: slot_start(...): a server span's slot as :meth:`Region.put_slot` writes it, in C (same bytes).
SLOT_START = _native("slot_start")


class NotAJournal(ValueError):
    """A file in a journal directory that this otel-uwsgi cannot read (another format or version)."""


@dataclass(frozen=True)
class Owner:
    """Who wrote a region: read back by whoever ships it after the owner died."""

    pid: int
    master_pid: int
    worker_id: int
    harakiri_s: int
    created_ns: int


def _size(capacity: int, slot_count: int) -> int:
    return HEADER_SIZE + slot_count * SLOT_SIZE + capacity


class Region:
    """A mapped journal file.  The owner appends and clears slots; one thread ships and acks."""

    def __init__(
        self, path: str, fd: int, mm: mmap.mmap, capacity: int, slot_count: int, owner: Owner, resource: bytes
    ) -> None:
        self.path, self.fd, self.mm = path, fd, mm
        self.capacity, self.slot_count = capacity, slot_count
        self.owner, self.resource = owner, resource
        self._ring = HEADER_SIZE + slot_count * SLOT_SIZE
        self._head = _U64.unpack_from(mm, _OFF_HEAD)[0]
        self._tail = _U64.unpack_from(mm, _OFF_TAIL)[0]

    # ------------------------------------------------------------------ opening

    @classmethod
    def create(
        cls, path: str, *, capacity: int, slot_count: int, owner: Owner, resource: bytes
    ) -> Region:
        """A new region at ``path``, locked by this process for as long as it lives."""
        capacity -= capacity % 8
        if len(resource) > HEADER_SIZE - _RESOURCE_AT:
            raise ValueError(f"the resource ({len(resource)} bytes encoded) does not fit a journal header")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.ftruncate(fd, _size(capacity, slot_count))
            mm = mmap.mmap(fd, _size(capacity, slot_count))
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise
        _HEADER.pack_into(
            mm, 0, MAGIC, VERSION, HEADER_SIZE, capacity, owner.pid, owner.master_pid, owner.worker_id,
            owner.harakiri_s, owner.created_ns, owner.created_ns, 0, 0, 0, slot_count, SLOT_SIZE, len(resource), 0,
        )
        mm[_RESOURCE_AT : _RESOURCE_AT + len(resource)] = resource
        return cls(path, fd, mm, capacity, slot_count, owner, resource)

    @classmethod
    def adopt(cls, path: str) -> Optional[Region]:
        """The region at ``path`` if its owner is dead (its lock is free, now held by us); None while
        it lives or when the file is gone.  Raises :class:`NotAJournal` for a file of another format."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            return cls._map(path, fd)
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def _map(cls, path: str, fd: int) -> Region:
        if not os.path.exists(path):  # shipped and removed by another adopter between open and lock
            raise FileNotFoundError(path)
        size = os.fstat(fd).st_size
        if size < HEADER_SIZE:
            raise NotAJournal(f"{size} bytes, shorter than a journal header")
        fields = _HEADER.unpack(os.pread(fd, _HEADER.size, 0))
        magic, version, header_size, capacity, pid, master, wid, harakiri, created = fields[:9]
        slots, slot_size, rlen = fields[13:16]
        if magic != MAGIC:
            raise NotAJournal("not an otel-uwsgi span journal")
        if version != VERSION or header_size != HEADER_SIZE or slot_size != SLOT_SIZE:
            raise NotAJournal(f"journal format {version}, this otel-uwsgi reads format {VERSION}")
        if size != _size(capacity, slots) or rlen > HEADER_SIZE - _RESOURCE_AT:
            raise NotAJournal(f"its size ({size} bytes) does not match its header")
        mm = mmap.mmap(fd, size)
        resource = bytes(mm[_RESOURCE_AT : _RESOURCE_AT + rlen])
        return cls(path, fd, mm, capacity, slots, Owner(pid, master, wid, harakiri, created), resource)

    def close(self, *, remove: bool = False) -> None:
        """Unmap and close (the lock goes with the descriptor); ``remove`` deletes the file first."""
        if remove:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        try:
            self.mm.close()
        finally:
            os.close(self.fd)

    # ------------------------------------------------------------------ records

    def append(self, span_id: int, payload: bytes) -> bool:
        """Write one record; False (nothing written) when the ring has no room for it."""
        n = len(payload)
        size = (_RECORD.size + n + 7) & ~7
        capacity, head = self.capacity, self._head
        pos = head % capacity
        skip = capacity - pos if pos + size > capacity else 0
        if head + skip + size - self._tail > capacity:
            self._tail = _U64.unpack_from(self.mm, _OFF_TAIL)[0]  # the shipper may have moved it
            if head + skip + size - self._tail > capacity:
                return False
        mm, ring = self.mm, self._ring
        if skip:
            _U32.pack_into(mm, ring + pos, _WRAP)
            head += skip
            pos = 0
        at = ring + pos
        _RECORD.pack_into(mm, at, n, zlib.crc32(payload, span_id & 0xFFFFFFFF), span_id)
        mm[at + _RECORD.size : at + _RECORD.size + n] = payload
        head += size
        _U64.pack_into(mm, _OFF_HEAD, head)  # last: the record exists from here on
        self._head = head
        return True

    def ring_layout(self) -> tuple[int, int, int, int]:
        """(offset of the head counter, of the tail counter, of the ring, the ring's capacity)."""
        return _OFF_HEAD, _OFF_TAIL, self._ring, self.capacity

    def append_fields(self, span_id: int, prefix: bytes, field: bytes) -> bool:
        """:meth:`append` of ``prefix + field`` (C where built: no concatenation, no Python steps)."""
        if _RING_APPEND is None:
            return self.append(span_id, prefix + field)
        head = _RING_APPEND(
            self.mm, _OFF_HEAD, _OFF_TAIL, self._ring, self.capacity, self._head, span_id, prefix, field
        )
        if head < 0:
            return False
        self._head = head
        return True

    def pending(self) -> tuple[int, int]:
        """(tail, head): the records not acknowledged yet lie between them."""
        return _U64.unpack_from(self.mm, _OFF_TAIL)[0], _U64.unpack_from(self.mm, _OFF_HEAD)[0]

    def read(
        self, start: int, end: int, limit: int, *, verify: bool = True
    ) -> tuple[list[tuple[int, bytes]], int, Optional[str]]:
        """Up to ``limit`` records from byte counter ``start`` to ``end``: (records as (span id,
        payload), the counter after the last one read, why reading stopped early or None).

        A record whose length or checksum is wrong stops the reading there: what follows it cannot
        be trusted to start where the length says.  ``verify=False`` skips the checksums (the
        owner reading what it wrote itself, in this process's lifetime)."""
        out: list[tuple[int, bytes]] = []
        mm, ring, capacity = self.mm, self._ring, self.capacity
        offset = start
        while offset < end and len(out) < limit:
            pos = offset % capacity
            if capacity - pos < _RECORD.size:
                offset += capacity - pos
                continue
            n, crc, span_id = _RECORD.unpack_from(mm, ring + pos)
            if n == _WRAP:
                offset += capacity - pos
                continue
            size = (_RECORD.size + n + 7) & ~7
            if pos + size > capacity or offset + size > end:
                return out, offset, f"a record at byte {offset} claims {n} bytes, past the end of the journal"
            payload = bytes(mm[ring + pos + _RECORD.size : ring + pos + _RECORD.size + n])
            if verify and zlib.crc32(payload, span_id & 0xFFFFFFFF) != crc:
                return out, offset, f"the record at byte {offset} fails its checksum (torn)"
            out.append((span_id, payload))
            offset += size
        return out, offset, None

    def batch_body(self, start: int, end: int, limit: int) -> Optional[tuple[bytes, int, int]]:
        """(request body, records in it, the counter after them) of up to ``limit`` records from
        ``start``, built in C (:func:`otel_uwsgi.traces.journal.ship.body` of :meth:`read` without
        checksums, the same bytes); None where the C part is missing or leaves it to Python."""
        if _RING_BATCH is None:
            return None
        return _RING_BATCH(self.mm, self._ring, self.capacity, start, end, limit, self.resource)

    def ack(self, offset: int) -> None:
        """Records before ``offset`` are shipped (or given up): their room is free again."""
        _U64.pack_into(self.mm, _OFF_TAIL, offset)

    def count_drop(self) -> None:
        _U64.pack_into(self.mm, _OFF_DROPPED, _U64.unpack_from(self.mm, _OFF_DROPPED)[0] + 1)

    @property
    def flags(self) -> int:
        return _U64.unpack_from(self.mm, _OFF_FLAGS)[0]

    def set_flags(self, flags: int) -> None:
        _U64.pack_into(self.mm, _OFF_FLAGS, flags)

    @property
    def dropped(self) -> int:
        return _U64.unpack_from(self.mm, _OFF_DROPPED)[0]

    # ------------------------------------------------------------------ liveness and slots

    def beat(self, now_ns: int) -> None:
        """Record that the owner was alive at ``now_ns``: a dead owner's last beat dates its death."""
        _U64.pack_into(self.mm, _OFF_HEARTBEAT, now_ns)

    @property
    def heartbeat_ns(self) -> int:
        return _U64.unpack_from(self.mm, _OFF_HEARTBEAT)[0]

    def put_slot(self, index: int, blob: bytes) -> bool:
        """Fill slot ``index``; False when ``blob`` does not fit.  Written free, marked busy only
        once complete: a process killed mid-write leaves a free slot, not a torn one."""
        n = len(blob)
        if n > SLOT_SIZE - _SLOT.size:
            return False
        at = HEADER_SIZE + index * SLOT_SIZE
        mm = self.mm
        mm[at : at + _SLOT.size + n] = _SLOT.pack(_FREE, n, zlib.crc32(blob), 0) + blob
        _U32.pack_into(mm, at, _BUSY)
        return True

    def clear_slot(self, index: int) -> None:
        _U32.pack_into(self.mm, HEADER_SIZE + index * SLOT_SIZE, _FREE)

    def slots(self) -> Iterator[tuple[int, Optional[bytes]]]:
        """(index, blob) of each busy slot; blob None when the slot is torn."""
        mm = self.mm
        for index in range(self.slot_count):
            at = HEADER_SIZE + index * SLOT_SIZE
            state, length, crc, _ = _SLOT.unpack_from(mm, at)
            if state != _BUSY:
                continue
            if length > SLOT_SIZE - _SLOT.size:
                yield index, None
                continue
            blob = bytes(mm[at + _SLOT.size : at + _SLOT.size + length])
            yield index, (blob if zlib.crc32(blob) == crc else None)
