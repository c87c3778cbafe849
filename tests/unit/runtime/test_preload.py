"""The master's preload of the worker set-up path (runtime/install.py)."""

from __future__ import annotations

import os
import sys

from otel_uwsgi.config.settings import load
from otel_uwsgi.runtime import install


def test_an_sdk_the_lean_start_cannot_load_with_does_not_stop_the_rest_of_the_preload(monkeypatch):
    """OpenTelemetry 1.33's TraceFlags has no RANDOM_TRACE_ID, so the lean tracer does not import;
    the exporter and everything after it must still be imported before fork (it was not: every
    worker then imported ~60-170 modules itself, and a stop signal could land mid-import)."""
    monkeypatch.setitem(sys.modules, "otel_uwsgi.traces.lean.tracer", None)  # its import now raises
    for name in ("otel_uwsgi.export.span_exporter", "otel_uwsgi.export.encoder"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    install._import_after_fork_path(load({}, os.environ))
    assert "otel_uwsgi.export.span_exporter" in sys.modules
    assert "otel_uwsgi.export.encoder" in sys.modules
