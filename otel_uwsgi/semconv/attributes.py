"""Resource and data-point attribute keys otel-uwsgi sets (docs/HOW_IT_WORKS.md; docs/METRICS.md)."""

from __future__ import annotations

#: Semantic conventions 1.27 renamed ``deployment.environment`` to this key.
DEPLOYMENT_ENVIRONMENT = "deployment.environment.name"

# Resource: which uWSGI process this is.
#: ``worker``, ``mule``, ``spooler``, ``master`` (server metrics) or ``process`` (outside uWSGI).
PROCESS_TYPE = "uwsgi.process.type"
#: uWSGI's worker id (1..processes) on a worker's Resource; on server metric points, whose worker.
WORKER_ID = "uwsgi.worker.id"
MULE_ID = "uwsgi.mule.id"

# Server metric points (otel_uwsgi/metrics/server.py).
WORKER_STATUS = "uwsgi.worker.status"
SOCKET_ADDRESS = "uwsgi.socket.address"
