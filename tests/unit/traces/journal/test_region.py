"""The journal file: records survive the writer, wrap around the ring, never overwrite what is not
acknowledged, and anything torn or foreign is refused rather than read as spans."""

from __future__ import annotations

import os
import struct
import subprocess
import sys

import pytest

from otel_uwsgi.traces.journal.region import HEADER_SIZE, SLOT_SIZE, NotAJournal, Owner, Region

OWNER = Owner(pid=os.getpid(), master_pid=1, worker_id=3, harakiri_s=20, created_ns=123)


def _create(tmp_path, capacity=4096, slots=4, name="w.journal") -> Region:
    return Region.create(str(tmp_path / name), capacity=capacity, slot_count=slots, owner=OWNER, resource=b"RES")


def test_records_written_are_read_back_in_order(tmp_path):
    region = _create(tmp_path)
    for i in range(10):
        assert region.append(i + 1, f"payload-{i}".encode())
    tail, head = region.pending()
    records, after, problem = region.read(tail, head, 100)
    assert problem is None and after == head
    assert records == [(i + 1, f"payload-{i}".encode()) for i in range(10)]
    records, after2, _ = region.read(tail, head, 4)
    assert len(records) == 4 and tail < after2 < head


def test_the_ring_wraps_and_never_overwrites_unacknowledged_records(tmp_path):
    region = _create(tmp_path, capacity=1024)
    payload = b"x" * 100  # 116 bytes a record, 120 with padding
    written = 0
    while region.append(written + 1, payload):
        written += 1
    assert written == 1024 // 120
    tail, head = region.pending()
    records, after, _ = region.read(tail, head, 3)
    region.ack(after)
    for i in range(3):  # room for three more, written across the end of the ring
        assert region.append(1000 + i, payload)
    assert not region.append(2000, payload)
    tail, head = region.pending()
    records, after, problem = region.read(tail, head, 100)
    assert problem is None and after == head
    assert [r[0] for r in records] == list(range(4, written + 1)) + [1000, 1001, 1002]


def test_records_outlive_a_writer_killed_with_sigkill(tmp_path):
    path = tmp_path / "killed.journal"
    script = f"""
import os, signal
from otel_uwsgi.traces.journal.region import Owner, Region
r = Region.create({str(path)!r}, capacity=65536, slot_count=2, owner=Owner(os.getpid(), 1, 1, 0, 1), resource=b"R")
for i in range(50):
    r.append(i + 1, b"span %d" % i)
r.put_slot(1, b"in flight")
os.kill(os.getpid(), signal.SIGKILL)
"""
    assert subprocess.run([sys.executable, "-c", script]).returncode == -9
    region = Region.adopt(str(path))
    assert region is not None and region.resource == b"R"
    tail, head = region.pending()
    records, _, problem = region.read(tail, head, 100)
    assert problem is None and [p for _, p in records] == [b"span %d" % i for i in range(50)]
    assert list(region.slots()) == [(1, b"in flight")]


def test_a_living_owner_keeps_its_journal(tmp_path):
    region = _create(tmp_path)
    assert Region.adopt(region.path) is None  # our own lock: another descriptor cannot take it
    region.close()
    adopted = Region.adopt(region.path)
    assert adopted is not None and adopted.owner == OWNER


def test_a_torn_record_stops_the_reading_there(tmp_path):
    region = _create(tmp_path)
    for i in range(3):
        region.append(i + 1, b"abcdefgh" * 4)
    ring = HEADER_SIZE + 4 * SLOT_SIZE
    region.mm[ring + 48 + 16 + 5] ^= 0xFF  # a byte of the second record's payload
    tail, head = region.pending()
    records, after, problem = region.read(tail, head, 100)
    assert [r[0] for r in records] == [1]
    assert "checksum" in problem and after < head
    struct.pack_into("<I", region.mm, ring, 10**9)  # a length past the end
    _, _, problem = region.read(tail, head, 100)
    assert "past the end" in problem


def test_a_torn_slot_reads_as_none(tmp_path):
    region = _create(tmp_path)
    region.put_slot(2, b"request")
    region.mm[HEADER_SIZE + 2 * SLOT_SIZE + 16] ^= 0xFF
    assert list(region.slots()) == [(2, None)]
    region.clear_slot(2)
    assert list(region.slots()) == []


def test_files_of_another_format_or_version_are_refused(tmp_path):
    other = tmp_path / "other.journal"
    other.write_bytes(b"not a journal" * 1000)
    with pytest.raises(NotAJournal, match="not an otel-uwsgi span journal"):
        Region.adopt(str(other))
    region = _create(tmp_path)
    struct.pack_into("<I", region.mm, 8, 99)
    region.close()
    with pytest.raises(NotAJournal, match="format 99"):
        Region.adopt(region.path)
    short = tmp_path / "short.journal"
    short.write_bytes(b"x")
    with pytest.raises(NotAJournal):
        Region.adopt(str(short))
