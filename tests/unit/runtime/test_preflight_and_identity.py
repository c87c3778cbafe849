"""The uWSGI setup checks and the process identity, table-driven over fake `uwsgi` modules (as
sentry-python tests its own)."""

from __future__ import annotations

import types

import pytest

from otel_uwsgi.config import uwsgi_opt
from otel_uwsgi.config.settings import load
from otel_uwsgi.runtime import preflight, uwsgi_api


def fake_uwsgi(
    opt=None, has_threads=True, masterpid=100, numproc=4, worker_id=0, mule_id=0, spooler=False, version=b"2.0.31"
):
    return types.SimpleNamespace(
        version=version,
        opt=opt or {},
        has_threads=has_threads,
        numproc=numproc,
        masterpid=lambda: masterpid,
        worker_id=lambda: worker_id,
        mule_id=lambda: mule_id,
        i_am_the_spooler=lambda: spooler,
    )


@pytest.fixture
def use(monkeypatch):
    def install(**kw):
        module = fake_uwsgi(**kw)
        monkeypatch.setattr(uwsgi_api, "uwsgi", module)
        return module

    return install


def test_threads_off_is_fatal_and_names_enable_threads(use):
    """uWSGI < 2.0.27 without threads would never export: startup must stop, saying how to fix it."""
    use(has_threads=False)
    fatal, _ = preflight.problems(load({}, {}))
    assert fatal and "enable-threads = true" in fatal[0]


def test_no_master_with_several_processes_warns(use):
    use(masterpid=0, numproc=4)
    fatal, warnings = preflight.problems(load({}, {}))
    assert not fatal and "master = true" in warnings[0]


@pytest.mark.parametrize(
    "mercy, source, fatal_expected", [(b"5", "uwsgi", True), (b"5", "env", False), (b"60", "uwsgi", False)]
)
def test_flush_timeout_against_worker_reload_mercy(use, mercy, source, fatal_expected):
    use(opt={"worker-reload-mercy": mercy})
    settings = load({"otel-exit-flush-timeout": b"5000"}, {}) if source == "uwsgi" else load(
        {}, {"OTEL_UWSGI_EXIT_FLUSH_TIMEOUT": "5000"}
    )
    fatal, warnings = preflight.problems(settings)
    assert bool(fatal) is fatal_expected
    if not fatal_expected and mercy == b"5":
        assert "worker-reload-mercy" in warnings[0]


@pytest.mark.parametrize(
    "kw, expected",
    [
        ({"worker_id": 0}, ("master", None, None)),
        ({"worker_id": 3}, ("worker", 3, None)),
        ({"mule_id": 2}, ("mule", None, 2)),
        ({"spooler": True}, ("spooler", None, None)),
    ],
)
def test_identity(use, kw, expected):
    use(**kw)
    assert uwsgi_api.identity() == expected


@pytest.mark.parametrize("value", [b"/etc/app.ini", "/etc/app.ini", [b"/x.ini", b"/etc/app.ini"]])
def test_config_file_named_in_messages(value):
    assert uwsgi_opt.config_file({"ini": value}) == "/etc/app.ini"


@pytest.mark.parametrize(
    "kw, warned",
    [
        ({"masterpid": 1}, True),  # the container's main process, SIGTERM reloads uWSGI 2.0
        ({"masterpid": 1, "opt": {"die-on-term": True}}, False),
        ({"masterpid": 1, "opt": {"die-on-term": b"true"}}, False),
        ({"masterpid": 1, "version": b"2.1.0"}, False),  # 2.1 stops on SIGTERM
        ({"masterpid": 4242}, False),  # not a container's main process, no container files
    ],
)
def test_a_container_without_die_on_term_is_warned(use, monkeypatch, kw, warned):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setattr(preflight, "CONTAINER_FILES", ())
    use(**kw)
    fatal, warnings = preflight.problems(load({}, {}))
    assert not fatal
    assert (preflight.CONTAINER_STOP in warnings) is warned
    if warned:
        assert "die-on-term = true" in preflight.CONTAINER_STOP


def test_the_uwsgi_version_is_read_as_numbers(use):
    use(version=b"2.0.21-debian")
    assert uwsgi_api.version() == (2, 0, 21)
