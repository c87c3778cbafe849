"""Shipping what dead processes left, against a real OTLP/HTTP receiver: exactly once even when two
adopters race, torn journals shipped up to the tear, earlier runs of the same service shipped and
removed, a living instance or owner never touched; and the processor's own accounting."""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import sys
from collections import Counter

import pytest
from opentelemetry import context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from otel_uwsgi.export.span_exporter import FastOTLPSpanExporter
from otel_uwsgi.tools.receiver import Receiver
from otel_uwsgi.tools.waiting import wait_until
from otel_uwsgi.traces.journal import adopt, directory, ship
from otel_uwsgi.traces.journal.processor import JournalSpanProcessor
from otel_uwsgi.traces.journal.region import EXIT_FLUSHING, HEADER_SIZE, SLOT_SIZE, Owner, Region
from otel_uwsgi.traces.lean.tracer import make_lean
from otel_uwsgi.traces.ledger import Ledger

RESOURCE = Resource({"service.name": "adopt-test", "process.pid": 4242})


def _exporter(receiver: Receiver) -> FastOTLPSpanExporter:
    return FastOTLPSpanExporter(endpoint=receiver.endpoint + "/v1/traces", timeout=5)


def _dead_journal(path: str, spans: int, *, in_flight: bool = False) -> None:
    """A journal written by a process that then died (SIGKILL), with ``spans`` ended spans."""
    script = f"""
import os, signal
import pytest
from opentelemetry import context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind
from otel_uwsgi.traces.journal import ship
from otel_uwsgi.traces.journal.region import Owner, Region
from otel_uwsgi.traces.journal.inflight import Request
from otel_uwsgi.traces.journal.processor import _request
resource = Resource({{"service.name": "adopt-test", "process.pid": os.getpid()}})
r = Region.create({path!r}, capacity=1 << 20, slot_count=4, owner=Owner(os.getpid(), 1, 2, 5, 1),
                  resource=ship.resource_blob(resource))
provider = TracerProvider(resource=resource, shutdown_on_exit=False)
tracer = provider.get_tracer("t")
for i in range({spans}):
    span = tracer.start_span("s%d" % i)
    span.end()
    r.append(span.get_span_context().span_id, ship.record_of(span))
if {in_flight}:
    live = tracer.start_span("GET /hang", kind=SpanKind.SERVER)
    r.put_slot(0, _request(live, 1, b"", "stack").pack())
r.beat(live.start_time + 6_000_000_000 if {in_flight} else 0)
os.kill(os.getpid(), 9)
"""
    assert subprocess.run([sys.executable, "-c", script]).returncode == -9


def test_two_adopters_racing_ship_each_span_once(tmp_path):
    paths = [str(tmp_path / f"worker-{i}.journal") for i in range(6)]
    for path in paths:
        _dead_journal(path, 40, in_flight=True)
    with Receiver() as receiver:
        script = f"""
from otel_uwsgi.export.span_exporter import FastOTLPSpanExporter
from otel_uwsgi.traces.journal.adopt import ship_dead_journals
e = FastOTLPSpanExporter(endpoint={receiver.endpoint + '/v1/traces'!r}, timeout=5)
ship_dead_journals({paths!r}, e, batch=7, deadline=None, ack_first=False)
"""
        racers = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(2)]
        assert [p.wait(60) for p in racers] == [0, 0]
        spans = receiver.spans
    counts = Counter((s.trace_id, s.span_id) for s in spans)
    assert len(counts) == 6 * 41 and set(counts.values()) == {1}
    died = [s for s in spans if s.name == "GET /hang"]
    assert len(died) == 6 and all(s.status_code == 2 and s.attributes["error.type"] == "harakiri" for s in died)
    assert not any(os.path.exists(p) for p in paths)


