"""One PNG of uWSGI CPU per request by configuration and view, from a ``bench/run.py --json`` file;
with a second panel of instructions per request when the run counted them (``--instructions``).

    python bench/plot.py RUN.json RUN.png   (RUN.json: a bench/run.py --json output)

Needs matplotlib (``pip install matplotlib``; not a dependency of otel-uwsgi or its tests).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import report

LABELS = {
    "plain": "no tracing",
    "sdk-recipe": "stock SDK recipe",
    "stock-instr": "otel-uwsgi, stock instrumentations",
    "defaults": "otel-uwsgi defaults (fast path)",
    "fast": "otel-fast-instrumentation = true (= defaults)",
}


def _panel(ax: Any, rows: dict, configs: list[str], paths: list[str], value: str, ratio: str, scale: float) -> None:
    """Grouped bars of ``value`` per path and configuration, each labelled with its ``ratio``."""
    width = 0.8 / len(configs)
    for i, config in enumerate(configs):
        values = [((rows.get((config, p)) or {}).get(value) or 0) * scale for p in paths]
        bars = ax.bar([x + i * width for x in range(len(paths))], values, width, label=LABELS[config])
        for bar, path in zip(bars, paths, strict=True):
            capacity = (rows.get((config, path)) or {}).get(ratio)
            if capacity is not None and config != "plain":
                ax.annotate(f"{capacity:.2f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=7)
    ax.set_xticks([x + width * (len(configs) - 1) / 2 for x in range(len(paths))], paths)


def main(source: str, target: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(Path(source).read_text())
    runs = data["runs"]
    report.add_ratios(runs)
    configs = [c for c in LABELS if any(r["config"] == c for r in runs)]
    paths = list(dict.fromkeys(r["path"] for r in runs))
    summary = report.summarize(runs, configs, paths)
    counts = {(c["config"], c["path"]): c["per_request"] for c in data.get("instructions", [])}
    if counts:
        report.add_instructions(summary, counts)
    rows = {(row["config"], row["path"]): row for row in summary}
    fig, axes = plt.subplots(1, 2 if counts else 1, figsize=(13 if counts else 8, 4.5), dpi=120, squeeze=False)
    cpu = axes[0][0]
    _panel(cpu, rows, configs, paths, "cpu_us_per_request", "capacity_ratio", 1.0)
    cpu.set_ylabel("uWSGI CPU µs per request (lower is better)")
    cpu.set_title("CPU under load (4 workers, wrk); labels: capacity vs no tracing", fontsize=9)
    cpu.legend(fontsize=7)
    if counts:
        instructions = axes[0][1]
        _panel(instructions, rows, configs, paths, "instructions_per_request", "instructions_capacity", 1e-3)
        instructions.set_ylabel("thousand instructions per request (lower is better)")
        instructions.set_title("instructions, one worker under callgrind; labels: capacity", fontsize=9)
    fig.tight_layout()
    fig.savefig(target)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
