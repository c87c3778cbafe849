"""Where the fast path is the default: only where its spans were proven equal to the installed
stock instrumentation's (tests/unit/instrumentation/fast/test_spans_equal_stock.py, run by CI on
the newest releases with every supported Python and on the oldest line the fast path runs on,
.ci/constraints-fast-floor.txt; on older instrumentation releases, down to the oldest supported
line of .ci/constraints-oldest.txt, the stock instrumentations trace).

Anything outside what those runs cover — hooks or options given with
:func:`otel_uwsgi.instrumentation_options`, a framework, driver or instrumentation release outside
the verified range, an SDK whose layout the lean start does not know, a semantic-conventions mode
the tests did not compare — leaves the stock instrumentation in charge, with one info line naming
the reason.  ``otel-fast-instrumentation = false`` always does.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Mapping
from importlib import metadata
from typing import Any, Optional

logger = logging.getLogger(__name__)

#: (oldest, newest) major.minor release proven equal, by distribution (or module, for drivers whose
#: distribution has several names).  Raise the newest after the equality tests pass on a new release.
VERIFIED: dict[str, tuple[str, str]] = {
    "django": ("4.2", "6.1"),
    "flask": ("3.0", "3.1"),
    "opentelemetry-instrumentation-flask": ("0.66", "0.66"),
    "opentelemetry-instrumentation-requests": ("0.63", "0.66"),
    "requests": ("2.28", "2.34"),
    "opentelemetry-instrumentation-redis": ("0.63", "0.66"),
    "redis": ("4.5", "8.2"),
    "opentelemetry-instrumentation-django": ("0.63", "0.66"),
    "opentelemetry-instrumentation-dbapi": ("0.63", "0.66"),
    # Older psycopg instrumentations do not trace Django's PostgreSQL connections at all (the fast
    # path would add spans the stock one does not make): compared on the newest only.
    "opentelemetry-instrumentation-psycopg": ("0.66", "0.66"),
    "opentelemetry-instrumentation-psycopg2": ("0.66", "0.66"),
    "mysqlclient": ("2.1", "2.3"),
    "psycopg": ("3.1", "3.3"),
    "psycopg2": ("2.9", "2.9"),
}
#: Where no instrumentor of a driver is installed, otel-uwsgi traces it with the dbapi integration.
DBAPI = "opentelemetry-instrumentation-dbapi"
#: Semantic-conventions modes the equality tests compare (old, new, both), per signal type.
VERIFIED_MODES = ("DEFAULT", "HTTP", "HTTP_DUP", "DATABASE", "DATABASE_DUP")


def canonical(name: str) -> str:
    """A distribution name as VERIFIED spells it (lower case, dashes)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def sqlcommenter(django_options: Mapping[str, Any]) -> bool:
    """Whether the options given for Django's stock instrumentation turn sqlcommenter on (it then
    rewrites the statements the DB spans record, so the DB fast path steps aside too)."""
    return bool(django_options.get("is_sql_commentor_enabled"))


def _minor(version: str) -> tuple[int, ...]:
    """``major.minor`` of a release string ("0.66b1" -> (0, 66), "2.9.13 (dt dec pq3)" -> (2, 9))."""
    parts = []
    for piece in version.split()[0].split(".")[:2]:
        digits = ""
        for char in piece:
            if not char.isdigit():
                break
            digits += char
        parts.append(int(digits or 0))
    return tuple(parts)


def installed_release(name: str) -> Optional[str]:
    """The installed release of a distribution, or of a module's ``__version__`` (drivers); None if absent."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        pass
    try:
        module = importlib.import_module(name)
    except ImportError:
        return None
    version = getattr(module, "__version__", None)
    return str(version) if version is not None else None


def release_problem(name: str, release: Optional[str] = None) -> Optional[str]:
    """Why ``name``'s installed release is outside the verified range (None: inside it, or absent)."""
    release = release if release is not None else installed_release(name)
    if release is None:
        return None  # not installed: whatever needs it says so itself
    key = canonical(name)
    if key not in VERIFIED:
        return f"its spans were never compared with {name}'s"
    oldest, newest = VERIFIED[key]
    minor = _minor(release)
    if minor < _minor(oldest):
        return f"{key} {release} is older than the fast path was verified with ({oldest} to {newest})"
    if minor > _minor(newest):
        return f"{key} {release} is newer than the fast path was verified with ({oldest} to {newest})"
    return None


def mode_problem() -> Optional[str]:
    """Why the OTEL_SEMCONV_STABILITY_OPT_IN modes in effect were not compared (None: they were)."""
    from opentelemetry.instrumentation._semconv import (
        _OpenTelemetrySemanticConventionStability as Stability,
    )
    from opentelemetry.instrumentation._semconv import (
        _OpenTelemetryStabilitySignalType as Signal,
    )

    Stability._initialize()
    for signal in (Signal.HTTP, Signal.DATABASE):
        mode = Stability._get_opentelemetry_stability_opt_in_mode(signal)
        if getattr(mode, "name", str(mode)) not in VERIFIED_MODES:
            return f"OTEL_SEMCONV_STABILITY_OPT_IN gives {signal.value} mode {mode}, which was not compared"
    return None


def sdk_problem() -> Optional[str]:
    """Why the installed OpenTelemetry API/SDK is not the layout the lean span start was checked on."""
    from otel_uwsgi.traces.lean.tracer import sdk_layout_problem

    problem = sdk_layout_problem()
    return f"in the installed opentelemetry-sdk, {problem}" if problem else None


def options_problem(name: str, options: Mapping[str, Any]) -> Optional[str]:
    """Options given for the stock instrumentation (hooks, sqlcommenter ...) the fast path does not run."""
    if not options:
        return None
    return f"instrumentation_options({name!r}, ...) gives {', '.join(sorted(options))}, which only the stock one runs"


def why_stock(stock: str, modules: tuple[str, ...], options: Mapping[str, Any], name: str) -> Optional[str]:
    """The first reason the ``stock`` package (e.g. opentelemetry-instrumentation-django) must trace
    instrumentation ``name`` instead of the fast path: its ``options``; the releases of ``stock`` and
    of the library ``modules``; the semconv mode; the SDK.  None: the fast path is proven equal here."""
    checks = (
        lambda: options_problem(name, options),
        lambda: release_problem(stock),
        *(lambda module=module: release_problem(module) for module in modules),
        mode_problem,
        sdk_problem,
    )
    for check in checks:
        problem = check()
        if problem:
            return problem
    return None


def client_headers_problem(environ: Mapping[str, str]) -> Optional[str]:
    """Why an HTTP client's fast span cannot stand in: header capture asked for (only the stock one does it)."""
    from opentelemetry.util.http import (
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST,
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE,
    )

    for name in (
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST,
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE,
    ):
        if environ.get(name, "").strip():
            return f"{name} is set, and only the stock one captures headers"
    return None


def stock_scope(stock: str) -> tuple[str, str]:
    """The instrumentation scope (name, version) the ``stock`` package's spans carry: the fast path
    reports the same, so a backend grouping or filtering by scope sees no change."""
    return stock.replace("-", "."), installed_release(stock) or ""


def tell(name: str, reason: str) -> None:
    """The one info line of a fallback."""
    logger.info("otel-uwsgi: %s is traced by its stock instrumentation, not the fast path: %s", name, reason)
