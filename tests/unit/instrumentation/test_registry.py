"""Which libraries `otel-instrumentations` instruments: every installed instrumentation under
`auto` (found as opentelemetry-instrument finds them), otel-uwsgi's own only where no
instrumentor does that job, and a clear line for every name that cannot be instrumented."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from importlib.metadata import EntryPoint, PathDistribution
from pathlib import Path

import pytest

from otel_uwsgi.config.settings import ConfigError
from otel_uwsgi.instrumentation import entry_points, registry

ROOT = Path(__file__).resolve().parents[3]


class Recorder:
    """An instrumentor that records how it was called."""

    calls: list[dict] = []
    is_instrumented_by_opentelemetry = False

    def instrument(self, **kwargs):
        Recorder.calls.append(kwargs)


class Broken:
    is_instrumented_by_opentelemetry = False

    def instrument(self, **kwargs):
        raise RuntimeError("broken instrumentor")


def fake_entry_point(tmp_path: Path, name: str, target: str, requires: list[str]) -> EntryPoint:
    """An installed-looking instrumentor: a distribution whose ``instruments`` extra is ``requires``."""
    info = tmp_path / f"opentelemetry_instrumentation_{name}-0.1.dist-info"
    info.mkdir()
    lines = [f"Name: opentelemetry-instrumentation-{name}", "Version: 0.1"]
    lines += [f'Requires-Dist: {r}; extra == "instruments"' for r in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    (info / "entry_points.txt").write_text(f"[opentelemetry_instrumentor]\n{name} = {target}\n")
    return next(iter(PathDistribution(info).entry_points))


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(registry, "_done", set())
    monkeypatch.setattr(registry, "_fast", set())
    monkeypatch.setattr(registry, "_options", {})
    Recorder.calls = []


def test_options_reach_the_instrumentor_and_the_info_line_lists_it(fresh, monkeypatch, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="otel_uwsgi")
    ep = fake_entry_point(tmp_path, "recorder", f"{__name__}:Recorder", ["pytest >= 1"])
    monkeypatch.setattr(entry_points, "installed", lambda: {"recorder": ep})
    registry.set_options("recorder", request_hook=print)
    assert registry.instrument(["recorder"], strict=True) == ["recorder"]
    assert Recorder.calls == [{"skip_dep_check": True, "request_hook": print}]
    assert "otel-uwsgi: instrumented recorder" in caplog.text


def test_a_library_outside_the_supported_range_is_skipped_naming_both_versions(fresh, monkeypatch, tmp_path, caplog):
    ep = fake_entry_point(tmp_path, "recorder", f"{__name__}:Recorder", ["pytest < 1"])
    monkeypatch.setattr(entry_points, "installed", lambda: {"recorder": ep})
    assert registry.instrument(["auto"]) == ["mysqlclient", "sqlite3"]
    assert Recorder.calls == []
    line = next(r.getMessage() for r in caplog.records if "recorder is not instrumented" in r.getMessage())
    assert "supports pytest<1, and pytest " in line and "is installed" in line


def test_a_broken_instrumentor_is_a_logged_exception_and_the_rest_goes_on(fresh, monkeypatch, tmp_path, caplog):
    broken = fake_entry_point(tmp_path, "broken", f"{__name__}:Broken", [])
    recorder = fake_entry_point(tmp_path, "recorder", f"{__name__}:Recorder", [])
    monkeypatch.setattr(entry_points, "installed", lambda: {"broken": broken, "recorder": recorder})
    assert registry.instrument(["broken", "recorder"]) == ["recorder"]
    assert any(r.exc_info and "could not instrument broken" in r.getMessage() for r in caplog.records)


def test_auto_leaves_out_the_disabled(fresh, monkeypatch, tmp_path):
    recorder = fake_entry_point(tmp_path, "recorder", f"{__name__}:Recorder", [])
    monkeypatch.setattr(entry_points, "installed", lambda: {"recorder": recorder})
    assert registry.instrument(["auto"], disabled=["recorder", "sqlite3"]) == ["mysqlclient"]
    assert Recorder.calls == []


def test_an_unknown_name_in_the_ini_stops_startup_listing_what_is_installed(fresh, monkeypatch, tmp_path, caplog):
    recorder = fake_entry_point(tmp_path, "recorder", f"{__name__}:Recorder", [])
    monkeypatch.setattr(entry_points, "installed", lambda: {"recorder": recorder})
    with pytest.raises(ConfigError) as raised:
        registry.instrument(["recordr"], strict=True, where="/etc/app.ini")
    message = str(raised.value)
    assert "unknown instrumentation 'recordr'" in message and "/etc/app.ini" in message
    assert "did you mean recorder?" in message and "installed: django, mysqlclient, recorder, sqlite3" in message
    assert registry.instrument(["recordr"]) == []  # from the environment: a warning, startup goes on
    assert "unknown instrumentation 'recordr'" in caplog.text


def test_a_published_instrumentation_that_is_not_installed_names_its_package(fresh, monkeypatch, caplog):
    monkeypatch.setattr(entry_points, "installed", lambda: {})
    assert registry.instrument(["celery"], strict=True) == []
    assert "pip install opentelemetry-instrumentation-celery" in caplog.text


def test_mysqlclient_is_never_wrapped_twice(fresh, monkeypatch, tmp_path):
    """Where the mysqlclient instrumentor is installed it does the job (also under the old name
    `mysql`); otel-uwsgi's own dbapi integration runs only where it is not."""
    own = []
    monkeypatch.setattr(registry.dbapi, "instrument_own", lambda name, explicit: own.append(name) or True)
    recorder = fake_entry_point(tmp_path, "mysqlclient", f"{__name__}:Recorder", [])
    monkeypatch.setattr(entry_points, "installed", lambda: {"mysqlclient": recorder})
    assert registry.instrument(["mysql"], strict=True) == ["mysqlclient"]
    assert len(Recorder.calls) == 1 and own == []
    monkeypatch.setattr(registry, "_done", set())
    monkeypatch.setattr(entry_points, "installed", lambda: {})
    assert registry.instrument(["mysql"], strict=True) == ["mysqlclient"]
    assert own == ["mysqlclient"]


def test_auto_in_a_master_builds_no_provider_and_starts_no_thread():
    """Every installed instrumentation, instrumented as in a uWSGI master: no thread starts and
    the global tracer, meter and logger providers are still the API's proxies."""
    code = """
import json, threading
from opentelemetry import _logs, metrics, trace
from otel_uwsgi.instrumentation.entry_points import installed
from otel_uwsgi.instrumentation.registry import instrument
before = threading.active_count()
done = instrument(["auto"])
print(json.dumps({
    "done": done, "installed": sorted(installed()),
    "threads": [before, threading.active_count()],
    "proxies": [type(trace.get_tracer_provider()).__name__, type(metrics.get_meter_provider()).__name__,
                type(_logs.get_logger_provider()).__name__],
}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(result["installed"]) - {"httpx2"} <= set(result["done"]), result
    assert result["threads"][0] == result["threads"][1]
    assert result["proxies"] == ["ProxyTracerProvider", "_ProxyMeterProvider", "ProxyLoggerProvider"]
