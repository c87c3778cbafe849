"""``otel-uwsgi`` / ``python -m otel_uwsgi``: command-line tools."""

from __future__ import annotations

import sys
from typing import Optional


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: otel-uwsgi check path/to/uwsgi.ini [--requests N] [--path URL] [--timeout S] [--json]")
        print("       otel-uwsgi options [--write README.md]   (the option table as markdown)")
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "check":
        from otel_uwsgi.tools.check import main as check_main

        return check_main(rest)
    if command == "options":
        from otel_uwsgi.tools.docs import option_table, write_readme

        if rest[:1] == ["--write"]:
            path = rest[1] if len(rest) > 1 else "README.md"
            print(f"{path}: {'updated' if write_readme(path) else 'already current'}")
            return 0
        print(option_table())
        return 0
    print(f"otel-uwsgi: unknown command {command!r}; try: check, options", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
