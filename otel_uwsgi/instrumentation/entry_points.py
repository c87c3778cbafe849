"""The installed OpenTelemetry instrumentations, found as ``opentelemetry-instrument`` finds them:
the ``opentelemetry_instrumentor`` entry points, each checked against the library version it
declares it supports (its ``instruments`` extra), with opentelemetry-instrumentation's own helpers.

Only instrumentors are loaded here, never a distro's configurator: that is what builds providers
and threads, which must not happen in a uWSGI master.
"""

from __future__ import annotations

import re
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Optional

GROUP = "opentelemetry_instrumentor"
PACKAGE_PREFIX = "opentelemetry-instrumentation-"


def installed() -> dict[str, EntryPoint]:
    """Every installed instrumentor by its entry-point name (``django``, ``flask``, ``psycopg`` ...)."""
    found: dict[str, EntryPoint] = {}
    for entry_point in entry_points(group=GROUP):
        found.setdefault(entry_point.name, entry_point)
    return found


def conflict(entry_point: EntryPoint) -> Optional[tuple[str, Optional[str]]]:
    """``(what the instrumentor supports, what is installed or None)`` when it cannot run here: its
    library is missing (None) or outside the declared range.  None when it can run (or when this
    opentelemetry-instrumentation cannot tell)."""
    try:
        from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts
    except ImportError:
        return None
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return None
    found = get_dist_dependency_conflicts(dist)
    if found is None:
        return None
    required = found.required or ", ".join(map(str, getattr(found, "required_any", None) or ())) or str(found)
    installed_version = found.found or ", ".join(map(str, getattr(found, "found_any", None) or ())) or None
    return str(required).split(";")[0].strip(), (str(installed_version) if installed_version else None)


def package_names() -> dict[str, str]:
    """Instrumentation names opentelemetry-instrumentation knows of, with their pip package (from
    the list ``opentelemetry-bootstrap`` installs from), installed or not."""
    try:
        from opentelemetry.instrumentation.bootstrap_gen import default_instrumentations, libraries
    except ImportError:
        return {}
    packages = [entry["instrumentation"] for entry in libraries] + list(default_instrumentations)
    names = {}
    for requirement in packages:
        package = re.split(r"[<>=!~ \[]", requirement, maxsplit=1)[0]
        if package.startswith(PACKAGE_PREFIX):
            names[package[len(PACKAGE_PREFIX) :]] = package
    return names


def instrument(entry_point: EntryPoint, options: dict[str, Any]) -> None:
    """Load the instrumentor and instrument (idempotent: the instrumentor checks it itself); the
    dependency check is done (:func:`conflict`)."""
    instrumentor = entry_point.load()()
    if not getattr(instrumentor, "is_instrumented_by_opentelemetry", False):
        instrumentor.instrument(skip_dep_check=True, **options)
