"""The attribute keys otel-uwsgi writes on its telemetry, spelled once (:mod:`.attributes`).

They live in a room of their own on the bottom floor because both sides use them: the rooms that
write them (:mod:`otel_uwsgi.runtime.resource`, :mod:`otel_uwsgi.metrics.server`) and the tools and
tests that read them back from a collector (:mod:`otel_uwsgi.tools`).  :mod:`otel_uwsgi.config` is
also on the bottom floor but owns the options, not the names of what is emitted.

Does not belong here: anything but names (no code, no imports of other rooms).
"""
