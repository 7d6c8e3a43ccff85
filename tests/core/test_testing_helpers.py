"""meshsync_core.testing: the event factories and the in-memory source/sink plugin authors use."""

from __future__ import annotations

import asyncio

import pytest

from meshsync_core import Engine, EventType, Resource
from meshsync_core.testing import (
    NAMESPACES,
    PODS,
    CaptureSink,
    MemorySource,
    make_deleted,
    make_event,
    make_modified,
    make_object,
)


def test_each_make_event_is_a_new_object_unless_given_a_uid() -> None:
    first, second = make_event("web"), make_event("web")
    assert first.uid != second.uid
    again = make_event("web", EventType.MODIFIED, uid=first.uid, resource_version="2")
    assert (again.uid, again.type, again.resource_version) == (first.uid, EventType.MODIFIED, "2")
    assert "uid" not in again.object  # uid= goes into metadata, not the top level


def test_make_event_defaults() -> None:
    event = make_event()
    assert (event.type, event.resource, event.name, event.namespace) == (
        EventType.ADDED,
        PODS,
        "web",
        "default",
    )
    assert (event.source, event.cluster_id, event.resource_version) == (
        "memory",
        "test-cluster",
        "1",
    )
    assert event.object["apiVersion"] == "v1" and event.object["kind"] == "Pod"
    assert event.raw_json is None


def test_make_event_fields_and_resources() -> None:
    deployments = Resource("apps", "v1", "deployments", "Deployment")
    event = make_event("api", resource=deployments, namespace="shop", spec={"replicas": 2})
    assert event.object["apiVersion"] == "apps/v1" and event.object["kind"] == "Deployment"
    assert (event.namespace, event.object["spec"]) == ("shop", {"replicas": 2})
    assert make_event("x", cluster_id="other").cluster_id == "other"


def test_cluster_scoped_objects_have_an_empty_namespace() -> None:
    event = make_event("kube-system", resource=NAMESPACES)
    assert event.namespace == ""
    assert "namespace" not in event.object["metadata"]
    assert event.describe() == "namespaces kube-system"
    assert make_event("a", namespace=None).namespace == ""


def test_make_modified_is_the_same_object_later() -> None:
    web = make_event("web", data={"a": "1"})
    changed = make_modified(web, data={"a": "2"})
    assert (changed.type, changed.uid, changed.name, changed.namespace) == (
        EventType.MODIFIED,
        web.uid,
        "web",
        "default",
    )
    assert (changed.resource_version, changed.object["data"]) == ("2", {"a": "2"})
    assert make_modified(changed).resource_version == "3"
    # the original is untouched
    assert (web.type, web.resource_version, web.object["data"]) == (
        EventType.ADDED,
        "1",
        {"a": "1"},
    )


def test_make_deleted_full_and_minimal() -> None:
    web = make_event("web", spec={"containers": []})
    gone = make_deleted(web)
    assert (gone.type, gone.uid, gone.name, gone.namespace) == (
        EventType.DELETED,
        web.uid,
        "web",
        "default",
    )
    assert gone.resource_version == "2" and gone.object["spec"] == {"containers": []}
    stub = make_deleted(web, minimal=True)
    assert stub.object == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "uid": web.uid, "resourceVersion": "2"},
    }
    assert web.type is EventType.ADDED and "spec" in web.object
    cluster_scoped = make_deleted(make_event("ns", resource=NAMESPACES), minimal=True)
    assert "namespace" not in cluster_scoped.object["metadata"]


def test_make_object() -> None:
    obj = make_object("ConfigMap", "cm", "shop", "7", uid="u-1", data={"k": "v"})
    assert obj == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm", "uid": "u-1", "resourceVersion": "7", "namespace": "shop"},
        "data": {"k": "v"},
    }
    assert "namespace" not in make_object(namespace=None)["metadata"]


async def test_memory_source_run_ends_after_delivery_and_on_synced() -> None:
    web, db = make_event("web"), make_event("db")
    events = [web, db, make_modified(web), make_deleted(db)]
    sink = CaptureSink()
    result = await Engine([MemorySource(events)], [sink]).run()
    assert (result.exit_code, result.reason) == (0, "sources finished")
    assert [(e.type, e.name) for e in sink.events] == [
        (EventType.ADDED, "web"),
        (EventType.ADDED, "db"),
        (EventType.MODIFIED, "web"),
        (EventType.DELETED, "db"),
    ]
    assert sink.synced.is_set() and sink.closed


async def test_memory_source_current_state_folds_the_history() -> None:
    web, db = make_event("web"), make_event("db")
    source = MemorySource([web, db, make_modified(web), make_deleted(db)])
    state = [event async for event in source.current_state()]
    assert [(e.type, e.name, e.resource_version) for e in state] == [(EventType.ADDED, "web", "2")]


async def test_capture_sink_wait_for_and_fixtures(
    capture_sink: CaptureSink, memory_source: MemorySource
) -> None:
    memory_source.keep_running = True
    engine = Engine([memory_source], [capture_sink])
    task = asyncio.create_task(engine.run())
    assert [e.name for e in await capture_sink.wait_for(3)] == ["pod-0", "pod-1", "pod-2"]
    await asyncio.wait_for(capture_sink.synced.wait(), 5)
    assert capture_sink.names == ["pod-0", "pod-1", "pod-2"]
    with pytest.raises(asyncio.TimeoutError):
        await capture_sink.wait_for(4, timeout=0.05)
    engine.stop()
    assert (await task).reason == "stop requested"
