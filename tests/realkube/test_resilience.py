"""Watches against a real apiserver that goes away: restarts, real 410 Gone after etcd
compaction, and convergence to the server's state with no duplicate ADDED and no lost DELETED."""

from __future__ import annotations

import asyncio
from pathlib import Path

from meshsync_core import EventType
from tests.k8s.conftest import fold, start_source, wait_until
from tests.realkube.cluster import ControlPlane
from tests.realkube.fixtures import REAL, eventually
from tests.realkube.test_source import converge


def configmap(namespace: str, name: str, value: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"value": value},
    }


def compacted_past(plane: ControlPlane, namespace: str, resource_version: str, url: str) -> bool:
    """True once etcd no longer holds `resource_version` (an exact list at it is 410 Gone)."""
    status, _ = plane.request(
        "GET",
        f"/api/v1/namespaces/{namespace}/configmaps?resourceVersion={resource_version}"
        "&resourceVersionMatch=Exact&limit=1",
        url=url,
    )
    return status == 410


async def test_apiserver_restart_with_missed_changes_and_compaction(
    real_kubeconfig: Path, real_cluster: ControlPlane, real_namespace: str
) -> None:
    ns = real_namespace
    for i in range(12):
        real_cluster.apply(configmap(ns, f"cm-{i}", "v1"))
    running = start_source(real_kubeconfig, REAL, resources=["configmaps"], namespaces=[ns])
    try:
        await running.synced(60)
        await converge(real_cluster, running)
        before = fold(running.sink.events)
        seen_rv = max(int(o["metadata"]["resourceVersion"]) for o in before.values())
        deleted_uids = {
            o["metadata"]["uid"]
            for o in before.values()
            if o["metadata"]["name"] in ("cm-0", "cm-1", "cm-2")
        }

        # The watched apiserver goes away; another one on the same etcd takes the changes.
        other = await asyncio.to_thread(real_cluster.second_apiserver)
        await asyncio.to_thread(real_cluster.stop_apiserver)
        for i in range(3):
            real_cluster.api("DELETE", f"/api/v1/namespaces/{ns}/configmaps/cm-{i}", url=other)
        for i in range(3, 6):
            real_cluster.api(
                "PUT",
                f"/api/v1/namespaces/{ns}/configmaps/cm-{i}",
                configmap(ns, f"cm-{i}", "v2"),
                url=other,
            )
        for i in range(12, 15):
            real_cluster.api(
                "POST",
                f"/api/v1/namespaces/{ns}/configmaps",
                configmap(ns, f"cm-{i}", "v1"),
                url=other,
            )
        # etcd's history of those changes is compacted away: no watch can replay them
        await asyncio.to_thread(
            eventually,
            lambda: compacted_past(real_cluster, ns, str(seen_rv), other),
            60,
            "etcd compaction past the source's last resourceVersion",
        )
        await asyncio.to_thread(real_cluster.start_apiserver)

        await converge(real_cluster, running, timeout=60)
        gone = {e.uid for e in running.sink.events if e.type is EventType.DELETED}
        assert gone == deleted_uids  # each missed delete arrives, once
        names = {o["metadata"]["name"]: o for o in fold(running.sink.events).values()}
        assert {names[f"cm-{i}"]["data"]["value"] for i in range(3, 6)} == {"v2"}
        assert {f"cm-{i}" for i in range(12, 15)} <= set(names)
        assert (
            running.source.metrics.value(
                "k8s_watch_errors_total", resource="configmaps.v1.", code="410"
            )
            >= 1
        ), "the source never saw a real 410"
    finally:
        await running.stop()


async def test_watch_resumes_across_a_graceful_apiserver_restart(
    real_kubeconfig: Path, real_cluster: ControlPlane, real_namespace: str
) -> None:
    ns = real_namespace
    running = start_source(real_kubeconfig, REAL, resources=["configmaps"], namespaces=[ns])
    try:
        await running.synced(60)
        await asyncio.to_thread(real_cluster.stop_apiserver)
        await asyncio.to_thread(real_cluster.start_apiserver)
        real_cluster.apply(configmap(ns, "after-restart", "x"))
        await wait_until(
            lambda: any(
                o["metadata"]["name"] == "after-restart" for o in fold(running.sink.events).values()
            ),
            30,
            "the change made after the restart",
        )
        await converge(real_cluster, running)
    finally:
        await running.stop()
