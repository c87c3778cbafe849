"""Waiting for a condition with a deadline, written once for the tools and the tests (never
sleep-and-hope)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Optional


def wait_until(
    predicate: Callable[[], object],
    timeout: float,
    interval: float = 0.05,
    *,
    alive: Callable[[], bool] = lambda: True,
    condition: Optional[threading.Condition] = None,
) -> bool:
    """Whether ``predicate()`` held within ``timeout`` seconds, asked every ``interval`` seconds and
    once more at the deadline.  Gives up early (False) when ``alive()`` turns false, e.g. the
    process that should make it hold has died.  With ``condition`` (which the caller holds), a
    ``notify`` wakes the wait at once instead of after ``interval``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not alive():
            return False
        if condition is None:
            time.sleep(min(interval, remaining))
        else:
            condition.wait(min(interval, remaining))
    return True
