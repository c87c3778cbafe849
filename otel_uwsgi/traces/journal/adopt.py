"""Shipping a journal whose process died: its records, then the requests it died in.

Whoever holds a dead journal's lock ships it (a successor worker, any living worker, the master
at the final shutdown, or the next run): its records in batches under the dead process's own
resource, then one ERROR span per busy slot, then the file is removed.  A batch is acknowledged
in the file after the collector answered, so an adopter that dies mid-way leaves the rest to the
next one; at exit (``ack_first``) a batch is acknowledged before it is sent, so a POST cut short
by the exit can never be sent a second time.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from otel_uwsgi.traces.journal import directory, ship
from otel_uwsgi.traces.journal.inflight import Request, dead_span_field, death_of
from otel_uwsgi.traces.journal.region import EXIT_FLUSHING, NotAJournal, Region

logger = logging.getLogger(__name__)


@dataclass
class Shipped:
    """What shipping journals achieved."""

    journals: int = 0
    spans: int = 0  # records the collector took
    failed: int = 0  # records it refused or that could not be sent
    died_in: list[str] = field(default_factory=list)  # the causes of the requests in flight
    torn: int = 0
    left: int = 0  # journals left for later (the deadline came first)

    def add(self, other: Shipped) -> None:
        self.journals += other.journals
        self.spans += other.spans
        self.failed += other.failed
        self.died_in += other.died_in
        self.torn += other.torn
        self.left += other.left


def ship_records(
    region: Region, exporter: Any, *, batch: int, deadline: Optional[float], ack_first: bool, result: Shipped
) -> set[int]:
    """Ship ``region``'s unacknowledged records; returns the span ids seen (ended spans)."""
    seen: set[int] = set()
    tail, head = region.pending()
    while tail < head:
        if deadline is not None and time.monotonic() >= deadline:
            break
        records, after, problem = region.read(tail, head, batch)
        if records:
            seen.update(span_id for span_id, _ in records)
            data = ship.body(region.resource, [payload for _, payload in records])
            if ack_first:
                region.ack(after)
            sent = ship.send(exporter, data, len(records))
            region.ack(after)
            if sent:
                result.spans += len(records)
            else:
                result.failed += len(records)
        tail = after
        if problem is not None:
            result.torn += 1
            logger.warning("otel-uwsgi: skipping the rest of %s: %s", region.path, problem)
            region.ack(head)
            break
    return seen


def ship_dead(region: Region, exporter: Any, *, batch: int, deadline: Optional[float], ack_first: bool) -> Shipped:
    """Ship everything a dead process left in ``region``; removes the file when all of it went."""
    result = Shipped(journals=1)
    seen = ship_records(region, exporter, batch=batch, deadline=deadline, ack_first=ack_first, result=result)
    tail, head = region.pending()
    if tail < head:
        result.left = 1
        region.close()
        return result
    owner = region.owner
    payloads, indexes = [], []
    for index, blob in region.slots():
        indexes.append(index)
        if blob is None:
            result.torn += 1
            logger.warning("otel-uwsgi: skipping a torn in-flight request slot in %s", region.path)
            continue
        try:
            request = Request.unpack(blob)
        except ValueError as error:
            result.torn += 1
            logger.warning("otel-uwsgi: skipping an unreadable in-flight request slot in %s (%s)", region.path, error)
            continue
        if request.span_id in seen:  # it ended and was written just before the death
            continue
        death = death_of(
            request, heartbeat_ns=region.heartbeat_ns, harakiri_s=owner.harakiri_s, pid=owner.pid,
            worker_id=owner.worker_id,
        )
        payloads.append(request.scope + dead_span_field(request, death))
        result.died_in.append(death.message)
    if payloads:
        sent = ship.send(exporter, ship.body(region.resource, payloads), len(payloads))
        if sent:
            result.spans += len(payloads)
        else:
            result.failed += len(payloads)
    for index in indexes:
        region.clear_slot(index)
    region.close(remove=True)
    return result


def ship_dead_journals(
    paths: list[str], exporter: Any, *, batch: int, deadline: Optional[float], ack_first: bool, skip: str = "",
    skip_cut_exits: bool = False,
) -> Shipped:
    """Ship every journal among ``paths`` whose owner is dead (others are left alone);
    ``skip_cut_exits``: not those whose owner's own exit flush ran out of time (at a stop, the
    collector already had a flush timeout to answer; the next start ships them)."""
    total = Shipped()
    for path in paths:
        if path == skip:
            continue
        if deadline is not None and time.monotonic() >= deadline:
            total.left += 1
            continue
        try:
            region = Region.adopt(path)
        except NotAJournal as error:
            logger.warning("otel-uwsgi: %s is not a journal this otel-uwsgi can read (%s); removing it", path, error)
            _remove(path)
            continue
        except (OSError, ValueError) as error:
            logger.debug("otel-uwsgi: could not open %s: %s", path, error)
            continue
        if region is None:
            continue
        if skip_cut_exits and region.flags & EXIT_FLUSHING:
            total.left += 1
            region.close()
            continue
        try:
            shipped = ship_dead(region, exporter, batch=batch, deadline=deadline, ack_first=ack_first)
        except Exception:  # noqa: BLE001 - one bad journal never stops the others
            logger.exception("otel-uwsgi: error while shipping %s", path)
            continue
        _report(region, shipped)
        total.add(shipped)
    return total


def ship_instance(
    instance: directory.Instance, exporter: Any, *, batch: int, deadline: Optional[float], ack_first: bool,
    skip: str = "", previous_runs: bool = True, skip_cut_exits: bool = False,
) -> Shipped:
    """Ship the dead journals of ``instance``, and (``previous_runs``) of the service's earlier runs."""
    total = ship_dead_journals(
        instance.journals(), exporter, batch=batch, deadline=deadline, ack_first=ack_first, skip=skip,
        skip_cut_exits=skip_cut_exits,
    )
    if previous_runs:
        for path in instance.previous_runs():
            total.add(
                ship_dead_journals(directory.journals_in(path), exporter, batch=batch, deadline=deadline,
                                   ack_first=ack_first)
            )
            directory.remove_if_empty(path)
    return total


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _report(region: Region, shipped: Shipped) -> None:
    owner = region.owner
    who = f"worker {owner.worker_id} (pid {owner.pid})" if owner.worker_id > 0 else f"pid {owner.pid}"
    if not (shipped.spans or shipped.failed or shipped.died_in):
        logger.debug("otel-uwsgi: %s left an empty journal", who)
        return
    logger.info(
        "otel-uwsgi: shipped %d span(s) that %s left (%d not delivered)%s",
        shipped.spans,
        who,
        shipped.failed,
        "".join(f"; a request in flight: {cause}" for cause in shipped.died_in),
    )
