"""Tooling that never runs inside a traced worker: ``otel-uwsgi check`` (:mod:`.check`), the Docker
harness's checker (:mod:`.docker_check`), their verdicts (:mod:`.verdict`,
:mod:`.metrics_verdict`) and the causes they lead with (:mod:`.causes`), the uWSGI harness and
request load they drive (:mod:`.harness`, :mod:`.load`, over HTTP or the uwsgi protocol:
:mod:`.uwsgi_client`), the OTLP/HTTP receiver that decodes what arrives (:mod:`.receiver`), the
probe of the ini's own collector (:mod:`.collector`), the option-table generator (:mod:`.docs`),
the trace tree drawn in the terminal (:mod:`.trace_tree`), ``otel-uwsgi samples``
(:mod:`.samples`) and the one wait-until-deadline helper (:mod:`.waiting`).
The tests and benchmarks use them too.

Does not belong here: anything ``import otel_uwsgi.auto`` needs.  Nothing outside this room
imports it.
"""
