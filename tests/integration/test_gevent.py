"""uWSGI's gevent loop engine (``gevent = N``) on real uWSGI, patched before the app loads, as gevent
asks: by ``gevent-early-monkey-patch``, or by the app's own first line.  (``gevent-monkey-patch``
patches each worker only after the app was loaded: otel-uwsgi names the fix, see
otel_uwsgi/runtime/gevent_loop.py.)

Every request's server span and its outgoing call's client span arrive, and so does the request a
stop cut short (shipped by the master at its exit, in a process gevent patched); uWSGI's log has no
``MonkeyPatchWarning``, no traceback (the ``KeyError`` of ``threading._delete`` at a worker's exit),
no crash.
"""

from __future__ import annotations

import collections
import secrets
import threading

import pytest

from otel_uwsgi.runtime import master_exit

from ..conftest import wait_until

pytestmark = pytest.mark.integration

APP = "tests.integration.apps.gevent_app:application"
#: How gevent's patch comes first: uWSGI's option, or the app's own patch_all() (env).
PATCHES = {
    "gevent-early-monkey-patch": ({"gevent-early-monkey-patch": "true"}, {}),
    "patched-by-the-app": ({}, {"OTEL_UWSGI_TEST_PATCH_FIRST": "1"}),
}
#: What must not be in uWSGI's log.
NOISE = ("MonkeyPatchWarning", "Traceback", "KeyError", "Segmentation Fault", "DAMN", "Exception ignored")
CALLS = 40


@pytest.mark.parametrize("patch", PATCHES)
def test_every_span_arrives_and_the_log_is_clean(start_uwsgi, receiver, downstream, tmp_path, patch):
    extra, env = PATCHES[patch]
    marks = tmp_path / "marks"
    marks.mkdir()
    options = {"module": APP, "gevent": "20", "worker-reload-mercy": "10", **extra}
    server = start_uwsgi("minimal.ini", workers=2, extra=options, env={"OTEL_UWSGI_PROBE_DIR": str(marks), **env})
    answers = server.hammer(f"/call?url={downstream.url}", CALLS, concurrency=8)
    assert [status for status, _ in answers] == [200] * CALLS
    # a request still running when uWSGI stops: its worker is killed, the master ships its journal
    trace_id = secrets.token_hex(16)

    def hang() -> None:
        try:
            server.get("/hang?s=30", headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}, timeout=40)
        except OSError:
            pass  # the stop closed the connection

    threading.Thread(target=hang, daemon=True).start()
    assert wait_until(lambda: any(marks.glob("busy-*")), 15), server.uwsgi.log()[-3000:]
    server.stop()
    log = server.uwsgi.log()
    served = server.uwsgi.served()

    def spans_of_every_call() -> bool:
        spans = receiver.snapshot()
        kinds = collections.Counter(s.kind for s in spans)
        return kinds["SERVER"] >= served.total and kinds["CLIENT"] >= CALLS

    assert wait_until(spans_of_every_call, 15), log[-3000:]
    spans = receiver.snapshot()
    servers = [s for s in spans if s.kind == "SERVER" and s.trace_id != trace_id]
    children = collections.defaultdict(list)
    for span in spans:
        if span.kind == "CLIENT":
            children[(span.trace_id, span.parent_span_id)].append(span)
    calls = [s for s in servers if "/call" in str(s.attributes)]
    assert len(calls) == CALLS == len(downstream.calls)
    assert all(len(children[(s.trace_id, s.span_id)]) == 1 for s in calls), "a call without its client span"
    sent = {headers["traceparent"].split("-")[1] for _, headers in downstream.calls}
    assert sent == {s.trace_id for s in calls}, "traceparent did not carry each request's trace id"
    assert {s.pid for s in servers} <= set(served.spawned)
    noise = [line for line in log.splitlines() if any(word in line for word in NOISE)]
    assert not noise, "\n".join(noise) + "\n" + log[-3000:]
    assert "goodbye to uWSGI" in log
    if master_exit.available():  # the request the stop cut: an ERROR span, shipped by the master
        cut = [s for s in spans if s.trace_id == trace_id and s.kind == "SERVER"]
        assert len(cut) == 1, f"the request the stop cut arrived {len(cut)} times"
        assert cut[0].status_code == 2 and cut[0].attributes.get("error.type") == "worker_died", cut
