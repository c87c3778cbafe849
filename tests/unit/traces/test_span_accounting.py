"""Span accounting: every ended span is exported or counted as dropped, with a reason."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_uwsgi.tools.waiting import wait_until
from otel_uwsgi.traces.flush import shutdown_bounded
from otel_uwsgi.traces.ledger import Ledger
from otel_uwsgi.traces.processor import CountingBatchSpanProcessor, mute_sdk_queue_full_warning


class Collector(SpanExporter):
    """An in-process exporter whose answer the test controls."""

    def __init__(self, result: SpanExportResult = SpanExportResult.SUCCESS) -> None:
        self.result, self.received, self.answered, self.release = result, 0, 0, threading.Event()
        self.release.set()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait()
        if self.result is SpanExportResult.SUCCESS:
            self.received += len(spans)
        self.answered += 1
        return self.result


def provider_with(exporter: SpanExporter, ledger: Ledger, **kwargs: int) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({}), shutdown_on_exit=False)
    provider.add_span_processor(CountingBatchSpanProcessor(exporter, ledger, **kwargs))
    return provider


def end_spans(provider: TracerProvider, n: int) -> None:
    tracer = provider.get_tracer("test")
    for i in range(n):
        tracer.start_span(f"s{i}").end()


def test_exported_spans_are_counted_and_nothing_is_dropped():
    """A healthy collector: ended == exported after shutdown, no drop, no warning."""
    ledger, collector = Ledger(), Collector()
    provider = provider_with(collector, ledger)
    end_spans(provider, 300)
    assert shutdown_bounded(provider, 5, ledger)
    counts = ledger.counts()
    assert (counts.ended, counts.exported, counts.dropped, counts.pending) == (300, 300, 0, 0)
    assert collector.received == 300


def test_failed_exports_are_counted_with_one_warning(caplog: pytest.LogCaptureFixture):
    """A collector that refuses: each batch is counted as export_failed; the first drop warns once."""
    caplog.set_level(logging.WARNING, logger="otel_uwsgi")
    ledger = Ledger(interval_s=3600)
    provider = provider_with(Collector(SpanExportResult.FAILURE), ledger, max_export_batch_size=10)
    end_spans(provider, 55)
    shutdown_bounded(provider, 5, ledger)
    counts = ledger.counts()
    assert (counts.ended, counts.exported, counts.export_failed) == (55, 0, 55)
    rate_limited = [r for r in caplog.records if "since the last report" in r.getMessage()]
    assert len(rate_limited) == 1 and "export failed" in rate_limited[0].getMessage()
    summary = [r.getMessage() for r in caplog.records if "exiting" in r.getMessage()]
    assert summary and "55 of 55 span(s) were not delivered" in summary[0]


def test_full_queue_drops_are_counted_not_logged_per_span(caplog: pytest.LogCaptureFixture):
    """With the export thread stuck, spans beyond the queue size are counted as queue_full and the
    SDK's one-line-per-span warning is muted."""
    caplog.set_level(logging.WARNING)
    mute_sdk_queue_full_warning()
    ledger, collector = Ledger(interval_s=3600), Collector()
    collector.release.clear()  # the first export blocks
    provider = provider_with(collector, ledger, max_queue_size=50, max_export_batch_size=10, schedule_delay_millis=1)
    end_spans(provider, 500)
    counts = ledger.counts()
    assert counts.queue_full >= 500 - 50 - 10  # at most one batch left the queue for the stuck export
    assert not [r for r in caplog.records if r.getMessage().startswith("Queue full")]
    assert len([r for r in caplog.records if "since the last report" in r.getMessage()]) == 1
    collector.release.set()
    shutdown_bounded(provider, 5, ledger)
    counts = ledger.counts()
    assert counts.exported + counts.dropped == counts.ended == 500
    assert collector.received == counts.exported


def test_spans_still_queued_at_the_deadline_are_counted_as_exit_timeout():
    """The exit flush gives up at its deadline; what was still queued is counted, not lost silently."""
    ledger, collector = Ledger(), Collector()
    collector.release.clear()
    provider = provider_with(collector, ledger, schedule_delay_millis=60_000)
    end_spans(provider, 40)
    assert not shutdown_bounded(provider, 0.3, ledger)
    counts = ledger.counts()
    assert counts.exit_timeout == 40 and counts.pending == 0
    collector.release.set()


