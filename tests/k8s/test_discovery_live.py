"""Discovery of the default set and CRDs, and live events, against the fake API server."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time

import pytest
from meshsync_k8s.resources import DEFAULT_RESOURCES
from meshsync_testkit.fake_apiserver import KUBE_SYSTEM_UID, FakeApiServer, demo_cluster

from meshsync_core import EventType

from .conftest import fold, wait_until

WIDGET_CRD_KEY = ("example.com", "widgets")


def _widget(name: str, namespace: str = "default") -> dict:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"size": 1},
    }


def _gadget_crd() -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.org"},
        "spec": {
            "group": "example.org",
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [
                {"name": "v1beta1", "served": True, "storage": False, "schema": _schema()},
                {"name": "v2", "served": True, "storage": True, "schema": _schema()},
            ],
        },
    }


def _schema() -> dict:
    return {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}


async def test_default_set_and_crds_are_watched(server: FakeApiServer, run_source) -> None:
    server.load(demo_cluster())
    running = await run_source()
    await running.synced()
    watched = set(running.source.watched())
    expected = {f"{p}.{v}.{g}" for p, v, g in DEFAULT_RESOURCES}
    assert expected <= watched
    # CRD resources at their storage version (v1), not the first listed (v1alpha1) as in Go.
    assert "widgets.v1.example.com" in watched
    assert "meshsyncs.v1alpha1.meshery.io" in watched
    view = fold(running.sink.events)
    server_uids = {
        o["metadata"]["uid"]
        for plural, _v, group in [*DEFAULT_RESOURCES, ("widgets", "v1", "example.com")]
        for o in server.objects(plural, group)
    }
    assert set(view) == server_uids
    # every event carries the cluster id and apiVersion/kind
    assert all(e.cluster_id == KUBE_SYSTEM_UID for e in running.sink.events)
    assert all(e.object.get("kind") and e.object.get("apiVersion") for e in running.sink.events)
    widgets = [e for e in running.sink.events if e.resource.plural == "widgets"]
    assert widgets and all(e.object["apiVersion"] == "example.com/v1" for e in widgets)


async def test_missing_group_is_skipped_with_one_log_line(tmp_path, run_source, caplog) -> None:
    srv = FakeApiServer(disabled_groups={"apiregistration.k8s.io"})
    await srv.start()
    try:
        kc = srv.write_kubeconfig(tmp_path / "kc2")
        caplog.set_level(logging.INFO, logger="meshsync")
        running = await run_source(kubeconfig=str(kc))
        await running.synced()
        assert "apiservices.v1.apiregistration.k8s.io" not in running.source.watched()
        assert "pods.v1." in running.source.watched()
        lines = [r for r in caplog.records if "apiservices" in r.getMessage()]
        assert len(lines) == 1 and "not served" in lines[0].getMessage()
        await running.stop()
    finally:
        await srv.stop()


async def test_crd_added_and_deleted_at_run_time(server: FakeApiServer, run_source) -> None:
    running = await run_source()
    await running.synced()
    assert not any("gadgets" in w for w in running.source.watched())
    crd = server.create(_gadget_crd())
    gadget = server.create(
        {
            "apiVersion": "example.org/v2",
            "kind": "Gadget",
            "metadata": {"name": "g1", "namespace": "default"},
        }
    )
    await wait_until(
        lambda: gadget["metadata"]["uid"] in fold(running.sink.events), what="gadget ADDED"
    )
    assert "gadgets.v2.example.org" in running.source.watched()
    event = next(e for e in running.sink.events if e.uid == gadget["metadata"]["uid"])
    assert event.type is EventType.ADDED and event.resource.version == "v2"

    server.delete(crd)
    await wait_until(
        lambda: not any("gadgets" in w for w in running.source.watched()), what="watch stopped"
    )
    deleted = [e for e in running.sink.events if e.uid == gadget["metadata"]["uid"]]
    assert [e.type for e in deleted] == [EventType.ADDED, EventType.DELETED]
    assert gadget["metadata"]["uid"] not in fold(running.sink.events)


async def test_live_added_modified_deleted_within_a_second(
    server: FakeApiServer, run_source
) -> None:
    running = await run_source(resources=["configmaps"])
    await running.synced()
    start = len(running.sink.events)
    t0 = time.monotonic()
    cm = server.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "live", "namespace": "default"},
            "data": {"a": "1"},
        }
    )
    await running.sink.wait_for(start + 1, timeout=1.0)
    changed = copy.deepcopy(cm)
    changed["data"]["a"] = "2"
    server.update(changed)
    await running.sink.wait_for(start + 2, timeout=1.0)
    last = server.delete(changed)
    await running.sink.wait_for(start + 3, timeout=1.0)
    assert time.monotonic() - t0 < 3.0
    events = running.sink.events[start:]
    assert [e.type for e in events] == [EventType.ADDED, EventType.MODIFIED, EventType.DELETED]
    assert events[1].object["data"] == {"a": "2"}
    # the DELETED event carries the last known object, not a stub
    assert events[2].object["data"] == {"a": "2"}
    assert events[2].resource_version == last["metadata"]["resourceVersion"]


async def test_current_state_and_resync(server: FakeApiServer, run_source) -> None:
    server.load(demo_cluster())
    running = await run_source(resources=["pods", "configmaps"])
    await running.synced()
    state = [e async for e in running.source.current_state()]
    expected = {o["metadata"]["uid"] for o in server.objects("pods") + server.objects("configmaps")}
    assert {e.uid for e in state} == expected
    assert all(e.type is EventType.ADDED and e.object["kind"] for e in state)

    before = len(running.sink.events)
    gone = server.objects("configmaps")[0]
    # resync re-emits every object (Go's resync-discovery) and reports deletions
    await asyncio.wait_for(running.sink.ctx.request_resync(), 5)  # type: ignore[union-attr]
    await wait_until(lambda: len(running.sink.events) >= before + len(expected))
    server.delete(gone)
    await wait_until(lambda: gone["metadata"]["uid"] not in fold(running.sink.events[before:]))
    again = running.sink.events[before : before + len(expected)]
    assert {e.uid for e in again} == expected


@pytest.mark.parametrize(
    "namespaces",
    [["shop"], ["shop", "default"], ["shop", "default", *(f"other-{i}" for i in range(9))]],
)
async def test_namespaces_keep_cluster_scoped(server, run_source, namespaces) -> None:
    server.load(demo_cluster())
    running = await run_source(namespaces=namespaces)
    await running.synced()
    events = running.sink.events
    namespaced = [e for e in events if e.resource.namespaced]
    assert namespaced and all(e.namespace in namespaces for e in namespaced)
    assert any(e.resource.plural == "nodes" for e in events)
    expected = {
        o["metadata"]["uid"]
        for o in server.objects("pods")
        if o["metadata"]["namespace"] in namespaces
    }
    assert {e.uid for e in events if e.resource.plural == "pods"} == expected
    # up to 8 namespaces: one server-side filtered watch each; more: one filtered here
    pod_watchers = running.source.watchers[("", "pods")]
    assert len(pod_watchers) == (len(namespaces) if len(namespaces) <= 8 else 1)
    # the informer-store answer honours the same filter
    state = [e async for e in running.source.current_state()]
    assert {e.uid for e in state if e.resource.plural == "pods"} == expected
    assert all(e.namespace in namespaces for e in state if e.resource.namespaced)


async def test_no_cluster_scoped_is_go_behaviour(server, run_source) -> None:
    server.load(demo_cluster())
    running = await run_source(namespaces=["shop"], cluster_scoped=False)
    await running.synced()
    assert running.sink.events
    assert all(e.resource.namespaced and e.namespace == "shop" for e in running.sink.events)


async def test_selectors_are_applied_server_side(server, run_source) -> None:
    server.load(demo_cluster())
    pods = server.objects("pods")
    label_key, label_value = next(iter(pods[0]["metadata"]["labels"].items()))
    running = await run_source(resources=["pods"], label_selector=f"{label_key}={label_value}")
    await running.synced()
    expected = {
        p["metadata"]["uid"]
        for p in pods
        if p["metadata"].get("labels", {}).get(label_key) == label_value
    }
    assert {e.uid for e in running.sink.events} == expected
    assert any("labelSelector=" in path for _m, path in server.request_log)
    await running.stop()

    name = pods[0]["metadata"]["name"]
    running = await run_source(resources=["pods"], field_selector=f"metadata.name={name}")
    await running.synced()
    assert [e.name for e in running.sink.events] == [name]


async def test_crd_storage_version_change_restarts_without_reemitting(server, run_source) -> None:
    server.load(demo_cluster())
    running = await run_source(resources=["widgets.example.com"])
    await running.synced()
    assert running.source.watched() == ["widgets.v1.example.com"]
    before = len(running.sink.events)
    crd = copy.deepcopy(server.get(_widget_crd_ref()))
    for version in crd["spec"]["versions"]:
        version["storage"] = version["name"] == "v1alpha1"
    server.update(crd)
    await wait_until(lambda: running.source.watched() == ["widgets.v1alpha1.example.com"])
    watcher = running.source.watchers[WIDGET_CRD_KEY][0]
    await wait_until(lambda: watcher.listed, what="re-list at the new version")
    assert len(running.sink.events) == before  # same objects, same resourceVersions
    widget = server.create(_widget("w-new") | {"apiVersion": "example.com/v1alpha1"})
    await wait_until(lambda: widget["metadata"]["uid"] in fold(running.sink.events))


def _widget_crd_ref() -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
    }


async def test_events_hand_over_raw_json_and_decode_on_demand(
    server: FakeApiServer, run_source
) -> None:
    """Listed and watched objects arrive undecoded: identity and raw JSON, the dict on access."""
    server.load(demo_cluster())
    running = await run_source(resources=["configmaps"])
    await running.synced()
    start = len(running.sink.events)
    cm = server.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "raw", "namespace": "default"},
            "data": {"a": "1"},
        }
    )
    await running.sink.wait_for(start + 1, timeout=5.0)
    changes = [e for e in running.sink.events if e.type is not EventType.SYNCED]
    assert len(changes) > 1 and changes[-1].name == "raw"
    for event in changes:
        assert event.raw_json is not None
        raw = json.loads(bytes(event.raw_json))
        meta = raw["metadata"]
        assert (event.uid, event.name, event.namespace, event.resource_version) == (
            meta["uid"],
            meta["name"],
            meta.get("namespace", ""),
            meta["resourceVersion"],
        )
        # Decoded on access, with the apiVersion/kind list items lack.
        assert event.object["kind"] == "ConfigMap" and event.object["apiVersion"] == "v1"
        assert event.object["metadata"] == meta and event.object.get("data") == raw.get("data")
    assert changes[-1].uid == cm["metadata"]["uid"]
