"""Medians over rounds, the markdown tables and the issue's targets beside the measurements.

The targets are printed for reading, never asserted: these machines drift by up to 50% within
minutes, so CPU per request (and its ratio to ``plain`` within the same round) is the primary
figure, and every figure is a median over rounds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from typing import Any, Optional

Run = dict[str, Any]

# (config, path) -> minimum capacity ratio (plain CPU/request / config CPU/request): issue 29's,
# for the defaults with no setting at all (the fast path where it is proven equal).
CAPACITY_TARGETS = {
    ("defaults", "/"): 0.80,
    ("defaults", "/db"): 0.75,
    ("defaults", "/stack"): 0.70,
}
# The same for instructions per request (one worker under callgrind, ``run.py --instructions``).
INSTRUCTION_TARGETS = {
    ("defaults", "/"): 0.85,
    ("defaults", "/db"): 0.80,
}
SICK_P99_FACTOR = 1.05  # dead / hanging collector: p99 at most this times the healthy (defaults) p99
INIT_MS_TARGET = 50.0
FLUSH_MS_TARGET = 1000.0


def median(values: Iterable[Optional[float]]) -> Optional[float]:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def median_interval(values: Iterable[Optional[float]], level: float = 0.90) -> Optional[tuple[float, float]]:
    """A distribution-free interval for the median of the rounds: the order statistics x(k) and
    x(n+1-k), k the largest with P(B(n, 1/2) < k) <= (1 - level) / 2.  Round-to-round noise here
    (single rounds 0.64-0.95 of one configuration) is larger than a target's margin, so the targets
    table shows how far the median itself can move; None with fewer than 5 rounds (no such k)."""
    xs = sorted(v for v in values if v is not None)
    n, tail, k, below = len(xs), (1 - level) / 2, 0, 0.0
    while True:
        below += math.comb(n, k) / 2**n  # P(B <= k), i.e. P(B < k + 1)
        if below > tail:
            break
        k += 1
    return (xs[k - 1], xs[n - k]) if k >= 1 else None


def _fmt(value: Optional[float], digits: int = 0) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def add_ratios(runs: list[Run]) -> None:
    """Capacity ratio of each run against ``plain`` on the same path in the same round."""
    plain = {(r["round"], r["path"]): r.get("cpu_us_per_request") for r in runs if r["config"] == "plain"}
    for run in runs:
        base, own = plain.get((run["round"], run["path"])), run.get("cpu_us_per_request")
        run["capacity_ratio"] = base / own if base and own else None


def summarize(runs: list[Run], configs: Sequence[str], paths: Sequence[str]) -> list[dict[str, Any]]:
    """One row per (path, config): medians over rounds, span counts summed over rounds."""
    rows = []
    for path in paths:
        for config in configs:
            mine = [r for r in runs if r["config"] == config and r["path"] == path and not r.get("error")]
            failed = [r for r in runs if r["config"] == config and r["path"] == path and r.get("error")]
            if not mine and not failed:
                continue
            expected = [r["spans_expected"] for r in mine if r.get("spans_expected") is not None]
            received = [r["spans_received"] for r in mine if r.get("spans_received") is not None]
            rows.append(
                {
                    "path": path,
                    "config": config,
                    "rounds": len(mine),
                    "failed_rounds": len(failed),
                    "rps": median(r["rps"] for r in mine),
                    "p50_ms": median(r["p50_ms"] for r in mine),
                    "p99_ms": median(r["p99_ms"] for r in mine),
                    "p99_ms_by_round": {r["round"]: r["p99_ms"] for r in mine if r["p99_ms"] is not None},
                    "cpu_us_per_request": median(r["cpu_us_per_request"] for r in mine),
                    "capacity_ratio": median(r.get("capacity_ratio") for r in mine),
                    "capacity_ratios": [r.get("capacity_ratio") for r in mine],
                    "spans_expected": sum(expected) if expected and config_exports(config) else None,
                    "spans_received": sum(received) if received and config_exports(config) else None,
                    "logged_not_delivered": sum(r.get("logged_not_delivered") or 0 for r in mine),
                    "worker_rss_mib": median(r.get("worker_rss_mib") for r in mine),
                    "stop_s": median(r.get("stop_s") for r in mine),
                    "errors": sum(r.get("http_errors", 0) for r in mine),
                }
            )
    return rows


def add_instructions(rows: list[dict[str, Any]], counts: dict[tuple[str, str], float]) -> None:
    """Instructions per request (``run.py --instructions``) and their capacity ratio against
    ``plain`` on each row; None where not counted."""
    for row in rows:
        own, plain = counts.get((row["config"], row["path"])), counts.get(("plain", row["path"]))
        row["instructions_per_request"] = own
        row["instructions_capacity"] = plain / own if own and plain else None


def both_table(rows: list[dict[str, Any]]) -> str:
    """Per path and configuration: CPU per request under load and instructions per request, each
    with its capacity against plain."""
    lines = [
        "| path | config | uWSGI CPU µs/req (load) | capacity, CPU | k instructions/req (callgrind) "
        "| capacity, instructions |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        plain = row["config"] == "plain"
        instructions = row.get("instructions_per_request")
        lines.append(
            f"| `{row['path']}` | {row['config']} | {_fmt(row['cpu_us_per_request'])} "
            f"| {'1' if plain else _fmt(row['capacity_ratio'], 2)} "
            f"| {_fmt(instructions / 1000 if instructions else None)} "
            f"| {'1' if plain else _fmt(row.get('instructions_capacity'), 2)} |"
        )
    return "\n".join(lines)


def progress(run: Run) -> str:
    """One line per finished run, for stderr."""
    counted = config_exports(run["config"]) and run.get("spans_expected") is not None
    spans = f"spans {run['spans_received']}/{run['spans_expected']}  " if counted else ""
    stop = f"stop {run['stop_s']:.2f} s" if run.get("stop_s") is not None else ""
    return (
        f"  round {run['round']} {run['path']:6} {run['config']:13} {run['rps']:7.0f} req/s  "
        f"p99 {run['p99_ms'] or 0:7.2f} ms  CPU {run['cpu_us_per_request'] or 0:6.0f} µs/req  "
        f"{spans}{stop}"
    )


def config_exports(config: str) -> bool:
    """Whether spans are expected at the receiver in this configuration."""
    return config not in ("plain", "dead", "hanging")


def _row_target(row: dict[str, Any]) -> str:
    target = CAPACITY_TARGETS.get((row["config"], row["path"]))
    if target is not None:
        return f"capacity ≥ {target:.2f}"
    if row["config"] in ("dead", "hanging"):  # judged per round (see _p99_target), not on this median
        return f"p99 ≤ {SICK_P99_FACTOR}× defaults, per round"
    if row["config"] == "defaults":
        return "0 dropped"
    return ""


def _find(rows: list[dict[str, Any]], config: str, path: str) -> Optional[dict[str, Any]]:
    return next((r for r in rows if r["config"] == config and r["path"] == path), None)


def _spans_cell(row: dict[str, Any]) -> str:
    logged = f"; {row['logged_not_delivered']} logged lost" if row["logged_not_delivered"] else ""
    if row["spans_expected"] is None:
        return f"–{logged}"
    dropped = row["spans_expected"] - row["spans_received"]
    return f"{row['spans_received']}/{row['spans_expected']} ({dropped} dropped{logged})"


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| path | config | req/s | p50 ms | p99 ms | uWSGI CPU µs/req | capacity vs plain | target "
        "| spans received/expected | worker RSS MiB | stop s | rounds |"
    )
    lines = [head, "|" + "---|" * 12]
    for row in rows:
        ratios = ", ".join(_fmt(r, 2) for r in row["capacity_ratios"])
        capacity = "1 (baseline)" if row["config"] == "plain" else f"**{_fmt(row['capacity_ratio'], 2)}** ({ratios})"
        rounds = f"{row['rounds']}" + (f" ({row['failed_rounds']} failed)" if row["failed_rounds"] else "")
        if row["errors"]:
            rounds += f", {row['errors']} HTTP errors"
        lines.append(
            f"| `{row['path']}` | {row['config']} | {_fmt(row['rps'])} | {_fmt(row['p50_ms'], 2)} "
            f"| {_fmt(row['p99_ms'], 2)} | **{_fmt(row['cpu_us_per_request'])}** | {capacity} "
            f"| {_row_target(row)} | {_spans_cell(row)} | {_fmt(row['worker_rss_mib'], 1)} "
            f"| {_fmt(row['stop_s'], 2)} | {rounds} |"
        )
    return "\n".join(lines)


def lifecycle_table(phases: list[dict[str, Any]]) -> str:
    lines = [
        "| config | workers seen | init ms median (max) | flushed spans per worker | flush ms median (max) "
        "| ms per full queue | received/flushed | stop s |",
        "|" + "---|" * 8,
    ]
    for p in phases:
        if p.get("error"):
            lines.append(f"| {p['config']} | failed: {p['error']} |" + " |" * 6)
            continue
        init = list(p["init_ms"].values())
        flushed = list(p["flushed"].values())
        spans = [s for s, _ in flushed]
        ms = [m for _, m in flushed]
        per_full = median(full_queue_ms(p))
        lines.append(
            f"| {p['config']} | {len(init)} | {_fmt(median(init), 1)} ({_fmt(max(init) if init else None, 1)}) "
            f"| {_fmt(median(spans))} | {_fmt(median(ms), 1)} ({_fmt(max(ms) if ms else None, 1)}) "
            f"| {_fmt(per_full, 1)} | {p.get('spans_received', '–')}/{sum(spans) if spans else '–'} "
            f"| {_fmt(p.get('stop_s'), 2)} |"
        )
    if any(not p.get("error") and not p["init_ms"] for p in phases):
        lines.append("")
        lines.append(
            "(no `tracing started in worker pid N in X ms` / `flushed N spans in X ms` debug lines "
            "in the uWSGI log: this otel_uwsgi does not log them yet)"
        )
    return "\n".join(lines)


def full_queue_ms(phase: dict[str, Any]) -> list[float]:
    """Each worker's exit-flush time scaled linearly to a full queue.

    Requests cannot be steered to a worker, so queues end up unevenly filled; only workers that
    held at least half a queue are scaled (a flush has a fixed cost that would be magnified),
    unless none did.
    """
    queue = phase["queue_size"]
    flushed = [(s, m) for s, m in phase["flushed"].values() if s]
    substantial = [(s, m) for s, m in flushed if s >= queue / 2] or flushed
    return [m * queue / s for s, m in substantial]


def targets(rows: list[dict[str, Any]], phases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target of the issue with what was measured; ``met`` is None when not measured."""
    found: list[dict[str, Any]] = []

    def add(name: str, measured: str, met: Optional[bool]) -> None:
        found.append({"target": name, "measured": measured, "met": met})

    capacities = (
        (CAPACITY_TARGETS, "capacity ratio", "capacity_ratio"),
        (INSTRUCTION_TARGETS, "instructions capacity", "instructions_capacity"),
    )
    for minimums, label, key in capacities:
        for (config, path), minimum in minimums.items():
            row = _find(rows, config, path)
            if row is None or key not in row:  # not selected (--configs / --paths), or no --instructions
                continue
            ratio = row[key]
            met = None if ratio is None else ratio >= minimum
            measured = _fmt(ratio, 2)
            interval = median_interval(row.get("capacity_ratios") or []) if key == "capacity_ratio" else None
            if interval is not None and ratio is not None:
                measured += f" (median of {row['rounds']} rounds; 90% interval {interval[0]:.2f}–{interval[1]:.2f})"
            add(f"{config} {label} on {path} ≥ {minimum:.2f}", measured, met)
    for config in ("dead", "hanging", "twin"):
        for row in (r for r in rows if r["config"] == config):
            add(*_p99_target(row, _find(rows, "defaults", row["path"])))
    for row in (r for r in rows if r["config"] == "defaults" and r["spans_expected"] is not None):
        dropped = row["spans_expected"] - row["spans_received"]
        add(
            f"defaults: 0 spans dropped at saturation on {row['path']}",
            f"{dropped} of {row['spans_expected']}",
            dropped == 0,
        )
    for phase in phases:
        if phase.get("error"):
            continue
        init = list(phase["init_ms"].values())
        add(
            f"{phase['config']}: worker init < {INIT_MS_TARGET:.0f} ms (max over workers)",
            f"{max(init):.1f} ms" if init else "not logged",
            (max(init) < INIT_MS_TARGET) if init else None,
        )
        worst = max(full_queue_ms(phase), default=None)
        add(
            f"{phase['config']}: flush of a full queue ({phase['queue_size']} spans) at exit < "
            f"{FLUSH_MS_TARGET:.0f} ms (worst worker, scaled to a full queue)",
            f"{worst:.1f} ms" if worst is not None else "not logged",
            (worst < FLUSH_MS_TARGET) if worst is not None else None,
        )
    return found


