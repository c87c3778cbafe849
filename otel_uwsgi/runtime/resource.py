"""The Resource of one uWSGI process, built in that process after fork (and the instance's, for
server metrics).

Built by hand rather than with ``Resource.create``: that call re-reads ``OTEL_RESOURCE_ATTRIBUTES``
and ``OTEL_SERVICE_NAME`` from the environment, which would undo *uwsgi option > environment*.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Optional

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.version import __version__ as sdk_version

from otel_uwsgi.config.settings import Settings
from otel_uwsgi.semconv.attributes import DEPLOYMENT_ENVIRONMENT, MULE_ID, PROCESS_TYPE, WORKER_ID

_INSTANCE_NAMESPACE = uuid.UUID("6f1c1b1e-5a2d-4c3e-9f0a-7d9e8b2c4a11")


def build_resource(
    settings: Settings,
    *,
    process_type: str = "worker",
    worker_id: Optional[int] = None,
    mule_id: Optional[int] = None,
    pid: Optional[int] = None,
    parent_pid: Optional[int] = None,
) -> Resource:
    """Identity of this process: service, deployment, host, pid and a fresh instance id.

    ``service.instance.id`` is a new UUID per process so two workers (or a worker and its
    respawn) never share one; ``process.pid`` is this process's pid, not the master's.
    """
    attributes: dict[str, object] = {
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": sdk_version,
    }
    attributes.update(settings["otel-resource-attributes"])
    explicit = {
        "service.name": settings["otel-service-name"]
        if settings.source("otel-service-name") != "default"
        else attributes.get("service.name", settings["otel-service-name"]),
        "service.version": settings["otel-service-version"],
        DEPLOYMENT_ENVIRONMENT: settings["otel-deployment-environment"],
    }
    attributes.update({k: v for k, v in explicit.items() if v is not None})
    attributes.update(
        {
            "service.instance.id": str(uuid.uuid4()),
            "host.name": socket.gethostname(),
            "process.pid": pid if pid is not None else os.getpid(),
            "process.parent_pid": parent_pid if parent_pid is not None else os.getppid(),
            PROCESS_TYPE: process_type,
        }
    )
    if worker_id is not None:
        attributes[WORKER_ID] = worker_id
    if mule_id is not None:
        attributes[MULE_ID] = mule_id
    return Resource(attributes)


def instance_id(host: str, master_pid: int, started_on: int) -> str:
    """A ``service.instance.id`` stable for one uWSGI instance (and new after a reload)."""
    return str(uuid.uuid5(_INSTANCE_NAMESPACE, f"{host}/{master_pid}/{started_on}"))


def build_instance_resource(settings: Settings, *, master_pid: int, started_on: int) -> Resource:
    """The uWSGI instance's identity, for what the instance reports as a whole (server metrics):
    the master's pid, an instance id derived from host, master pid and start time (so a respawned
    worker 1 continues the same series), no worker id."""
    master = master_pid or os.getppid()
    attributes = dict(build_resource(settings, process_type="master", pid=master).attributes)
    attributes.pop("process.parent_pid", None)
    attributes[PROCESS_TYPE] = "master"
    attributes["service.instance.id"] = instance_id(str(attributes["host.name"]), master, started_on)
    return Resource(attributes)
