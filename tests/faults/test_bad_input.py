"""Bad input on real uWSGI: malformed trace headers, huge headers, sampling options end to end,
and bad ini values.  A request is never refused or broken by its trace headers: it is served and
starts a fresh trace; configuration is accepted with its documented meaning or stopped with one
line, never a traceback."""

from __future__ import annotations

import http.client
import math
import os
import re
import signal
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from otel_uwsgi.tools.harness import UwsgiServer, free_port, owned_overrides, prepare_ini
from otel_uwsgi.tools.receiver import ReceivedSpan

from ..conftest import INI, ROOT, Server, wait_until

pytestmark = pytest.mark.integration

TRACE = "bad_input"
INI_PATH = re.compile(r" in \S+\.ini:")
PARENT_T = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_S = "00f067aa0ba902b7"


def _path(span: ReceivedSpan) -> str:
    return str(span.attributes.get("http.target") or span.attributes.get("url.path") or "")


def _stop_when_logged(server: Server, uri: str) -> None:
    """Stop once uWSGI has logged ``uri``: it answers first, then closes the WSGI response (which
    ends the span) and logs; a stop in between would lose that span and log line, not our point."""
    assert wait_until(lambda: f"uri={uri}\n" in server.uwsgi.log(), 10), server.uwsgi.log()[-1000:]
    server.stop()


@dataclass(frozen=True)
class Case:
    case: str
    headers: dict[str, str]
    joins: bool = False  # False: a fresh trace is expected


def _tp(case: str, make: Callable[[str, str], str], joins: bool = False) -> Case:
    t, s = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    return Case(case=case, headers={"traceparent": make(t, s)}, joins=joins)


def _trace_cases() -> list[Case]:
    t, s = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    t2, s2 = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    return [
        _tp(case="bad-input-traceparent-version-ff", make=lambda t, s: f"ff-{t}-{s}-01"),
        _tp(case="bad-input-traceparent-bad-hex", make=lambda t, s: f"00-{t[:-1]}g-{s}-01"),
        _tp(case="bad-input-traceparent-uppercase-hex", make=lambda t, s: f"00-{t.upper()}-{s.upper()}-01"),
        _tp(case="bad-input-traceparent-zero-trace-id", make=lambda t, s: f"00-{'0' * 32}-{s}-01"),
        _tp(case="bad-input-traceparent-zero-span-id", make=lambda t, s: f"00-{t}-{'0' * 16}-01"),
        _tp(case="bad-input-traceparent-trace-id-too-long", make=lambda t, s: f"00-{t}a-{s}-01"),
        _tp(case="bad-input-traceparent-span-id-too-short", make=lambda t, s: f"00-{t}-{s[:-2]}-01"),
        _tp(case="bad-input-traceparent-five-fields-v00", make=lambda t, s: f"00-{t}-{s}-01-extra"),
        _tp(case="bad-input-traceparent-three-fields", make=lambda t, s: f"00-{t}-{s}"),
        _tp(case="bad-input-traceparent-garbage", make=lambda t, s: "not a traceparent at all"),
        _tp(case="bad-input-traceparent-empty", make=lambda t, s: ""),
        _tp(case="bad-input-traceparent-2kb", make=lambda t, s: f"00-{t}-{s}-01-" + "x" * 2048),
        # W3C: a higher version with the version-00 layout is parsed (forward compatibility).
        _tp(case="bad-input-traceparent-future-version", make=lambda t, s: f"01-{t}-{s}-01", joins=True),
        Case(case="bad-input-tracestate-malformed", headers={"tracestate": "===,,,a=b=c,\x7f=1,UPPER=x"}),
        Case(case="bad-input-tracestate-huge", headers={"tracestate": ",".join(f"k{i}=v{i}" for i in range(200))}),
        Case(case="bad-input-baggage-malformed", headers={"baggage": "=;;%%%,foo,=bar;;;k=v=w"}),
        # over the W3C limits (32 tracestate members; 180 baggage entries), within uWSGI's 4 KB
        Case(case="bad-input-baggage-huge", headers={"baggage": ",".join(f"k{i}=v" for i in range(300))}),
        # A valid traceparent beside a broken tracestate / baggage is still honoured (W3C: the
        # tracestate is dropped, the parent kept).
        Case(
            case="bad-input-traceparent-valid-tracestate-malformed",
            headers={"traceparent": f"00-{t}-{s}-01", "tracestate": "===,,,"},
            joins=True,
        ),
        Case(
            case="bad-input-traceparent-valid-baggage-malformed",
            headers={"traceparent": f"00-{t2}-{s2}-01", "baggage": "=;;%%%"},
            joins=True,
        ),
    ]