def _p99_target(row: dict[str, Any], healthy: Optional[dict[str, Any]]) -> tuple[str, str, Optional[bool]]:
    """p99 of ``row`` (dead, hanging, or twin: the A/A noise floor) against defaults.

    Judged like the capacity ratio: per round (the two windows seconds or minutes apart, not a
    run apart), then the median over rounds.  The ratio of the medians is printed beside it.
    """
    if row["config"] == "twin":
        name = f"noise floor: twin (a second defaults uWSGI) p99 on {row['path']} against defaults"
    else:
        name = f"{row['config']} p99 on {row['path']} ≤ {SICK_P99_FACTOR}× defaults (median of per-round ratios)"
    mine, theirs = row["p99_ms_by_round"], healthy["p99_ms_by_round"] if healthy else {}
    ratios = [mine[n] / theirs[n] for n in sorted(mine) if theirs.get(n)]
    per_round = median(ratios)
    if healthy is None or per_round is None:  # a shared round implies both medians exist
        return name, "–", None
    return (
        name,
        f"{per_round:.2f}× (rounds: {', '.join(f'{r:.2f}' for r in ratios)}; medians "
        f"{row['p99_ms']:.2f} vs {healthy['p99_ms']:.2f} ms, {row['p99_ms'] / healthy['p99_ms']:.2f}×)",
        per_round <= SICK_P99_FACTOR if row["config"] != "twin" else None,
    )


def targets_table(found: list[dict[str, Any]], app: str = "django") -> str:
    """The targets beside the measurements; issue 29 set them for the Django site, and another
    app (``run.py --app flask``) is held to the same ones."""
    head = "target (issue 29)" if app == "django" else f"target (issue 29's, set for Django; here {app})"
    lines = [f"| {head} | measured | met |", "|---|---|---|"]
    for t in found:
        met = {True: "yes", False: "**no**", None: "–"}[t["met"]]
        lines.append(f"| {t['target']} | {t['measured']} | {met} |")
    return "\n".join(lines)
