"""``otel-uwsgi demo``'s WSGI entry point: the demo app of the stack installed here (:mod:`.stack`):
the Django site, else the Flask app, else the plain WSGI one, each with the same ``/trace``.

``import otel_uwsgi.auto`` comes first, as in any wsgi file: the chosen app is imported after it.
The stack is written to uWSGI's log once, where ``otel-uwsgi demo`` reads it for its first line.
"""

# ruff: noqa: I001 - the import order is the point: otel_uwsgi.auto before the app

import otel_uwsgi.auto  # noqa: F401

import importlib  # noqa: E402
import sys  # noqa: E402

from otel_uwsgi.demo import stack  # noqa: E402

#: The prefix of the lines that say which stack the demo runs (read by ``otel-uwsgi demo``).
ANNOUNCE = "otel-uwsgi demo: "
_MODULES = {"django": "otel_uwsgi.demo.wsgi", "flask": "otel_uwsgi.demo.flask_app", "wsgi": "otel_uwsgi.demo.plain"}


def _announce(chosen: stack.Stack) -> None:
    lines = [chosen.describe()]
    if chosen.redis is None:
        lines.append("no Redis here: a second query stands in for the cache")
    lines += [f"not traced here: {part}" for part in chosen.untraced()]
    sys.stderr.write("".join(f"{ANNOUNCE}{line}\n" for line in lines))
    sys.stderr.flush()


_announce(stack.current())
application = importlib.import_module(_MODULES[stack.current().app]).application
