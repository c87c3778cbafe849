"""One PNG of uWSGI CPU per request by configuration and view, from a ``bench/run.py --json`` file.

    python bench/plot.py RUN.json RUN.png   (RUN.json: a bench/run.py --json output)

Needs matplotlib (``pip install matplotlib``; not a dependency of otel-uwsgi or its tests).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import report

LABELS = {
    "plain": "no tracing",
    "sdk-recipe": "stock SDK recipe",
    "stock-instr": "otel-uwsgi, stock instrumentations",
    "defaults": "otel-uwsgi defaults (fast path)",
    "fast": "otel-uwsgi fast",
}


def main(source: str, target: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(Path(source).read_text())
    runs = data["runs"]
    report.add_ratios(runs)
    configs = [c for c in LABELS if any(r["config"] == c for r in runs)]
    paths = list(dict.fromkeys(r["path"] for r in runs))
    rows = {(row["config"], row["path"]): row for row in report.summarize(runs, configs, paths)}
    width = 0.8 / len(configs)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    for i, config in enumerate(configs):
        values = [(rows.get((config, p)) or {}).get("cpu_us_per_request") or 0 for p in paths]
        bars = ax.bar([x + i * width for x in range(len(paths))], values, width, label=LABELS[config])
        for bar, path in zip(bars, paths, strict=True):
            ratio = (rows.get((config, path)) or {}).get("capacity_ratio")
            if ratio is not None and config != "plain":
                ax.annotate(f"{ratio:.2f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=7)
    ax.set_xticks([x + width * (len(configs) - 1) / 2 for x in range(len(paths))], paths)
    ax.set_ylabel("uWSGI CPU µs per request (lower is better)")
    ax.set_title("What tracing costs under load (4 workers, wrk); labels: capacity vs no tracing", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(target)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