def test_a_torn_journal_is_shipped_up_to_the_tear(tmp_path, caplog):
    path = str(tmp_path / "torn.journal")
    _dead_journal(path, 5)
    with open(path, "r+b") as f:  # corrupt the third record's first payload byte
        region = Region.adopt(path)
        tail, head = region.pending()
        records, _, _ = region.read(tail, head, 2)
        offset = HEADER_SIZE + 4 * SLOT_SIZE + sum((16 + len(p) + 7) & ~7 for _, p in records) + 16
        region.close()
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    with Receiver() as receiver, caplog.at_level(logging.WARNING):
        shipped = adopt.ship_dead_journals([path], _exporter(receiver), batch=10, deadline=None, ack_first=False)
        assert receiver.wait_for(lambda s: len(s) >= 2, 5)
    assert shipped.spans == 2 and shipped.torn == 1
    assert "fails its checksum" in caplog.text and not os.path.exists(path)


def test_a_foreign_file_is_removed_with_a_warning(tmp_path, caplog):
    path = tmp_path / "old.journal"
    path.write_bytes(b"OTUWJRN\x00" + b"\x07" * 9000)
    with caplog.at_level(logging.WARNING):
        adopt.ship_dead_journals([str(path)], None, batch=10, deadline=None, ack_first=False)
    assert "is not a journal this otel-uwsgi can read" in caplog.text and not path.exists()