def test_malformed_trace_headers_are_served_with_a_fresh_trace(start_uwsgi, receiver, outcome):
    """Every malformed traceparent / tracestate / baggage is answered 200 and traced as a new
    root (new trace id, no parent); a valid traceparent beside a broken tracestate or baggage, or
    a future version, is joined."""
    server = start_uwsgi("minimal.ini", extra={"otel-bsp-schedule-delay": "200"})
    cases = _trace_cases()
    statuses = {c.case: server.get(f"/{TRACE}/{c.case}", headers=c.headers)[0] for c in cases}
    _stop_when_logged(server, f"/{TRACE}/{cases[-1].case}")
    assert all(status == 200 for status in statuses.values()), statuses
    paths = {f"/{TRACE}/{c.case}" for c in cases}
    assert receiver.wait_for(lambda s: paths <= {_path(x) for x in s}, 10), paths - {
        _path(x) for x in receiver.snapshot()
    }
    by_path = {_path(x): x for x in receiver.server_spans()}
    fresh = sum(not c.joins for c in cases)
    for c in cases:
        span = by_path[f"/{TRACE}/{c.case}"]
        sent = c.headers.get("traceparent", "")
        if c.joins:
            t, s = sent.split("-")[1:3]
            assert (span.trace_id, span.parent_span_id) == (t, s), c.case
        else:
            ids = {i.lower() for i in re.findall(r"[0-9a-fA-F]{16,33}", sent)}
            assert span.parent_span_id == "", f"{c.case}: got a parent {span.parent_span_id}"
            assert span.trace_id not in ids and span.trace_id != "0" * 32, c.case
    for c in cases:
        outcome(
            c.case,
            group="Bad input",
            expected="served (200)"
            + (", joins the caller's trace" if c.joins else ", a fresh trace (new id, no parent)"),
            measured=f"200; {'joined the trace' if c.joins else 'new root span with a new trace id'} "
            f"({fresh} fresh and {len(cases) - fresh} joined among {len(cases)} header cases in this run)",
        )


def test_header_over_buffer_size_is_refused_by_uwsgi_and_served_when_it_fits(start_uwsgi, receiver, outcome):
    """A 6 KB header exceeds uWSGI's default buffer-size (4096): uWSGI itself drops the request
    (no HTTP answer, "invalid HTTP request size" in its log) before Python sees it, and keeps
    serving.  With buffer-size = 16384 the same request is served and traced as a fresh trace."""
    huge = {"traceparent": "00-" + "a" * 6144, "x-filler": "y" * 10}
    server = start_uwsgi("minimal.ini", workers=2, extra={"otel-bsp-schedule-delay": "200"})
    with pytest.raises(OSError):
        server.get("/huge/default", headers=huge, timeout=10)
    assert wait_until(lambda: "invalid HTTP request size" in server.uwsgi.log(), 10), server.uwsgi.log()[-1500:]
    assert server.get("/after-huge")[0] == 200
    _stop_when_logged(server, "/after-huge")
    assert receiver.wait_for(lambda s: any(_path(x) == "/after-huge" for x in s), 10)
    assert not any(_path(x) == "/huge/default" for x in receiver.snapshot())
    refused_line = next(line for line in server.uwsgi.log().splitlines() if "invalid HTTP request size" in line)

    big = start_uwsgi("minimal.ini", workers=2, extra={"buffer-size": "16384", "otel-bsp-schedule-delay": "200"})
    status = big.get("/huge/big-buffer", headers=huge)[0]
    _stop_when_logged(big, "/huge/big-buffer")
    assert status == 200
    assert receiver.wait_for(lambda s: any(_path(x) == "/huge/big-buffer" for x in s), 10)
    span = next(x for x in receiver.server_spans() if _path(x) == "/huge/big-buffer")
    assert span.parent_span_id == "" and span.trace_id != "a" * 32
    outcome(
        "bad-input-header-over-buffer-size",
        group="Bad input",
        expected="a 6 KB header over uWSGI's buffer-size (default 4096) is dropped by uWSGI itself, no span; "
        "the worker keeps serving; with buffer-size = 16384 it is served with a fresh trace",
        measured=f"default buffer: connection closed without an answer, uWSGI logged "
        f"'{refused_line.strip()[:80]}', next request 200; buffer-size 16384: 200, new root span",
    )


# ------------------------------------------------------------------------------- sampling


def _fire(server: Server, count: int, prefix: str = "/s") -> None:
    for i in range(count):
        assert server.get(f"{prefix}/{i}")[0] == 200
    assert wait_until(lambda: f"uri={prefix}/{count - 1}\n" in server.uwsgi.log(), 10)


