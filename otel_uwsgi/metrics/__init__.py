"""Metrics of one process: the MeterProvider with its reader and exporter, and the span delivery
counts as ``otel_uwsgi.spans`` (:mod:`.provider`); uWSGI's own health as ``uwsgi.*``, exported
once per instance by worker 1 (:mod:`.server`), and the client of uWSGI's stats server it reads
(:mod:`.stats_server`).

Does not belong here: reading ``uwsgi`` itself (passed in by :mod:`otel_uwsgi.runtime`), when
the providers start and stop (:mod:`otel_uwsgi.runtime.metrics_and_logs`).
"""
