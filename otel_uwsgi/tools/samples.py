"""``otel-uwsgi samples [NAME]``: the sample inis of the README, listed or printed, so that a pip install
has them as a clone does.

They live in the repository's ``ini/``; ``otel_uwsgi/samples`` is a link to it, which the wheel
holds as package data (``pyproject.toml``), so one path serves a checkout, an editable install and
an installed wheel.  Each runs as-is once its services are up (``otel-uwsgi check FILE``): its
``module =`` is the demo app shipped in the package.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Optional

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def names() -> list[str]:
    """The sample file names, sorted (``minimal.ini``, ``strict.ini``, ...)."""
    return sorted(p.name for p in SAMPLES.glob("*.ini"))


def summary(name: str) -> str:
    """The first sentence of a sample's leading comment: what it shows."""
    lines = []
    for line in (SAMPLES / name).read_text().splitlines():
        if not line.startswith(";"):
            break
        lines.append(line.lstrip(";").strip())
    text = " ".join(lines)
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def run(name: Optional[str]) -> int:
    """List the samples (no ``name``) or print one (``minimal`` or ``minimal.ini``); 2 for an unknown name."""
    available = names()
    if not available:  # a build from a tree without ini/ (the Docker harness image copies otel_uwsgi/ only)
        message = f"otel-uwsgi samples: none in {SAMPLES}: this install was built without the repository's ini/"
        print(message, file=sys.stderr)
        return 2
    if name is None:
        width = max(map(len, available)) + 2
        for sample in available:
            lines = textwrap.wrap(summary(sample), 110 - width) or [""]
            print(f"{sample:<{width}}" + ("\n" + " " * width).join(lines))
        print(f"\n`otel-uwsgi samples NAME > uwsgi.ini` writes one out; they are in {SAMPLES}")
        return 0
    file_name = name if name.endswith(".ini") else f"{name}.ini"
    if file_name not in available:
        print(f"otel-uwsgi samples: no sample {name!r}; the samples are: {', '.join(available)}", file=sys.stderr)
        return 2
    sys.stdout.write((SAMPLES / file_name).read_text())
    return 0
