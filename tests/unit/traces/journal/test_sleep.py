"""How long the journal's shipping thread sleeps (``processor.sleep_for``): every TICK_S while a
request is in flight, else until the next thing due, never more than IDLE_SLEEP_S."""

from __future__ import annotations

import fcntl
import os

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from otel_uwsgi.tools.receiver import Receiver
from otel_uwsgi.tools.waiting import wait_until
from otel_uwsgi.traces.journal import directory, processor, ship
from otel_uwsgi.traces.journal.processor import (
    ADOPT_EVERY_S,
    IDLE_SLEEP_S,
    REFRESH_AFTER_S,
    TICK_S,
    JournalSpanProcessor,
    sleep_for,
)
from otel_uwsgi.traces.journal.region import Owner, Region
from otel_uwsgi.traces.ledger import Ledger

NOW = 1000.0


def _sleep(*, inflight: bool = False, pending: bool = False, ship_in: float = 5.0, adopt_in: float = 1.0) -> float:
    return sleep_for(NOW, inflight, pending, next_ship=NOW + ship_in, next_adopt=NOW + adopt_in)


def test_the_idle_sleep_is_longer_than_a_tick_yet_delays_no_first_refresh():
    """A request that starts during an idle sleep is refreshed by REFRESH_AFTER_S + TICK_S of its age,
    as with a tick every TICK_S (an idle worker's request killed 0.6 s in still shows its stack)."""
    assert TICK_S < IDLE_SLEEP_S <= min(ADOPT_EVERY_S, REFRESH_AFTER_S + TICK_S)


def test_requests_in_flight_tick():
    assert _sleep(inflight=True) == TICK_S
    assert _sleep(inflight=True, pending=True, ship_in=3.0, adopt_in=0.9) == TICK_S


def test_a_tick_in_flight_is_cut_short_by_what_is_due_sooner():
    assert _sleep(inflight=True, adopt_in=0.1) == pytest.approx(0.1)
    assert _sleep(inflight=True, pending=True, ship_in=0.05) == pytest.approx(0.05)


def test_idle_sleeps_until_the_next_adoption():
    assert _sleep(adopt_in=0.3) == pytest.approx(0.3)


def test_idle_never_sleeps_past_the_cap():
    assert _sleep(adopt_in=30.0, ship_in=30.0, pending=True) == IDLE_SLEEP_S
    assert _sleep(adopt_in=30.0) == IDLE_SLEEP_S


def test_pending_records_wake_the_thread_at_their_ship_time():
    assert _sleep(pending=True, ship_in=0.3, adopt_in=0.4) == pytest.approx(0.3)
    assert _sleep(pending=True, ship_in=2.0, adopt_in=0.4) == pytest.approx(0.4)


def test_without_records_the_ship_time_is_no_reason_to_wake():
    assert _sleep(pending=False, ship_in=0.3, adopt_in=0.4) == pytest.approx(0.4)


def test_overdue_work_means_no_sleep():
    assert _sleep(adopt_in=-0.5) == 0.0
    assert _sleep(pending=True, ship_in=-2.0) == 0.0
    assert _sleep(inflight=True, adopt_in=-0.1) == 0.0


def test_a_flush_and_a_stop_wake_a_sleeping_thread_at_once(tmp_path, monkeypatch):
    """With every sleep a minute long, only the wake flag can end one within the timeouts below."""
    from otel_uwsgi.export.span_exporter import FastOTLPSpanExporter

    monkeypatch.setattr(processor, "IDLE_SLEEP_S", 60.0)
    monkeypatch.setattr(processor, "ADOPT_EVERY_S", 60.0)
    resource = Resource({"service.name": "sleep-test"})
    region = Region.create(str(tmp_path / "me.journal"), capacity=65536, slot_count=2,
                           owner=Owner(os.getpid(), 1, 1, 0, 1), resource=ship.resource_blob(resource))
    with Receiver() as receiver:
        exporter = FastOTLPSpanExporter(endpoint=receiver.endpoint + "/v1/traces", timeout=5)
        journal = JournalSpanProcessor(region, directory.Instance(str(tmp_path), "i"), exporter, Ledger(),
                                       schedule_delay_millis=60000, max_export_batch_size=512)
        provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        provider.add_span_processor(journal)
        journal.start()
        thread = journal._thread
        for round_ in (1, 2):  # the second flush finds the thread in its minute-long sleep
            provider.get_tracer("t").start_span(f"span {round_}").end()
            assert journal.force_flush(5000) is True
            assert receiver.wait_for(lambda s, n=round_: len(s) == n, 5)
        journal.shutdown()
        assert wait_until(lambda: not thread.is_alive(), 5)
    fcntl.flock(region.fd, fcntl.LOCK_UN)
