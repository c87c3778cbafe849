"""Resource identity and the provider built from settings (no uWSGI needed)."""

from __future__ import annotations

import os

from otel_uwsgi.config.settings import load
from otel_uwsgi.runtime.resource import DEPLOYMENT_ENVIRONMENT, build_resource, instance_id


def test_resource_has_the_seed_identity_and_worker_fields():
    settings = load(
        {
            "otel-service-name": b"shop",
            "otel-service-version": b"1.4.2",
            "otel-deployment-environment": b"production",
            "otel-resource-attributes": b"team=core,service.version=0.0.0",
        },
        {},
    )
    attrs = build_resource(settings, process_type="worker", worker_id=3, parent_pid=1).attributes
    assert attrs["service.name"] == "shop"
    assert attrs["service.version"] == "1.4.2"  # explicit option beats the attribute list
    assert attrs[DEPLOYMENT_ENVIRONMENT] == "production"
    assert attrs["process.pid"] == os.getpid() and attrs["process.parent_pid"] == 1
    assert attrs["uwsgi.worker.id"] == 3 and attrs["team"] == "core"
    assert attrs["host.name"]


def test_instance_id_is_unique_per_build():
    """Two processes (two builds) never share service.instance.id, even if the env sets one."""
    settings = load({}, {"OTEL_RESOURCE_ATTRIBUTES": "service.instance.id=shared"})
    a = build_resource(settings).attributes["service.instance.id"]
    b = build_resource(settings).attributes["service.instance.id"]
    assert a != b and "shared" not in (a, b)


def test_service_name_from_resource_attributes_when_no_option():
    settings = load({}, {"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs"})
    assert build_resource(settings).attributes["service.name"] == "from-attrs"


def test_instance_id_is_stable_per_instance_and_new_after_reload():
    """A respawned worker 1 continues the series; a reload (new start time) or another master starts a new one."""
    a = instance_id("h", 100, 1700000000)
    assert a == instance_id("h", 100, 1700000000)
    assert a != instance_id("h", 100, 1700000099)
    assert a != instance_id("h", 101, 1700000000)
