"""The headline of a failed check is its cause (tools/causes.py, verdict.explain): uWSGI's fatal
line, then the app's exception while it loaded, then otel-uwsgi's line that stopped the start,
then its warnings by consequence; never an info line, never an advisory warning over a worse
problem; and it never contradicts the table."""

from __future__ import annotations

from otel_uwsgi.runtime.preflight import CONTAINER_STOP
from otel_uwsgi.tools.causes import causes, headline
from otel_uwsgi.tools.harness import parse_log
from otel_uwsgi.tools.receiver import ReceivedSpan
from otel_uwsgi.tools.verdict import evaluate, explain

CONTAINER = CONTAINER_STOP.replace("otel-uwsgi: ", "otel-uwsgi: WARNING: ", 1)
INFO = "otel-uwsgi: instrumented django, mysqlclient, sqlite3"
IMPORT_ERROR_LOG = f"""\
*** Operational MODE: preforking ***
{CONTAINER}
{INFO}
Traceback (most recent call last):
  File "/srv/app/wsgi.py", line 3, in <module>
    import flask
ModuleNotFoundError: No module named 'flask'
unable to load app 0 (mountpoint='') (callable not found or import error)
*** no app loaded. GAME OVER ***
"""
LATE = ("otel-uwsgi: WARNING: the Flask app was created before otel_uwsgi.auto was imported; its requests "
        "make no server span")


def test_the_apps_import_error_leads_not_a_warning_nor_an_info_line():
    line = headline(IMPORT_ERROR_LOG)
    assert line == "ModuleNotFoundError: No module named 'flask' (at /srv/app/wsgi.py:3)"
    report = explain(evaluate(parse_log(IMPORT_ERROR_LOG), [], 2), IMPORT_ERROR_LOG, started=False)
    assert not report.ok and report.reason == line
    assert INFO not in report.problems
    assert report.problems[-1] == CONTAINER  # advisory: after the run's own problems


def test_uwsgis_fatal_line_leads():
    log = "[strict-mode] unknown config directive: otel-servce-name\n" + IMPORT_ERROR_LOG
    assert headline(log) == "[strict-mode] unknown config directive: otel-servce-name"
    assert headline("chdir(): No such file or directory [core/uwsgi.c line 2637]\n").startswith("chdir(): ")


def test_a_chained_exception_gives_the_final_one():
    log = (
        "Traceback (most recent call last):\n  File \"/x/base.py\", line 15, in <module>\n    import MySQLdb\n"
        "ModuleNotFoundError: No module named 'MySQLdb'\n\n"
        "The above exception was the direct cause of the following exception:\n\n"
        "Traceback (most recent call last):\n  File \"/x/wsgi.py\", line 4, in <module>\n    x()\n"
        "django.core.exceptions.ImproperlyConfigured: Error loading MySQLdb module.\nDid you install mysqlclient?\n"
        "*** no app loaded. GAME OVER ***\n"
    )
    final = "django.core.exceptions.ImproperlyConfigured: Error loading MySQLdb module. (at /x/wsgi.py:4)"
    assert headline(log) == final


def test_a_requests_traceback_or_otel_uwsgis_own_is_not_the_apps_load_error():
    served = "otel-uwsgi-req pid=10 wid=1 status=500 uri=/\n"
    request_time = served + "Traceback (most recent call last):\n  File \"/x\", line 1, in v\nKeyError: 'k'\n"
    assert headline(request_time) is None
    own = "otel-uwsgi: ERROR: could not set up tracing in pid 3\nTraceback (most recent call last):\n" \
          "  File \"/x\", line 1, in f\nRuntimeError: boom\n"
    assert headline(own) == "otel-uwsgi: ERROR: could not set up tracing in pid 3"


def test_otel_uwsgis_warnings_by_consequence_and_never_an_info_line():
    master = ("otel-uwsgi: WARNING: `master` is not enabled with several processes; set `master = true` so each "
              "worker gets its own tracer after fork")
    log = "\n".join([INFO, CONTAINER, master, LATE, INFO])
    assert [c.line for c in causes(log)] == [LATE, master, CONTAINER]
    assert headline(log) == LATE
    assert headline(INFO + "\n") is None and headline(CONTAINER + "\n") is None


def test_the_line_that_stopped_the_start_leads_a_run_that_never_started():
    stop = "otel-uwsgi: unknown option otel-servce-name in /tmp/c/uwsgi.ini; did you mean otel-service-name?"
    log = f"{CONTAINER}\n{INFO}\n{stop}\n"
    report = explain(evaluate(parse_log(log), [], 2), log, renamed={"/tmp/c/uwsgi.ini": "app.ini"}, started=False)
    assert report.reason == stop.replace("/tmp/c/uwsgi.ini", "app.ini")


def test_an_advisory_warning_never_leads_over_the_runs_own_problem():
    log = (f"spawned uWSGI worker 1 (pid: 10, cores: 1)\n{CONTAINER}\n"
           "otel-uwsgi-req pid=10 wid=1 status=200 uri=/\notel-uwsgi-req pid=10 wid=1 status=200 uri=/\n")
    report = explain(evaluate(parse_log(log), [_span(10, "SERVER")], 1), log)
    assert report.reason.startswith("1 of 2 requests have no server span")
    assert report.problems[-1] == CONTAINER
    passed = explain(evaluate(parse_log(log), [_span(10, "SERVER"), _span(10, "SERVER")], 1), log)
    assert passed.ok and CONTAINER in passed.notes


def _span(pid: int, kind: str, **attributes: object) -> ReceivedSpan:
    resource = {"process.pid": pid, "service.instance.id": str(pid)}
    return ReceivedSpan("s", kind, "t", "s", "", dict(attributes), resource, "x", 0, ())


def test_child_spans_without_server_spans_say_so_and_name_the_late_import():
    """The table shows DB and cache spans from the workers: the headline does not say they sent none."""
    log = ("spawned uWSGI worker 1 (pid: 10, cores: 1)\nspawned uWSGI worker 2 (pid: 11, cores: 1)\n"
           "otel-uwsgi-req pid=10 wid=1 status=200 uri=/\notel-uwsgi-req pid=11 wid=2 status=200 uri=/\n")
    spans = [_span(10, "CLIENT", **{"db.system": "mysql"}), _span(11, "CLIENT", **{"db.system": "redis"})]
    report = explain(evaluate(parse_log(log), spans, 2), log)
    assert report.reason.startswith("2 of 2 workers sent no server span but 2 child spans (worker 1, 2)")
    assert "before `import otel_uwsgi.auto`" in report.reason and "sent no spans" not in report.reason
    warned = explain(evaluate(parse_log(log + LATE + "\n"), spans, 2), log + LATE + "\n")
    assert warned.reason == LATE and "2 child spans" in warned.problems[1]
