"""Traces drawn as trees in the terminal, for ``otel-uwsgi demo`` and ``otel-uwsgi check --trace``.

Each span on one line: indented under its parent, its name (with the database system or URL of a
client span), kind, duration in milliseconds, the pid of the process that made it, and a bar
placed and sized on the time line of the whole trace (the root's, when it encloses the rest).
A span whose parent did not arrive is drawn at the top level, flagged ``[parent missing]``.  Pure: from received
spans (:class:`.receiver.ReceivedSpan`) to text; unit-tested without uWSGI.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Sequence
from typing import Optional

from otel_uwsgi.tools.receiver import ReceivedSpan
from otel_uwsgi.tools.verdict import child_kind

BAR = 24  # characters of the time line
NAME = 36  # characters of the indented name column (the width of the check's table in all)
LIMIT = 40  # span lines drawn per trace; the rest are counted
#: (bar, the mark of a span too short for one character, tee, last, pipe): Unicode, and plain ASCII.
_GLYPHS = {False: ("█", "▏", "├─ ", "└─ ", "│  "), True: ("#", "|", "|- ", "`- ", "|  ")}


def _detail(span: ReceivedSpan) -> str:
    """What a client span talked to: ``mysql``, ``redis``, or the URL it called."""
    kind = child_kind(span)
    attributes = span.attributes
    if kind in ("db", "cache"):
        return str(attributes.get("db.system.name", attributes.get("db.system", "")))
    if kind == "http":
        return str(attributes.get("url.full", attributes.get("http.url", ""))).partition("://")[2]
    return ""


def _label(prefix: str, span: ReceivedSpan, orphan: bool) -> str:
    """The tree, the name and detail (cut to fit :data:`NAME`), and the orphan's flag (never cut)."""
    detail = _detail(span)
    label = prefix + (f"{span.name} {detail}" if detail else span.name)
    flag = " [parent missing]" if orphan else ""
    if len(label) + len(flag) > NAME:
        label = label[: NAME - len(flag) - 1] + "~"
    return label + flag


def _bar(span: ReceivedSpan, start: int, extent: int, glyphs: tuple[str, ...]) -> str:
    """The span's bar on a line of :data:`BAR` characters covering ``start`` + ``extent`` ns."""
    offset = min(BAR - 1, max(0, round((span.start_ns - start) / extent * BAR)))
    exact = max(0, span.end_ns - span.start_ns) / extent * BAR
    length = min(BAR - offset, max(1, round(exact)))
    mark = glyphs[0] * length if exact >= 0.5 else glyphs[1]
    return (" " * offset + mark).ljust(BAR)


def _walk(spans: Sequence[ReceivedSpan]) -> list[tuple[tuple[bool, ...], ReceivedSpan, bool]]:
    """(for each level down to the span, whether it is its parent's last child; the span; orphan)
    in drawing order: roots and orphans by start time, each followed by its children, depth first.
    A span in a parent loop is drawn as an orphan."""
    ids = {s.span_id for s in spans}
    children: dict[str, list[ReceivedSpan]] = collections.defaultdict(list)
    for span in spans:
        if span.parent_span_id in ids and span.parent_span_id != span.span_id:
            children[span.parent_span_id].append(span)
    ordered = sorted(spans, key=lambda s: (s.start_ns, s.end_ns))
    tops = [s for s in ordered if s.parent_span_id not in ids or s.parent_span_id == s.span_id]
    out: list[tuple[tuple[bool, ...], ReceivedSpan, bool]] = []
    seen: set[str] = set()

    def visit(span: ReceivedSpan, lasts: tuple[bool, ...], orphan: bool) -> None:
        seen.add(span.span_id)
        out.append((lasts, span, orphan))
        kids = [k for k in sorted(children.get(span.span_id, ()), key=lambda s: (s.start_ns, s.end_ns))
                if k.span_id not in seen]
        for i, kid in enumerate(kids):
            if kid.span_id not in seen:
                visit(kid, (*lasts, i == len(kids) - 1), False)

    for top in tops:
        visit(top, (), bool(top.parent_span_id))
    for span in ordered:  # only spans whose parents form a loop are left
        if span.span_id not in seen:
            visit(span, (), True)
    return out


