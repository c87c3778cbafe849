"""The tools' one uWSGI ini reader (only ``[uwsgi]``, comments skipped, repeated keys kept in
order, read with ``uwsgi.opt``'s rules) and the one rule for what SIGTERM does (die-on-term)."""

from __future__ import annotations

import pytest

from otel_uwsgi.config import uwsgi_ini, uwsgi_opt

INI = """\
; a comment before any section
master = false
[uwsgi]
  master = true
# a comment
; another = comment
processes = 2
set-ph = otel-service-name=shop = east

processes = 4
a line without an equals sign
[other]
processes = 9
strict = true
[ uwsgi ]
module = app:application
"""


def test_only_the_uwsgi_section_counts_in_order_with_repeats():
    assert uwsgi_ini.items(INI) == [
        ("master", "true"),
        ("processes", "2"),
        ("set-ph", "otel-service-name=shop = east"),
        ("processes", "4"),
        ("module", "app:application"),
    ]


def test_lines_keep_what_was_written_and_mark_lines_without_a_key():
    lines = list(uwsgi_ini.lines(INI))
    assert lines[0] == uwsgi_ini.Line("master", "true", "  master = true")
    assert uwsgi_ini.Line(None, "", "a line without an equals sign") in lines
    assert [line.key for line in lines] == ["master", "processes", "set-ph", "processes", None, "module"]


def test_read_takes_a_file(tmp_path):
    path = tmp_path / "app.ini"
    path.write_text(INI)
    assert uwsgi_ini.read(path) == uwsgi_ini.items(INI)
    assert uwsgi_ini.read(str(path)) == uwsgi_ini.items(INI)


def test_options_read_like_uwsgi_opt_the_last_value_wins():
    opt = uwsgi_ini.options(uwsgi_ini.items(INI))
    assert opt["processes"] == ["2", "4"]
    assert uwsgi_opt.integer(opt, "processes", 1) == 4
    assert uwsgi_opt.flag(opt, "master")
    assert not uwsgi_opt.flag(opt, "strict")  # only in [other]
    assert uwsgi_opt.text(opt["module"]) == "app:application"


@pytest.mark.parametrize(
    "lines, on",
    [
        ("die-on-term = true", True),
        ("die-on-term = Yes", True),
        ("die-on-term = 1", True),
        ("die-on-term = on", True),
        ("die-on-term =", True),  # an empty value is on, as for uWSGI
        ("die-on-term = false", False),
        ("die-on-term = 0", False),
        ("die-on-term = true\ndie-on-term = false", False),  # the last one wins
        ("die-on-term = false\ndie-on-term = true", True),
        ("master = true", False),
    ],
)
def test_an_ini_flag_uses_uwsgis_boolean_spelling(lines, on):
    opt = uwsgi_ini.options(uwsgi_ini.items(f"[uwsgi]\n{lines}\n"))
    assert uwsgi_opt.flag(opt, "die-on-term") is on
    assert uwsgi_opt.sigterm_reloads(opt) is not on


@pytest.mark.parametrize(
    "opt, version, reloads",
    [
        ({}, (2, 0, 28), True),  # uWSGI 2.0 reloads on SIGTERM without die-on-term
        ({}, (), True),  # version unknown: taken as 2.0
        ({}, None, True),
        ({"die-on-term": True}, (2, 0, 28), False),  # --die-on-term on the command line
        ({"die-on-term": b"true"}, (2, 0), False),
        ({"die-on-term": [b"true", b"false"]}, (2, 0), True),  # repeated in the ini: the last one wins
        ({"die-on-term": b"false"}, (2, 0, 21), True),
        ({}, (2, 1), False),  # 2.1 stops on SIGTERM by default
        ({}, (2, 1, 0), False),
        ({}, (3, 0), False),
    ],
)
def test_sigterm_reloads_uwsgi_2_0_without_die_on_term(opt, version, reloads):
    assert uwsgi_opt.sigterm_reloads(opt, version) is reloads
