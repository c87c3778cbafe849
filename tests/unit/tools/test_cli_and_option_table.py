"""The option table (docs/OPTIONS.md) is generated from the declarations; ``otel-uwsgi`` (the CLI) lists
every subcommand and flag, says its version, and fails in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from otel_uwsgi.tools.docs import BEGIN, END, option_table

ROOT = Path(__file__).resolve().parents[3]


def test_readme_option_table_is_generated_from_the_declarations():
    """Regenerate with `otel-uwsgi options` and paste between the markers."""
    readme = (ROOT / "docs" / "OPTIONS.md").read_text()
    table = readme.split(BEGIN, 1)[1].split(END, 1)[0]
    assert table.strip() == option_table().strip()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "otel_uwsgi", *args], capture_output=True, text=True, timeout=60)


def test_help_lists_every_subcommand_and_flag():
    """`otel-uwsgi --help` names each subcommand with every one of its flags."""
    import argparse

    from otel_uwsgi.__main__ import build_parser

    text = _cli("--help").stdout
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(commands.choices) >= {"check", "options"}
    for name, sub in commands.choices.items():
        assert f"otel-uwsgi {name}" in text
        for action in sub._actions:
            for flag in action.option_strings:
                assert flag in text, (name, flag)


def test_version_names_otel_uwsgi_the_sdk_and_python():
    out = _cli("--version")
    assert out.returncode == 0
    assert out.stdout.startswith("otel-uwsgi ") and "opentelemetry-sdk " in out.stdout and "Python 3." in out.stdout


@pytest.mark.parametrize("target", ["missing-dir/README.md", "not-a-readme.txt"])
def test_options_write_to_a_bad_path_is_one_line(tmp_path, target):
    """A path that cannot be written, or a file without the table's markers: one line, status 2."""
    path = tmp_path / target
    if target.endswith(".txt"):
        path.write_text("no markers here\n")
    out = _cli("options", "--write", str(path))
    assert out.returncode == 2 and out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1 and out.stderr.startswith("otel-uwsgi options: cannot update")
