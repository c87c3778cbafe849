"""The demo site (traced; Flask with ``OTEL_UWSGI_DEMO_APP=flask``) or ``plain_wsgi``
(``BENCH_PROFILE_APP=plain``) with requests 51-150 under cProfile.

For ``anomalies.py --calls``: the Python functions one request calls, and how often, in a real
uWSGI worker.  The profile (every request's response read and closed inside it, as uWSGI does)
is written to ``BENCH_PROFILE_OUT`` after the 150th request.
"""

import cProfile
import os

if os.environ.get("BENCH_PROFILE_APP") == "plain":
    from plain_wsgi import application as _app
elif os.environ.get("OTEL_UWSGI_DEMO_APP") == "flask":  # run.py --app flask
    from otel_uwsgi.demo.flask_app import application as _app
else:
    from otel_uwsgi.demo.wsgi import application as _app

FIRST, COUNT = 51, 100
_seen = [0]
_profiler = cProfile.Profile()


def application(environ, start_response):
    _seen[0] += 1
    n = _seen[0]
    if not FIRST <= n < FIRST + COUNT:
        return _app(environ, start_response)
    _profiler.enable()
    try:
        result = _app(environ, start_response)
        body = b"".join(result)
        if hasattr(result, "close"):
            result.close()
    finally:
        _profiler.disable()
    if n == FIRST + COUNT - 1:
        _profiler.dump_stats(os.environ["BENCH_PROFILE_OUT"])
    return [body]