def test_always_off_sends_nothing(start_uwsgi, receiver, outcome):
    server = start_uwsgi("minimal.ini", workers=2, extra={"otel-traces-sampler": "always_off"})
    _fire(server, 50)
    server.stop()
    served = server.uwsgi.served().total
    assert served >= 50
    assert receiver.snapshot() == [] and receiver.stats.requests == 0
    outcome(
        "sampling-always-off",
        group="Bad input",
        expected="otel-traces-sampler = always_off: requests served, no span exported",
        measured=f"{served} requests served, 0 spans, 0 export requests",
    )


def test_traceidratio_samples_about_the_ratio(start_uwsgi, receiver, outcome):
    """traceidratio 0.5 over N requests: the span count is Binomial(N, 0.5); the bound is 5 sigma."""
    n = 400
    server = start_uwsgi(
        "minimal.ini",
        workers=2,
        extra={
            "otel-traces-sampler": "traceidratio",
            "otel-traces-sampler-arg": "0.5",
            "otel-bsp-schedule-delay": "200",
        },
    )
    _fire(server, n)
    server.stop()
    spans = len([x for x in receiver.server_spans() if _path(x).startswith("/s/")])
    sigma = math.sqrt(n * 0.25)
    low, high = n / 2 - 5 * sigma, n / 2 + 5 * sigma
    assert low <= spans <= high, (spans, low, high)
    outcome(
        "sampling-traceidratio-0.5",
        group="Bad input",
        expected=f"traceidratio 0.5: about half of {n} requests traced (within 5 sigma: {low:.0f}..{high:.0f})",
        measured=f"{spans} of {n} requests traced ({spans / n:.1%})",
        spans=spans,
        requests=n,
    )


def test_parentbased_honours_the_incoming_sampled_flag(start_uwsgi, receiver, outcome):
    """parentbased_traceidratio with ratio 0: a sampled parent (flags 01) is always traced, an
    unsampled one (00) never, a request without one never (the ratio decides roots)."""
    server = start_uwsgi(
        "minimal.ini",
        workers=2,
        extra={
            "otel-traces-sampler": "parentbased_traceidratio",
            "otel-traces-sampler-arg": "0",
            "otel-bsp-schedule-delay": "200",
        },
    )
    for i in range(20):
        assert server.get(f"/pb/sampled/{i}", headers={"traceparent": f"00-{PARENT_T}-{PARENT_S}-01"})[0] == 200
        assert server.get(f"/pb/unsampled/{i}", headers={"traceparent": f"00-{PARENT_T}-{PARENT_S}-00"})[0] == 200
        assert server.get(f"/pb/root/{i}")[0] == 200
    _stop_when_logged(server, "/pb/root/19")
    assert receiver.wait_for(lambda s: sum(_path(x).startswith("/pb/sampled/") for x in s) >= 20, 10)
    paths = [_path(x) for x in receiver.server_spans()]
    sampled = sum(p.startswith("/pb/sampled/") for p in paths)
    unsampled = sum(p.startswith("/pb/unsampled/") for p in paths)
    roots = sum(p.startswith("/pb/root/") for p in paths)
    assert (sampled, unsampled, roots) == (20, 0, 0)
    assert all(x.trace_id == PARENT_T for x in receiver.server_spans())
    outcome(
        "sampling-parentbased",
        group="Bad input",
        expected="parentbased_traceidratio (ratio 0): sampled parent traced, unsampled parent and roots not",
        measured=f"20 + 20 + 20 requests: {sampled} sampled-parent, {unsampled} unsampled-parent, {roots} root spans",
    )


@pytest.mark.parametrize(
    "option, value, accepted, case",
    [
        pytest.param("otel-traces-sampler", "sometimes", "always_on, always_off, traceidratio",
                     "sampling-bad-sampler", id="sampling-bad-sampler"),
        pytest.param("otel-traces-sampler-arg", "1.5", "a number >= 0 and <= 1",
                     "sampling-bad-arg-range", id="sampling-bad-arg-range"),
        pytest.param("otel-traces-sampler-arg", "half", "a number >= 0 and <= 1",
                     "sampling-bad-arg-text", id="sampling-bad-arg-text"),
    ],
)
def test_bad_sampling_values_stop_startup_with_one_line(start_uwsgi, receiver, outcome, option, value, accepted, case):
    server = start_uwsgi("minimal.ini", workers=2, extra={option: value}, wait=False)
    assert server.uwsgi.wait(30) not in (None, 0), "uWSGI kept running with a bad sampling option"
    log = server.uwsgi.log()
    lines = [line for line in log.splitlines() if "otel-uwsgi:" in line]
    assert len(lines) == 1, lines
    assert option in lines[0] and repr(value) in lines[0] and accepted in lines[0], lines[0]
    assert "Traceback" not in log
    outcome(
        case,
        group="Bad input",
        expected=f"{option} = {value}: uWSGI stops at startup with one line, no traceback",
        measured=f"exit status {server.uwsgi.returncode}: " + INI_PATH.sub(" in <ini>:", lines[0].strip()),
    )


