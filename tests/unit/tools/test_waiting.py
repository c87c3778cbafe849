"""The one wait-until-deadline helper of the tools and the tests."""

from __future__ import annotations

import threading
import time

from otel_uwsgi.tools.waiting import wait_until


def test_true_as_soon_as_the_predicate_holds():
    calls = []
    assert wait_until(lambda: calls.append(1) or len(calls) >= 3, 5, interval=0.001)
    assert len(calls) == 3


def test_false_at_the_deadline_after_a_last_look():
    calls = []
    started = time.monotonic()
    assert not wait_until(lambda: calls.append(time.monotonic()) and False, 0.2, interval=0.05)
    assert 0.2 <= time.monotonic() - started < 1.0
    assert calls[-1] - started >= 0.2  # the predicate was asked once more at the deadline


def test_gives_up_when_what_should_make_it_hold_is_gone():
    started = time.monotonic()
    assert not wait_until(lambda: False, 30, interval=0.01, alive=lambda: time.monotonic() - started < 0.1)
    assert time.monotonic() - started < 5


def test_a_notify_wakes_a_wait_on_a_condition():
    condition = threading.Condition()
    box: list[int] = []

    def put() -> None:
        time.sleep(0.1)
        with condition:
            box.append(1)
            condition.notify_all()

    threading.Thread(target=put).start()
    started = time.monotonic()
    with condition:
        assert wait_until(lambda: box, 10, interval=5, condition=condition)
    assert time.monotonic() - started < 4  # woken by the notify, not after the 5 s interval
