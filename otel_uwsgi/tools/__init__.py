"""Tooling that never runs inside a traced worker: ``otel-uwsgi check`` (:mod:`.check`), the Docker
harness's checker (:mod:`.docker_check`), their verdicts (:mod:`.verdict`,
:mod:`.metrics_verdict`), the uWSGI harness and request load they drive (:mod:`.harness`,
:mod:`.load`), the OTLP/HTTP receiver that decodes what arrives (:mod:`.receiver`), the
option-table generator (:mod:`.docs`), ``otel-uwsgi samples`` (:mod:`.samples`) and the one
wait-until-deadline helper (:mod:`.waiting`).
The tests and benchmarks use them too.

Does not belong here: anything ``import otel_uwsgi.auto`` needs.  Nothing outside this room
imports it.
"""
