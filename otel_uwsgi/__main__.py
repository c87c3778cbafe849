"""``otel-uwsgi`` / ``python -m otel_uwsgi``: the command-line tools (see ``otel-uwsgi --help``)."""

from __future__ import annotations

import argparse
import sys
from typing import Optional


def version() -> str:
    """``otel-uwsgi X (opentelemetry-sdk Y, Python Z)``: what a bug report needs."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    from otel_uwsgi import __version__

    try:
        sdk = installed("opentelemetry-sdk")
    except PackageNotFoundError:
        sdk = "not installed"
    python = ".".join(map(str, sys.version_info[:3]))
    return f"otel-uwsgi {__version__} (opentelemetry-sdk {sdk}, Python {python})"


def build_parser() -> argparse.ArgumentParser:
    from otel_uwsgi.tools import check

    parser = argparse.ArgumentParser(
        prog="otel-uwsgi",
        description="OpenTelemetry under uWSGI: check that a uwsgi.ini really exports every worker's spans.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=version())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    check.add_arguments(
        commands.add_parser(
            "check",
            help="run uWSGI with your ini and an embedded OTLP receiver; verify every worker's spans",
            description=check.__doc__.strip().splitlines()[0] if check.__doc__ else None,
        )
    )
    check.add_arguments(
        commands.add_parser(
            "demo",
            help="the demo app (shipped in the package) under uWSGI, checked like your own ini",
            description="Run the demo app of the installed stack (Django, else Flask, else plain WSGI) under uWSGI "
            "with 4 workers and check /trace: a server span, a DB span, a cache (or second DB) span and an HTTP "
            "call whose server span joins the same trace; one such trace is drawn as a tree.",
        ),
        demo=True,
    )
    options = commands.add_parser(
        "options",
        help="print the option table (markdown), or update it in docs/OPTIONS.md",
        description="Print every otel-* option with its environment variable, default and meaning.",
    )
    options.add_argument(
        "--write",
        metavar="FILE",
        nargs="?",
        const="docs/OPTIONS.md",
        help="replace the table between the options markers in FILE (default docs/OPTIONS.md) instead of printing it",
    )
    samples = commands.add_parser(
        "samples",
        help="list the sample uwsgi.ini files shipped in the package, or print one",
        description="List the sample inis (Django + MySQL or PostgreSQL, Flask, plain WSGI, production, strict), "
        "or print one to start from: `otel-uwsgi samples production > uwsgi.ini`.",
    )
    samples.add_argument("name", nargs="?", metavar="NAME", help="a sample to print (e.g. minimal or minimal.ini)")
    # Every subcommand and its flags, in the top-level help too.
    usages = [sub.format_usage().replace("usage: ", "  ").rstrip() for sub in commands.choices.values()]
    parser.epilog = "commands and their flags:\n" + "\n".join(usages) + "\n\n`otel-uwsgi COMMAND --help` explains each."
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.command in ("check", "demo"):
        from otel_uwsgi.tools.check import run_from_arguments

        return run_from_arguments(args)
    if args.command == "options":
        return _options(args.write)
    if args.command == "samples":
        from otel_uwsgi.tools.samples import run

        return run(args.name)
    parser.print_help()
    return 2


def _options(path: Optional[str]) -> int:
    from otel_uwsgi.tools.docs import option_table, write_readme

    if path is None:
        print(option_table())
        return 0
    try:
        changed = write_readme(path)
    except (OSError, ValueError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        print(f"otel-uwsgi options: cannot update {path}: {reason}", file=sys.stderr)
        return 2
    print(f"{path}: {'updated' if changed else 'already current'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
