"""The trace tree of `otel-uwsgi demo` and `otel-uwsgi check --trace`, drawn from constructed spans."""

from __future__ import annotations

from otel_uwsgi.tools.harness import Served
from otel_uwsgi.tools.load import progress_line
from otel_uwsgi.tools.receiver import ReceivedSpan
from otel_uwsgi.tools.trace_tree import BAR, draw, one_per_route, render_trace

TRACE = "ab" * 16
MS = 1_000_000


def span(span_id: str, parent: str = "", *, name: str = "", kind: str = "CLIENT", start: float = 0, end: float = 0,
         pid: int = 101, trace: str = TRACE, **attributes: object) -> ReceivedSpan:
    return ReceivedSpan(
        name=name or span_id, kind=kind, trace_id=trace, span_id=span_id, parent_span_id=parent,
        attributes=dict(attributes), resource={"process.pid": pid}, scope="test", status_code=0, events=(),
        start_ns=int(start * MS), end_ns=int(end * MS),
    )


def whole(trace: str = TRACE, downstream_pid: int = 102, end: float = 10.0) -> list[ReceivedSpan]:
    """A demo /trace request: server, query, Redis, a call and the downstream server it reached;
    listed children first, so the parents come out of order."""
    return [
        span("d", "c", name="GET /downstream", kind="SERVER", start=5, end=7, pid=downstream_pid, trace=trace),
        span("c", "s", name="GET", start=4, end=8, trace=trace, **{"url.full": "http://127.0.0.1:8000/downstream",
                                                                   "http.request.method": "GET"}),
        span("r", "s", name="GET", start=2, end=3, trace=trace, **{"db.system": "redis"}),
        span("q", "s", name="SELECT", start=1, end=2, trace=trace, **{"db.system.name": "mysql"}),
        span("s", name="GET /trace", kind="SERVER", start=0, end=end, trace=trace, **{"http.route": "/trace"}),
    ]


def rows(text: str) -> list[str]:
    return text.splitlines()[2:]


def test_a_whole_trace_is_a_tree_in_start_order_under_its_trace_id():
    text = render_trace(whole())
    header, columns, *lines = text.splitlines()
    assert header == f"trace {TRACE}: GET /trace, 5 spans, 10.0 ms, 2 processes"
    assert columns.split()[:4] == ["span", "kind", "ms", "pid"] and columns.endswith("10.0 ms")
    names = [line[:36].rstrip() for line in lines]
    assert names == ["GET /trace", "├─ SELECT mysql", "├─ GET redis", "└─ GET 127.0.0.1:8000/downstream",
                     "   └─ GET /downstream"]
    assert lines[0].split()[2:5] == ["SERVER", "10.0", "101"]
    assert lines[4].split()[3:6] == ["SERVER", "2.0", "102"]  # the downstream worker's pid


def bars(text: str) -> list[str]:
    """Each span's time line: the columns under the header's ``0 ... N ms``."""
    columns = text.splitlines()[1]
    at = columns.index("pid") + len("pid  ")
    assert columns[at] == "0"
    return [line[at:].ljust(BAR) for line in rows(text)]


def test_bars_are_placed_and_sized_on_the_roots_time_line():
    server, query, redis, call, downstream = bars(render_trace(whole()))
    assert server == "█" * BAR
    assert call == " " * round(4 / 10 * BAR) + "█" * round(4 / 10 * BAR) + " " * (BAR - 2 * round(4 / 10 * BAR))
    assert downstream.index("█") == round(5 / 10 * BAR) and downstream.count("█") == round(2 / 10 * BAR)
    assert query.index("█") < redis.index("█") < call.index("█")


def test_a_span_whose_parent_did_not_arrive_is_drawn_at_the_top_and_flagged():
    spans = [s for s in whole() if s.span_id != "c"]  # the client span of the call is missing
    lines = rows(render_trace(spans))
    orphan = [line for line in lines if "GET /downstream" in line]
    assert len(orphan) == 1 and orphan[0].split()[:5] == ["GET", "/downstream", "[parent", "missing]", "SERVER"]
    assert all(not line.startswith("GET /downstream") for line in lines[:3])  # after the root's subtree (by start)


def test_zero_duration_spans_and_a_zero_length_trace_still_draw():
    spans = [span("s", name="root", kind="SERVER", start=3, end=3), span("k", "s", name="mark", start=3, end=3)]
    lines = rows(render_trace(spans))
    assert [line.split()[2:4] for line in lines[:1]] + [line.split()[3:5] for line in lines[1:]] == [
        ["0.0", "101"], ["0.0", "101"]]
    assert [bar.strip() for bar in bars(render_trace(spans))] == ["▏", "▏"]


def test_ascii_and_a_parent_loop():
    spans = [span("a", "b", start=0, end=2), span("b", "a", start=1, end=2)]  # neither is a root
    text = render_trace(spans, ascii_only=True)
    assert text.isascii() and "[parent missing]" in text and len(rows(text)) == 2
    assert draw(whole(), encoding="ascii").isascii()


def test_one_typical_whole_trace_per_route():
    slow_first = whole("01" * 16, end=30) + [span("x", "s", name="SET NAMES", trace="01" * 16, start=0, end=1)]
    same_pid = whole("02" * 16, downstream_pid=101)
    typical = [whole(f"{i:02x}" * 16, end=10 + i) for i in (3, 4, 5)]
    fragment = [span("z", "gone", name="GET /elsewhere", kind="SERVER", trace="09" * 16)]
    lone = [span("o", name="GET /other", kind="SERVER", trace="0a" * 16, start=50, end=51)]
    spans = [s for t in (slow_first, same_pid, *typical, fragment, lone) for s in t]
    chosen = one_per_route(spans)
    assert [t[0].trace_id for t in chosen] == ["04" * 16, "0a" * 16]  # 5 spans, 2 pids, the median duration
    assert draw(fragment).startswith("no whole trace arrived")


def test_the_progress_line_never_reads_like_a_failure():
    served = Served(spawned={11: 1, 12: 2}, requests={11: 30, 12: 10})
    assert progress_line(Served(), 4, 0) == "running: 0/4 workers served 0 requests"
    line = progress_line(served, 4, 0)
    assert line == "running: 2/4 workers served 40 requests; server spans: 40 queued in the workers, sent at stop"
    assert progress_line(served, 4, 25).endswith("25 exported, 15 queued in the workers (sent at stop)")