def test_earlier_runs_are_shipped_and_removed_running_ones_left_alone(tmp_path):
    service = directory.service_dir(str(tmp_path), "shop")
    earlier = directory.Instance(service, "100-1")
    earlier.hold()
    _dead_journal(earlier.journal_path("worker", 1), 3)
    os.close(earlier._lock_fd)  # that run ended
    running = directory.Instance(service, "200-2")
    running.hold()
    _dead_journal(running.journal_path("worker", 2), 4)
    holder = subprocess.Popen([sys.executable, "-c", f"""
import fcntl, os, sys, time
fd = os.open({os.path.join(running.path, 'instance.lock')!r}, os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_SH)
print("held", flush=True)
time.sleep(60)
"""], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"held\n"
        os.close(running._lock_fd)  # the other run's process still holds it
        me = directory.Instance(service, "300-3")
        me.hold()
        with Receiver() as receiver:
            shipped = adopt.ship_instance(me, _exporter(receiver), batch=10, deadline=None, ack_first=False)
            assert receiver.wait_for(lambda s: len(s) >= 3, 5)
        assert shipped.spans == 3
        assert not os.path.exists(earlier.path) and running.journals()
    finally:
        holder.kill()
        holder.wait()


def _tracer(provider: TracerProvider, lean: bool):
    """The provider's tracer, made lean (its spans take the C on_end's own path) or the SDK's."""
    tracer = provider.get_tracer("t")
    return make_lean(tracer) if lean else tracer


@pytest.mark.parametrize("lean", [False, True], ids=["sdk", "lean"])
def test_the_processor_writes_frees_slots_and_counts_a_full_journal(tmp_path, twins, lean):
    region = Region.create(str(tmp_path / "me.journal"), capacity=4096, slot_count=2,
                           owner=Owner(os.getpid(), 1, 1, 0, 1), resource=ship.resource_blob(RESOURCE))
    ledger = Ledger()
    instance = directory.Instance(str(tmp_path), "i")
    with Receiver() as receiver:
        processor = JournalSpanProcessor(region, instance, _exporter(receiver), ledger, schedule_delay_millis=60000,
                                         max_export_batch_size=512)
        provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
        provider.add_span_processor(processor)
        tracer = _tracer(provider, lean)
        server = tracer.start_span("GET /", kind=SpanKind.SERVER)
        assert len(list(region.slots())) == 1
        server.end()
        assert list(region.slots()) == []
        for i in range(100):  # 4 KiB holds a few dozen of these
            tracer.start_span(f"span {i}").end()
        counts = ledger.counts()
        assert counts.ended == 101 and counts.queue_full == region.dropped > 0
        assert processor.force_flush(5000) is True
        assert receiver.wait_for(lambda s: len(s) == 101 - region.dropped, 5)
        processor.shutdown()
        assert ledger.counts().exported == 101 - region.dropped


@pytest.mark.parametrize("lean", [False, True], ids=["sdk", "lean"])
def test_otel_bsp_max_queue_size_bounds_the_spans_waiting(tmp_path, twins, lean):
    region = Region.create(str(tmp_path / "me.journal"), capacity=1 << 20, slot_count=2,
                           owner=Owner(os.getpid(), 1, 1, 0, 1), resource=ship.resource_blob(RESOURCE))
    ledger = Ledger()
    processor = JournalSpanProcessor(region, directory.Instance(str(tmp_path), "i"), None, ledger,
                                     schedule_delay_millis=60000, max_export_batch_size=512, max_queue_size=60)
    provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = _tracer(provider, lean)
    for i in range(100):
        tracer.start_span(f"span {i}", context.Context()).end()  # a context: the C start takes it
    assert ledger.counts().queue_full == 40 == region.dropped
    assert processor._appended == 60 and ledger.counts().ended == 100


def test_the_shipping_thread_keeps_a_long_requests_slot_current(tmp_path, twins):
    region = Region.create(str(tmp_path / "me.journal"), capacity=65536, slot_count=2,
                           owner=Owner(os.getpid(), 1, 1, 0, 1), resource=ship.resource_blob(RESOURCE))
    processor = JournalSpanProcessor(region, directory.Instance(str(tmp_path), "i"), None, Ledger(),
                                     schedule_delay_millis=60000, max_export_batch_size=512)
    provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
    provider.add_span_processor(processor)
    span = provider.get_tracer("t").start_span("GET", kind=SpanKind.SERVER, attributes={"http.method": "GET"})
    span.set_attribute("http.route", "/item/<id>")
    processor.start()
    from otel_uwsgi.traces.journal.inflight import Request

    def current() -> Request:
        return Request.unpack(next(blob for _, blob in region.slots()))

    wait_until(lambda: current().stack, 5)
    request = current()
    assert "test_the_shipping_thread_keeps_a_long_requests_slot_current" in request.stack
    assert b"/item/<id>" in request.attributes and region.heartbeat_ns > span.start_time
    span.end()
    processor.shutdown()
    fcntl.flock(region.fd, fcntl.LOCK_UN)


def test_a_journal_whose_exit_flush_was_cut_is_left_for_the_next_start(tmp_path):
    """At the final stop the master skips a journal whose owner's own exit flush ran out of time (the
    collector already had a flush timeout); ``previous_runs`` shipping takes it later."""
    path = str(tmp_path / "cut.journal")
    _dead_journal(path, 3)
    region = Region.adopt(path)
    region.set_flags(region.flags | EXIT_FLUSHING)
    region.close()
    with Receiver() as receiver:
        skipped = adopt.ship_dead_journals([path], _exporter(receiver), batch=10, deadline=None, ack_first=True,
                                           skip_cut_exits=True)
        assert skipped.left == 1 and os.path.exists(path)
        shipped = adopt.ship_dead_journals([path], _exporter(receiver), batch=10, deadline=None, ack_first=True)
        assert receiver.wait_for(lambda s: len(s) == 3, 5)
    assert shipped.spans == 3 and not os.path.exists(path)




def _gone_pid() -> int:
    """The pid of a process that exited and was reaped (ESRCH from then on)."""
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait(30)
    return child.pid


def _opened(monkeypatch) -> list[str]:
    """The paths Region.adopt opens from now on (it still does its work)."""
    opened: list[str] = []
    real = Region.adopt
    monkeypatch.setattr(Region, "adopt", classmethod(lambda cls, path: opened.append(path) or real(path)))
    return opened


def _shipping_thread(tmp_path, receiver: Receiver) -> tuple[JournalSpanProcessor, directory.Instance]:
    """A processor of instance ``300-3`` of service ``shop`` (its thread not started: ``_adopt`` is called)."""
    instance = directory.Instance(directory.service_dir(str(tmp_path), "shop"), "300-3")
    instance.hold()
    region = Region.create(instance.journal_path("worker", os.getpid()), capacity=4096, slot_count=2,
                           owner=Owner(os.getpid(), 1, 1, 0, 1), resource=ship.resource_blob(RESOURCE))
    processor = JournalSpanProcessor(region, instance, _exporter(receiver), Ledger(), schedule_delay_millis=5000,
                                     max_export_batch_size=512)
    return processor, instance


def _close(processor: JournalSpanProcessor) -> None:
    processor.region.close(remove=True)
    os.close(processor.instance._lock_fd)


def test_the_look_once_a_second_does_not_open_a_journal_whose_pid_exists(tmp_path, monkeypatch):
    """The pre-filter skips by pid alone (this journal's lock is free, yet it stays); the lock stays the
    authority for the look once a minute, which opens every journal: it ships it."""
    with Receiver() as receiver:
        processor, instance = _shipping_thread(tmp_path, receiver)
        path = instance.journal_path("mule3", os.getpid())  # a living pid, a dead owner
        _dead_journal(path, 2)
        opened = _opened(monkeypatch)
        processor._adopt(previous_runs=False)
        assert opened == [] and os.path.exists(path)
        processor._adopt(previous_runs=True)
        assert receiver.wait_for(lambda s: len(s) == 2, 5)
    assert opened == [path] and not os.path.exists(path)
    _close(processor)


def test_the_look_once_a_second_adopts_a_journal_whose_pid_is_gone(tmp_path, monkeypatch):
    with Receiver() as receiver:
        processor, instance = _shipping_thread(tmp_path, receiver)
        path = instance.journal_path("worker", _gone_pid())
        _dead_journal(path, 3, in_flight=True)
        opened = _opened(monkeypatch)
        processor._adopt(previous_runs=False)
        assert receiver.wait_for(lambda s: len(s) == 4, 5)
        assert any(s.name == "GET /hang" and s.status_code == 2 for s in receiver.spans)
    assert opened == [path] and not os.path.exists(path)
    _close(processor)


def test_a_journal_name_without_its_owners_pid_is_opened_as_before(tmp_path, monkeypatch):
    """A journal set aside (``<kind>-<pid>-<ns>``: the pid is a later process's) or named otherwise."""
    with Receiver() as receiver:
        processor, instance = _shipping_thread(tmp_path, receiver)
        paths = sorted(os.path.join(instance.path, name)
                       for name in (f"worker-{os.getpid()}-1700000000000000000.journal", "odd.journal"))
        for path in paths:
            _dead_journal(path, 1)
        opened = _opened(monkeypatch)
        processor._adopt(previous_runs=False)
        assert receiver.wait_for(lambda s: len(s) == 2, 5)
    assert opened == paths and not any(os.path.exists(p) for p in paths)
    _close(processor)


def test_the_look_once_a_minute_ships_earlier_runs_whatever_pids_their_names_carry(tmp_path):
    """An earlier run's pid may be anyone's now: its journals are opened, as before."""
    earlier = directory.Instance(directory.service_dir(str(tmp_path), "shop"), "100-1")
    earlier.hold()
    _dead_journal(earlier.journal_path("worker", os.getpid()), 3)
    os.close(earlier._lock_fd)  # that run ended
    with Receiver() as receiver:
        processor, _ = _shipping_thread(tmp_path, receiver)
        processor._adopt(previous_runs=True)
        assert receiver.wait_for(lambda s: len(s) == 3, 5)
    assert not os.path.exists(earlier.path)
    _close(processor)


def test_owner_exists_reads_only_the_names_journal_path_makes():
    me, gone = os.getpid(), _gone_pid()
    for name in (f"worker-{me}.journal", f"mule3-{me}.journal", f"spooler-{me}.journal"):
        assert directory.owner_exists(name), name
    for name in (f"worker-{gone}.journal", f"worker-{me}-1700000000.journal", f"mule3-{me}-5.journal",
                 "worker-0.journal", f"worker-0{me}.journal", "worker-.journal", "odd.journal",
                 f"worker-{me}.journal.tmp", f"-{me}.journal", f"worker-{me}x.journal"):
        assert not directory.owner_exists(name), name


def test_process_exists_counts_zombies_and_other_users_processes(monkeypatch):
    child = subprocess.Popen([sys.executable, "-c", ""])
    try:
        def zombie() -> bool:
            with open(f"/proc/{child.pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] == "Z"

        assert wait_until(zombie, 30)
        assert directory.process_exists(child.pid)  # dead, not reaped: uWSGI's master reaps within ~1 s
    finally:
        child.wait(30)
    assert not directory.process_exists(child.pid)
    assert not directory.process_exists(1 << 40)  # beyond pid_t: no such process

    def eperm(pid: int, signal: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", eperm)
    assert directory.process_exists(4242)
