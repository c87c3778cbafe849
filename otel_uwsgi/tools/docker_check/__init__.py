"""``python -m otel_uwsgi.tools.docker_check``: the checker of the Docker harness (``docker/harness``).

``otel-uwsgi check`` runs uWSGI itself; here uWSGI runs in another container (``app``) and this
module only talks to it over the network:

1. an OTLP/HTTP :class:`~otel_uwsgi.tools.receiver.Receiver` listens on ``--listen`` (``0.0.0.0:4318``:
   the collector, or the app directly, sends spans to ``http://checker:4318``);
2. wait until uWSGI's stats server (``--stats``, JSON) lists every worker with a pid and the app
   answers ``--url`` with a 2xx;
3. send concurrent requests until the stats server shows every worker served at least one and
   at least ``--requests`` in total, then stop the load and read the final per-worker counts
   (``workers[].id``, ``workers[].pid``, ``workers[].requests``) as a :class:`Served`;
4. write ``q`` to uWSGI's master FIFO (``--fifo``, on a volume shared with the app): a graceful
   shutdown, during which each worker flushes its spans;
5. wait until the stats port stops answering (uWSGI is gone), then until as many server spans as
   requests served have arrived (or ``--span-timeout`` / no new span for ``--settle`` seconds);
6. print the per-worker table (:func:`otel_uwsgi.tools.verdict.render`) or ``--json``; exit 0 only when
   the report is ok.

The run is :mod:`.run`, the command line :mod:`.__main__`; what the stats server and master
FIFO are to it, :mod:`.uwsgi_remote` (pure parts unit-tested without Docker).
"""
