"""Where the fast path is the default, and where the stock instrumentation traces instead with one
line naming why: releases outside the verified range, options only the stock one runs, an
unverified semantic-conventions mode, an SDK the lean start does not know."""

from __future__ import annotations

import logging

import pytest

from otel_uwsgi.instrumentation import registry
from otel_uwsgi.instrumentation.fast import verified


@pytest.mark.parametrize(
    "release, minor",
    [("0.66b1", (0, 66)), ("2.9.13 (dt dec pq3 ext lo64)", (2, 9)), ("6.1", (6, 1)), ("4.2.27", (4, 2)), ("3", (3,))],
)
def test_minor_reads_major_and_minor_of_any_release_string(release, minor):
    assert verified._minor(release) == minor


@pytest.mark.parametrize(
    "name, release, word",
    [
        ("django", "4.1.13", "older"),
        ("django", "6.2", "newer"),
        ("opentelemetry-instrumentation-django", "0.62b0", "older"),
        ("opentelemetry-instrumentation-django", "0.67b0", "newer"),
        ("psycopg2", "3.0.0", "newer"),
        ("opentelemetry_instrumentation_dbapi", "0.70b0", "newer"),
    ],
)
def test_a_release_outside_the_verified_range_is_a_reason_naming_it(name, release, word):
    problem = verified.release_problem(name, release)
    assert problem is not None and word in problem and release in problem
    oldest, newest = verified.VERIFIED[verified.canonical(name)]
    assert f"({oldest} to {newest})" in problem


@pytest.mark.parametrize("name, release", [("django", "4.2"), ("django", "6.1.3"), ("psycopg", "3.3.9")])
def test_a_release_inside_the_range_is_no_reason(name, release):
    assert verified.release_problem(name, release) is None


def test_a_package_never_compared_is_a_reason():
    problem = verified.release_problem("opentelemetry-instrumentation-mysqlclient", "0.60b0")
    assert problem == "its spans were never compared with opentelemetry-instrumentation-mysqlclient's"


def test_the_installed_releases_decide_the_path(caplog):
    """With the releases installed here (CI runs the newest, the fast path's floor and the oldest
    supported line): inside the verified range Django takes the fast path silently; outside it
    the stock instrumentation traces and the one line names the release."""
    stock = "opentelemetry-instrumentation-django"
    problem = verified.release_problem(stock) or verified.release_problem("django")
    with caplog.at_level(logging.INFO, logger="otel_uwsgi.instrumentation"):
        scope = registry._fast_scope("django", registry.entry_points.installed()["django"], {})
    if problem is None:
        assert scope == verified.stock_scope(stock) and not caplog.records
    else:
        assert scope is None and caplog.records[0].getMessage().endswith(problem)


def test_options_for_the_stock_instrumentation_are_a_reason_naming_them():
    assert verified.options_problem("django", {}) is None
    problem = verified.options_problem("django", {"response_hook": print, "request_hook": print})
    assert problem == (
        "instrumentation_options('django', ...) gives request_hook, response_hook, which only the stock one runs"
    )


@pytest.mark.parametrize("opt_in", ["", "http", "http/dup,database/dup", "database"])
def test_the_compared_semconv_modes_are_no_reason(monkeypatch, opt_in):
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", opt_in)
    _reset_semconv(monkeypatch)
    assert verified.mode_problem() is None


def test_an_uncompared_semconv_mode_is_a_reason(monkeypatch):
    from opentelemetry.instrumentation._semconv import _StabilityMode

    monkeypatch.setattr(verified, "VERIFIED_MODES", tuple(m for m in verified.VERIFIED_MODES if m != "HTTP_DUP"))
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http/dup")
    _reset_semconv(monkeypatch)
    problem = verified.mode_problem()
    assert problem is not None and str(_StabilityMode.HTTP_DUP) in problem and "http" in problem


