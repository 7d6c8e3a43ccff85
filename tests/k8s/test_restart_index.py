"""The Kubernetes source against the published index: a restart lists the cluster and emits
only the difference from what an earlier run published (kept here in a local index file, as
``--published-index-file`` does for any sink)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from meshsync_k8s.source import KubernetesSource
from meshsync_testkit.fake_apiserver import FakeApiServer, demo_cluster

from meshsync_core import Engine, EventType, Options
from meshsync_core.testing import CaptureSink

from .conftest import FAST, fold, rv_view, server_view
from .test_discovery_live import _gadget_crd

RESOURCES = [("configmaps", ""), ("pods", ""), ("services", "")]


async def _run_until_synced(kubeconfig: Path, index: Path, **options: Any) -> CaptureSink:
    """One run, from start to its initial sync, then a clean stop (a rolling update)."""
    source = KubernetesSource(Options({"kubeconfig": str(kubeconfig), **options}), tuning=FAST)
    sink = CaptureSink()
    engine = Engine([source], [sink], published_index=True, published_index_file=str(index))
    task = asyncio.create_task(engine.run())
    await asyncio.wait_for(sink.synced.wait(), 10)
    engine.stop("test done")
    await asyncio.wait_for(task, 10)
    return sink


def _changes(sink: CaptureSink) -> list[tuple[EventType, str]]:
    return sorted(
        ((e.type, e.name) for e in sink.events if e.type is not EventType.SYNCED),
        key=lambda change: (change[0].value, change[1]),
    )


async def test_a_restart_emits_only_what_changed_while_down(
    server: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    server.load(demo_cluster())
    index = tmp_path / "index"
    first = await _run_until_synced(kubeconfig, index, resources=["configmaps", "pods", "services"])
    configmaps = server.objects("configmaps")
    gone = server.delete(configmaps[0])
    changed = configmaps[1]
    changed["data"] = {"while": "down"}
    server.update(changed)
    server.create(
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "new-while-down", "namespace": "default"}}
    )  # fmt: skip
    second = await _run_until_synced(
        kubeconfig, index, resources=["configmaps", "pods", "services"]
    )
    assert _changes(second) == sorted(
        [
            (EventType.ADDED, "new-while-down"),
            (EventType.DELETED, gone["metadata"]["name"]),
            (EventType.MODIFIED, changed["metadata"]["name"]),
        ],
        key=lambda change: (change[0].value, change[1]),
    )
    # the consumer's picture (first run + the diff) equals the cluster
    assert rv_view(fold([*first.events, *second.events])) == server_view(server, RESOURCES)
    # and a third start with nothing changed emits nothing at all
    third = await _run_until_synced(kubeconfig, index, resources=["configmaps", "pods", "services"])
    assert _changes(third) == []


async def test_a_resource_forbidden_at_restart_keeps_its_objects(
    server: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    """A list that fails (RBAC changed) says nothing about the objects: no DELETED for them."""
    server.load(demo_cluster())
    index = tmp_path / "index"
    await _run_until_synced(kubeconfig, index, resources=["configmaps", "services"])
    server.faults.forbid("services")
    second = await _run_until_synced(kubeconfig, index, resources=["configmaps", "services"])
    assert _changes(second) == []
    server.faults.allow("services")
    third = await _run_until_synced(kubeconfig, index, resources=["configmaps", "services"])
    assert _changes(third) == []  # still known as published: nothing to say


async def test_custom_resources_of_a_crd_deleted_while_down_are_deleted(
    server: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    server.load(demo_cluster())
    server.create(_gadget_crd())
    for name in ("g1", "g2"):
        server.create(
            {"apiVersion": "example.org/v2", "kind": "Gadget",
             "metadata": {"name": name, "namespace": "default"}}
        )  # fmt: skip
    index = tmp_path / "index"
    first = await _run_until_synced(kubeconfig, index)
    assert {e.name for e in first.events if e.resource.plural == "gadgets"} == {"g1", "g2"}
    server.delete(server.get(_gadget_crd()))  # its custom resources go with it
    second = await _run_until_synced(kubeconfig, index)
    gadgets = [(e.type, e.name) for e in second.events if e.resource.plural == "gadgets"]
    assert sorted(gadgets) == [(EventType.DELETED, "g1"), (EventType.DELETED, "g2")]
    deleted = next(e for e in second.events if e.resource.plural == "gadgets")
    assert deleted.object["apiVersion"] == "example.org/v2"
    assert deleted.object["kind"] == "Gadget"
    # they belong to the initial sync: delivered before on_synced
    assert second.synced_after is not None
    assert all(
        i < second.synced_after
        for i, e in enumerate(second.events)
        if e.resource.plural == "gadgets"
    )
