"""Lean Django tracing, the default wherever it is proven span-equal (:mod:`.verified`);
``otel-fast-instrumentation = false`` turns it off.

Emits the spans of opentelemetry-instrumentation-django and of the dbapi integration for
MySQLdb / sqlite3 (same names, kinds, parents, attributes, status and exception events, in the
semantic-convention mode they would use) at a fraction of their per-request CPU: a server-span
middleware that computes each attribute once (:mod:`.middleware`), and DB spans from Django's
``connection.execute_wrapper`` (:mod:`.db`).  Settings the stock instrumentations read from the
environment (excluded URLs, captured headers, traced request attributes) are read once, when
Django builds its middleware chain.

Belongs here: the server-span middleware (:mod:`.middleware`), DB spans (:mod:`.db`), the HTTP
attributes and SQL names they compute (:mod:`.http`, :mod:`.sql`), the tracer they use
(:mod:`.tracer`), switching them on (:mod:`.enable`) and where they may be (:mod:`.verified`).
The lean span start they rely on is :mod:`otel_uwsgi.traces.lean`, shared with the stock
instrumentations.
"""