def _reset_semconv(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.instrumentation._semconv import _OpenTelemetrySemanticConventionStability as Stability

    monkeypatch.setattr(Stability, "_initialized", False)
    monkeypatch.setattr(Stability, "_OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING", {})


def test_the_installed_sdk_is_no_reason_and_a_changed_one_is(monkeypatch):
    assert verified.sdk_problem() is None
    from otel_uwsgi.traces.lean import tracer

    monkeypatch.setattr(tracer, "_RANDOM_TRACE_ID", 0)  # opentelemetry-api before 1.42
    assert verified.sdk_problem() == (
        "in the installed opentelemetry-sdk, its TraceFlags have no RANDOM_TRACE_ID (opentelemetry-api before 1.42)"
    )
    monkeypatch.setattr(tracer, "CONTEXT_AS_TUPLE", False)
    assert verified.sdk_problem() == (
        "in the installed opentelemetry-sdk, its SpanContext is not the tuple the lean start builds"
    )


def test_a_failure_while_deciding_leaves_the_stock_instrumentation(monkeypatch, caplog):
    """Whatever breaks while the fast path is weighed (an SDK it cannot even load with), the stock
    instrumentation traces: never no instrumentation at all."""

    def broken() -> None:
        raise AttributeError("type object 'TraceFlags' has no attribute 'RANDOM_TRACE_ID'")

    monkeypatch.setattr(verified, "sdk_problem", broken)
    monkeypatch.setattr("otel_uwsgi.instrumentation.missing._fast_told", False)
    with caplog.at_level(logging.INFO, logger="otel_uwsgi.instrumentation"):
        assert registry._fast_scope("django", registry.entry_points.installed()["django"], {}) is None
    assert "the stock instrumentations trace instead" in caplog.text and "RANDOM_TRACE_ID" in caplog.text


def test_the_fast_path_reports_the_stock_scope():
    from opentelemetry.instrumentation.django.version import __version__

    assert verified.stock_scope("opentelemetry-instrumentation-django") == (
        "opentelemetry.instrumentation.django",
        __version__,
    )


def test_out_of_range_django_gives_the_stock_instrumentation_and_one_info_line(monkeypatch, caplog):
    """The registry's decision: Django newer than verified -> no fast scope, one line saying why."""
    monkeypatch.setitem(verified.VERIFIED, "django", ("3.2", "3.2"))
    entry_point = registry.entry_points.installed()["django"]
    with caplog.at_level(logging.INFO, logger="otel_uwsgi.instrumentation"):
        assert registry._fast_scope("django", entry_point, {}) is None
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith(
        "otel-uwsgi: django is traced by its stock instrumentation, not the fast path: django "
    )
    assert "is newer than the fast path was verified with (3.2 to 3.2)" in lines[0]


def test_in_range_gives_the_fast_scope_silently(caplog):
    entry_point = registry.entry_points.installed()["django"]
    with caplog.at_level(logging.INFO, logger="otel_uwsgi.instrumentation"):
        scope = registry._fast_scope("django", entry_point, {})
    assert scope == verified.stock_scope("opentelemetry-instrumentation-django") and not caplog.records


def test_sqlcommenter_on_django_sends_the_queries_to_the_stock_instrumentation(monkeypatch, caplog):
    monkeypatch.setitem(registry._options, "django", {"is_sql_commentor_enabled": True})
    with caplog.at_level(logging.INFO, logger="otel_uwsgi.instrumentation"):
        assert registry._fast_scope("sqlite3", None, {}) is None
    assert "sqlite3 is traced by its stock instrumentation" in caplog.text and "sqlcommenter" in caplog.text


def test_metrics_on_keep_django_on_the_stock_instrumentation(monkeypatch, caplog):
    """With otel-metrics-exporter on, Django's HTTP server metrics come only from the stock
    instrumentation (the Django fast path records none): it traces, and the line says why."""
    monkeypatch.setattr(registry, "_metrics", True)
    with caplog.at_level(logging.INFO, logger="otel_uwsgi.instrumentation"):
        assert registry._fast_scope("django", registry.entry_points.installed()["django"], {}) is None
        assert registry._fast_scope("sqlite3", None, {}) is not None  # the queries stay on the fast path
    assert "django is traced by its stock instrumentation" in caplog.text and "otel-metrics-exporter" in caplog.text


def test_metrics_or_header_capture_keep_requests_on_the_stock_instrumentation(monkeypatch, caplog):
    """The requests fast path records no client duration metrics and captures no headers: with
    otel-metrics-exporter on, or client header capture set, the stock one traces, and says why."""
    entry_point = registry.entry_points.installed().get("requests")
    if entry_point is None:
        pytest.skip("opentelemetry-instrumentation-requests is not installed")
    if verified.release_problem("opentelemetry-instrumentation-requests") or verified.release_problem("requests"):
        pytest.skip("the requests fast path is off here for its releases")
    assert registry._fast_scope("requests", entry_point, {}) == verified.stock_scope(
        "opentelemetry-instrumentation-requests"
    )
    monkeypatch.setattr(registry, "_metrics", True)
    with caplog.at_level(logging.INFO, logger="otel_uwsgi.instrumentation"):
        assert registry._fast_scope("requests", entry_point, {}) is None
    assert "requests is traced by its stock instrumentation" in caplog.text and "duration metrics" in caplog.text
    monkeypatch.setattr(registry, "_metrics", False)
    caplog.clear()
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE", "content-type")
    with caplog.at_level(logging.INFO, logger="otel_uwsgi.instrumentation"):
        assert registry._fast_scope("requests", entry_point, {}) is None
    assert "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE is set" in caplog.text
