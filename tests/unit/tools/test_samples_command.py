"""``otel-uwsgi samples`` lists every sample ini of the repository's ``ini/`` and prints each byte for
byte (the package's ``otel_uwsgi/samples`` is what a wheel ships: .ci/check-dist.py checks it there)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
INIS = sorted(p.name for p in (ROOT / "ini").glob("*.ini"))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "otel_uwsgi", "samples", *args], capture_output=True, text=True,
                          timeout=60)


def test_the_list_names_every_sample_with_what_it_shows():
    out = _cli()
    assert out.returncode == 0 and out.stderr == ""
    table, _ = out.stdout.split("\n\n", 1)  # then a line on how to write one out
    listed = [line.split()[0] for line in table.splitlines() if not line.startswith(" ")]
    assert listed == INIS and len(INIS) >= 6
    assert "minimal.ini          The smallest useful setup: a plain WSGI app" in out.stdout


@pytest.mark.parametrize("name", INIS)
def test_each_sample_prints_as_it_is_in_ini(name):
    out = _cli(name)
    assert out.returncode == 0 and out.stdout == (ROOT / "ini" / name).read_text()


def test_a_name_without_the_suffix_is_enough():
    assert _cli("strict").stdout == (ROOT / "ini" / "strict.ini").read_text()


def test_an_unknown_sample_is_one_line_naming_the_samples():
    out = _cli("nginx")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        "otel-uwsgi samples: no sample 'nginx'; the samples are: " + ", ".join(INIS)
    ]
