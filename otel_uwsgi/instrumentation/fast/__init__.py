"""Lean Django and Flask tracing, the default wherever it is proven span-equal (:mod:`.verified`);
``otel-fast-instrumentation = false`` turns it off.

Emits the spans of opentelemetry-instrumentation-django, -flask and of the dbapi integration
for Django's drivers (same names, kinds, parents, attributes, status and exception events, in
the semantic-convention mode they would use) at a fraction of their per-request CPU: a Django
server-span middleware that computes each attribute once (:mod:`.middleware`), Flask's server
span from the hooks the stock one uses (:mod:`.flask_request`, switched on by :mod:`.flask`
where it was proven equal), and DB spans from Django's ``connection.execute_wrapper``
(:mod:`.db`).  Settings the stock instrumentations read from the environment (excluded URLs,
captured headers, traced request attributes) are read once, when they are switched on.

Belongs here: the server spans (:mod:`.middleware`, :mod:`.flask_request`) and what they share
(:mod:`.server_span`, :mod:`.server_metrics`), DB spans (:mod:`.db`), the HTTP attributes and
SQL names they compute (:mod:`.http`, :mod:`.sql`), the tracer they use (:mod:`.tracer`),
switching them on (:mod:`.enable`, :mod:`.flask`) and where they may be (:mod:`.verified`).  The
lean span start they rely on is :mod:`otel_uwsgi.traces.lean`, shared with the stock
instrumentations.
"""
