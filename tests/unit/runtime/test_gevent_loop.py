"""Which gevent settings of uWSGI patch too late, and the one line that says so."""

from __future__ import annotations

import pytest

from otel_uwsgi.runtime import gevent_loop

INI = {"ini": b"/etc/shop/uwsgi.ini"}


@pytest.mark.parametrize(
    ("opt", "late"),
    [
        ({"gevent": b"20", "gevent-monkey-patch": True}, True),
        ({"gevent": b"20", "gevent-monkey-patch": b"true"}, True),
        ({"gevent": b"20", "gevent-monkey-patch": b"true", "gevent-early-monkey-patch": b"true"}, False),
        ({"gevent": b"20", "gevent-early-monkey-patch": b"true"}, False),
        ({"gevent": b"20"}, False),  # the app patches itself, or uses gevent's own APIs only
        ({"gevent-monkey-patch": b"true"}, False),  # no gevent loop engine: uWSGI never patches
        ({"gevent": b"20", "gevent-monkey-patch": b"false"}, False),
    ],
)
def test_only_gevent_monkey_patch_alone_patches_late(opt, late):
    assert gevent_loop.patches_late(opt) is late


def test_the_warning_names_the_option_to_set_and_the_ini(monkeypatch):
    monkeypatch.setattr(gevent_loop, "patched", lambda: False)
    line = gevent_loop.late_patch_warning({"gevent": b"20", "gevent-monkey-patch": b"true", **INI})
    assert line is not None and line.startswith("otel-uwsgi: ")
    assert "`gevent-early-monkey-patch = true`" in line and "/etc/shop/uwsgi.ini" in line
    assert "MonkeyPatchWarning" in line and "\n" not in line


def test_no_warning_when_gevent_patched_already(monkeypatch):
    """The wsgi file's own monkey.patch_all() before otel_uwsgi.auto is in time."""
    monkeypatch.setattr(gevent_loop, "patched", lambda: True)
    assert gevent_loop.late_patch_warning({"gevent": b"20", "gevent-monkey-patch": b"true", **INI}) is None


def test_patched_is_false_in_an_unpatched_process():
    assert gevent_loop.patched() is False