@pytest.mark.parametrize("answer", [SpanExportResult.FAILURE, SpanExportResult.SUCCESS])
def test_a_batch_in_flight_at_the_deadline_is_counted_once(answer: SpanExportResult):
    """The export thread answers for the batch it held after the exit flush gave up on it: the books
    closed at the deadline do not count those spans again (more dropped than ended)."""
    ledger, collector = Ledger(), Collector(answer)
    collector.release.clear()
    provider = provider_with(collector, ledger, max_export_batch_size=16, schedule_delay_millis=10)
    end_spans(provider, 16)  # one batch, handed to the (blocked) collector

    def handed() -> bool:
        return ledger.counts().pending == 16 and ledger.queue_len is not None and ledger.queue_len() == 0

    assert wait_until(handed, 5.0, 0.01)
    end_spans(provider, 5)  # and five more still queued
    assert not shutdown_bounded(provider, 0.3, ledger)
    at_deadline = ledger.counts()
    assert (at_deadline.ended, at_deadline.exit_timeout, at_deadline.dropped) == (21, 21, 21)
    collector.release.set()
    assert wait_until(lambda: collector.answered >= 1, 5.0, 0.01)
    assert ledger.counts() == at_deadline
    assert ledger.counts().dropped + ledger.counts().exported == 21


def test_unsampled_spans_are_not_counted():
    """Only spans that reach the queue count: an unsampled span is not 'ended' here."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    ledger = Ledger()
    provider = TracerProvider(sampler=ALWAYS_OFF, shutdown_on_exit=False)
    provider.add_span_processor(CountingBatchSpanProcessor(Collector(), ledger))
    end_spans(provider, 10)
    shutdown_bounded(provider, 5, ledger)
    assert ledger.counts().ended == 0


def test_counts_are_read_without_the_counters_pickle_support():
    """``itertools.count`` lost ``__reduce__`` in Python 3.14 (deprecated, with a warning, since
    3.12): reading the ledger must not rely on it, or ``span.end()`` would raise on the request path."""
    import warnings

    ledger = Ledger()
    for _ in range(1234):
        ledger.ended()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ledger.counts().ended == 1234


class Raising(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        raise TypeError("compress() takes at most 2 arguments (3 given)")


def test_an_exporter_exception_is_named_once_and_not_blamed_on_the_collector(caplog: pytest.LogCaptureFixture):
    """An exception inside the export (a library or Python mismatch) is logged once with its type,
    and the drop warning does not send the user to the collector."""
    caplog.set_level(logging.WARNING, logger="otel_uwsgi")
    ledger = Ledger(interval_s=0)
    provider = provider_with(Raising(), ledger, max_export_batch_size=5, schedule_delay_millis=10)
    end_spans(provider, 20)
    shutdown_bounded(provider, 5, ledger)
    assert ledger.counts().export_failed == 20
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    errors = [m for level, m in messages if level == logging.ERROR and "span exporter raised" in m]
    assert len(errors) == 1 and "TypeError" in errors[0] and "not the collector's answer" in errors[0]
    drops = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert drops and not any("collector refused" in d for d in drops)


def test_without_the_sdks_queue_no_drop_is_invented():
    """An SDK that keeps its batch queue elsewhere: spans not yet exported read as pending, not as
    queue-full drops; an exit that gives up counts them as lost then, and the books balance."""
    ledger = Ledger()
    assert ledger.queue_len is None  # until a processor finds the queue
    for _ in range(10):
        ledger.ended()
    ledger.handed(4)
    ledger.exported(4)
    counts = ledger.counts()
    assert (counts.queue_full, counts.pending, counts.dropped) == (0, 6, 0)
    assert ledger.give_up() == 6
    counts = ledger.counts()
    assert (counts.exit_timeout, counts.dropped, counts.exported + counts.dropped) == (6, 6, 10)


def test_this_sdks_queue_is_found():
    processor = CountingBatchSpanProcessor(Collector(), Ledger())
    assert processor.counts_queue_full
    processor.shutdown()


def test_the_collector_is_down_from_a_failed_export_until_one_succeeds():
    """What lets a stop skip waiting out the flush timeout: the last export failed, none since."""
    ledger = Ledger(interval_s=3600)
    assert not ledger.collector_down()
    ledger.failed(3)
    assert ledger.collector_down()
    ledger.exported(2)
    assert not ledger.collector_down()


def test_the_sdks_own_processor_metrics_count_what_a_full_queue_drops(monkeypatch):
    """With OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED, the SDK's processor metric counts the spans a
    full queue drops although otel-uwsgi drops them itself (the same number as its ledger)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    ledger, collector = Ledger(interval_s=3600), Collector()
    collector.release.clear()
    provider = TracerProvider(shutdown_on_exit=False)
    try:
        processor = CountingBatchSpanProcessor(
            collector, ledger, max_queue_size=10, max_export_batch_size=5, meter_provider=meters
        )
    except TypeError:
        pytest.skip("this SDK's batch processor has no processor metrics")
    provider.add_span_processor(processor)
    end_spans(provider, 60)
    dropped = ledger.counts().queue_full
    assert dropped > 0
    points = [
        point
        for metric in reader.get_metrics_data().resource_metrics[0].scope_metrics[0].metrics
        for point in metric.data.data_points
        if point.attributes.get("error.type") == "queue_full"
    ]
    assert sum(p.value for p in points) == dropped
    collector.release.set()
    shutdown_bounded(provider, 5, ledger)