# ------------------------------------------------------------------------------- bad ini values


def _run_ini(tmp_path, receiver, body: bytes, env=None) -> tuple[UwsgiServer, int]:
    """Start uWSGI from ini bytes (to carry bytes that are not UTF-8); the caller stops it."""
    port = free_port()
    overrides = owned_overrides(port, receiver.endpoint, str(tmp_path / "journal"))
    text = prepare_ini(INI / "minimal.ini", {**overrides, "processes": "2"})
    environ = env or {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    server = UwsgiServer("", env=environ, cwd=str(ROOT), workdir=str(tmp_path / f"raw-{port}"))
    server.ini_path.write_bytes(text.encode() + body)
    return server.start(), port


def test_bad_ini_values_never_traceback_or_half_start(receiver, outcome, tmp_path):
    """Bytes that are not UTF-8 stop startup with one line naming the option; an empty value
    means unset (the environment, then the default, applies); a repeated option keeps its last
    value.  Never a traceback, never a uWSGI that runs with some workers untraced."""
    started: list[UwsgiServer] = []
    try:
        bad, _ = _run_ini(tmp_path, receiver, b"otel-service-name = caf\xe9\n")
        started.append(bad)
        assert bad.wait(30) not in (None, 0), "uWSGI kept running with a non-UTF-8 value"
        log = bad.log()
        lines = [line for line in log.splitlines() if "otel-uwsgi:" in line]
        assert len(lines) == 1 and "otel-service-name" in lines[0] and "not valid UTF-8" in lines[0], lines
        assert "Traceback" not in log and bad.served().total == 0

        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env["OTEL_SERVICE_NAME"] = "from-env"
        body = (
            b"otel-service-name =\n"  # empty: unset, so OTEL_SERVICE_NAME applies
            b"otel-deployment-environment = first\n"
            b"otel-deployment-environment = second\n"  # repeated: the last wins
        )
        good, port = _run_ini(tmp_path, receiver, body, env=env)
        started.append(good)
        server = Server(good, port, 2)
        assert good.wait_workers(2, 30), good.log()[-2000:]

        def ready() -> bool:
            try:
                return server.get("/", timeout=5)[0] == 200
            except (OSError, http.client.HTTPException):
                return False

        assert wait_until(ready, 30)
        server.until_every_worker_served("/")
        served = good.served()
        good.stop(signal.SIGINT)
        assert receiver.wait_for(lambda s: len(s) >= served.total, 10)
        spans = receiver.server_spans()
        assert {s.pid for s in spans} == set(served.requests), "a worker served without tracing"
        assert {s.resource["service.name"] for s in spans} == {"from-env"}
        assert {s.resource["deployment.environment.name"] for s in spans} == {"second"}
        assert "Traceback" not in good.log()
    finally:
        for s in started:
            s.stop(signal.SIGINT, kill_after=15)
    outcome(
        "bad-input-ini-values",
        group="Bad input",
        expected="ini value not UTF-8: one-line startup error naming the option; empty value: unset "
        "(environment, then default); repeated option: last value; never a traceback or a half-traced uWSGI",
        measured=f"non-UTF-8: exit {bad.returncode}, '{INI_PATH.sub(' in <ini>:', lines[0].strip())}'; "
        "empty + repeated: "
        f"{len(spans)} spans from all {len(served.requests)} workers with service.name from the environment "
        "and the last deployment environment",
    )


def test_environment_value_not_utf8_is_ignored_with_a_warning(start_uwsgi, receiver, outcome):
    """OTEL_SERVICE_NAME holding bytes that are not UTF-8: one warning, the default applies and
    spans export (accepted as is, the value made every export fail)."""
    environ = {"OTEL_SERVICE_NAME": os.fsdecode(b"caf\xe9")}
    server = start_uwsgi("minimal.ini", workers=2, extra={"otel-service-name": ""}, env=environ)
    server.hammer("/", 10)
    assert wait_until(lambda: server.uwsgi.served().total >= 10, 10)
    server.stop()
    served = server.uwsgi.served().total
    assert receiver.wait_for(lambda s: len(s) >= served, 10)
    log = server.uwsgi.log()
    assert "ignoring invalid environment variable OTEL_SERVICE_NAME: not valid UTF-8" in log
    assert {s.resource["service.name"] for s in receiver.snapshot()} == {"unknown_service"}
    outcome(
        "bad-input-env-not-utf8",
        group="Bad input",
        expected="an OTEL_* variable that is not valid UTF-8: one warning, default used, spans exported",
        measured=f"{served} requests, {len(receiver.server_spans())} spans with service.name unknown_service; "
        "one warning per process",
    )
