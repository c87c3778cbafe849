"""How telemetry leaves the process: the OTLP/HTTP exporter arguments of every signal, resolved
once (:mod:`.otlp`), the direct OTLP protobuf encoder (:mod:`.encoder`) and the span exporter
that uses it with the SDK's HTTP client (:mod:`.span_exporter`).

Does not belong here: which spans exist or are dropped (:mod:`otel_uwsgi.traces`), the C
extension's loader (:mod:`otel_uwsgi.native`).  Imports only config and native.
"""
