"""Spans in one process: the TracerProvider with its sampler and limits (:mod:`.provider`), the
counting batch processor and its ledger (:mod:`.processor`, :mod:`.ledger`), the bounded flush
at exit (:mod:`.flush`) and the lean span start (:mod:`.lean`, on by default).

Does not belong here: when these are built (:mod:`otel_uwsgi.runtime`), how spans are encoded
and sent (:mod:`otel_uwsgi.export`), what creates spans (:mod:`otel_uwsgi.instrumentation`).
"""
