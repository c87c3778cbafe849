"""Imported by uWSGI (``import = valgrind_timing``) in the bench tools that run a worker under callgrind.

The span journal rewrites the in-flight record of a request running longer than
``REFRESH_AFTER_S`` (0.2 s) with the request's Python stack, so a worker killed mid-request
leaves that stack behind.  Under callgrind a process runs ~50 times slower: a 5 ms request takes
a quarter of a second there, and some requests of a counted run cross the threshold while no real
one would.  The first such refresh formats a stack and fills ``linecache`` with the source files
in it (~3.7M instructions), which falls in the counted run in some runs and not in others:
±12k instructions per request on ``/`` (bench/README.md, "The third round").
Here the threshold is scaled by the slowdown, so a counted request is refreshed only when it
would be one without callgrind.
"""

from otel_uwsgi.traces.journal import processor

#: callgrind's slowdown on this code, roughly (instructions.py's counts against run.py's timings)
SLOWDOWN = 50
processor.REFRESH_AFTER_S *= SLOWDOWN