def _prefix(lasts: tuple[bool, ...], glyphs: tuple[str, ...]) -> str:
    """The tree drawn left of a span: a pipe under each ancestor with a later sibling, then its tee."""
    if not lasts:
        return ""
    drawn = ["   " if last else glyphs[4] for last in lasts[:-1]]
    return "".join(drawn) + (glyphs[3] if lasts[-1] else glyphs[2])


def render_trace(spans: Sequence[ReceivedSpan], *, ascii_only: bool = False, limit: int = LIMIT) -> str:
    """One trace as a tree (see the module's doc), under a header line with its trace id."""
    if not spans:
        return "(no spans)"
    glyphs = _GLYPHS[ascii_only]
    start = min(s.start_ns for s in spans)
    extent = max(1, max(s.end_ns for s in spans) - start)
    walked = _walk(spans)
    root = walked[0][1]
    pids = {s.pid for s in spans if s.pid is not None}
    ids = sorted({s.trace_id for s in spans})
    lines = [
        f"trace {', '.join(ids)}: {root.name}, {len(spans)} span{'s' if len(spans) != 1 else ''}, "
        f"{extent / 1e6:.1f} ms, {len(pids)} process{'es' if len(pids) != 1 else ''}",
        f"{'span':<{NAME}} {'kind':<8} {'ms':>7} {'pid':>7}  0{f'{extent / 1e6:.1f} ms':>{BAR - 1}}",
    ]
    for lasts, span, orphan in walked[:limit]:
        label = _label(_prefix(lasts, glyphs), span, orphan)
        ms = max(0, span.end_ns - span.start_ns) / 1e6
        pid = str(span.pid) if span.pid is not None else "-"
        bar = _bar(span, start, extent, glyphs)
        lines.append(f"{label:<{NAME}} {span.kind:<8} {ms:>7.1f} {pid:>7}  {bar}".rstrip())
    if len(walked) > limit:
        lines.append(f"... and {len(walked) - limit} more spans")
    return "\n".join(lines)


def _route(root: ReceivedSpan) -> str:
    """The route of a trace's root span: its name, with the path where the name has none."""
    path = root.attributes.get("http.route") or root.attributes.get("url.path") or root.attributes.get("http.target")
    return root.name if not path or str(path).strip("/") in root.name else f"{root.name} {path}"


def _duration(trace: Sequence[ReceivedSpan]) -> int:
    return max(s.end_ns for s in trace) - min(s.start_ns for s in trace)


def one_per_route(spans: Iterable[ReceivedSpan]) -> list[list[ReceivedSpan]]:
    """One trace per route of its root span, in the order the routes were first served: of that
    route's traces whose parents all arrived, one of the most common size (a typical request, not
    the first one with its connection set-up queries), over the most processes, of median duration."""
    traces: dict[str, list[ReceivedSpan]] = collections.defaultdict(list)
    for span in spans:
        traces[span.trace_id].append(span)
    by_route: dict[str, list[list[ReceivedSpan]]] = {}
    for trace in sorted(traces.values(), key=lambda t: min(s.start_ns for s in t)):
        ids = {s.span_id for s in trace}
        roots = [s for s in trace if not s.parent_span_id]
        if len(roots) == 1 and all(s.parent_span_id in ids for s in trace if s is not roots[0]):
            by_route.setdefault(_route(roots[0]), []).append(trace)
    chosen = []
    for candidates in by_route.values():
        size = collections.Counter(len(t) for t in candidates).most_common(1)[0][0]
        typical = [t for t in candidates if len(t) == size]
        spread = max(len({s.pid for s in t}) for t in typical)
        typical = sorted((t for t in typical if len({s.pid for s in t}) == spread), key=_duration)
        chosen.append(typical[len(typical) // 2])
    return chosen


def draw(spans: Iterable[ReceivedSpan], *, encoding: Optional[str] = "utf-8", routes: int = 5) -> str:
    """One tree per route (at most ``routes``), or a line saying no whole trace arrived; in ASCII
    where the terminal's ``encoding`` has no box-drawing characters."""
    try:
        "".join(_GLYPHS[False]).encode(encoding or "ascii")
        ascii_only = False
    except (UnicodeEncodeError, LookupError):
        ascii_only = True
    chosen = one_per_route(spans)
    if not chosen:
        return "no whole trace arrived (every trace lacks its root span or a parent)"
    drawn = [render_trace(trace, ascii_only=ascii_only) for trace in chosen[:routes]]
    if len(chosen) > routes:
        drawn.append(f"... and {len(chosen) - routes} more routes")
    return "\n\n".join(drawn)
