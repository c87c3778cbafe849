"""Logs: trace ids on every log record (:mod:`.correlation`, set up at import in the master) and
optional OTLP export of Python log records per worker (:mod:`.export`).

Does not belong here: otel-uwsgi's own log lines (:mod:`otel_uwsgi.runtime.own_log`).
"""
