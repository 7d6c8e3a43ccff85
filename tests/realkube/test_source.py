"""The Kubernetes source against a real kube-apiserver and etcd: discovery, the initial sync,
controllers creating and garbage-collecting objects, and convergence to the server's state."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from meshsync_core import EventType
from tests.k8s.conftest import Running, fold, start_source, wait_until
from tests.realkube.cluster import ControlPlane
from tests.realkube.fixtures import REAL

DEFAULT_SET = {
    "namespaces", "nodes", "persistentvolumes", "storageclasses", "volumeattachments",
    "clusterroles", "apiservices", "configmaps", "secrets", "persistentvolumeclaims", "pods",
    "services", "endpoints", "replicationcontrollers", "replicasets", "deployments",
    "statefulsets", "daemonsets", "ingresses", "endpointslices", "cronjobs",
}  # fmt: skip


async def server_state(plane: ControlPlane, running: Running) -> dict[str, str]:
    """uid -> resourceVersion of every object the source watches, as the server lists it."""

    def read() -> dict[str, str]:
        out: dict[str, str] = {}
        for watchers in running.source.watchers.values():
            for watcher in watchers:
                listing = plane.api("GET", watcher.path)
                for item in listing["items"]:
                    out[item["metadata"]["uid"]] = item["metadata"]["resourceVersion"]
        return out

    return await asyncio.to_thread(read)


def emitted(running: Running) -> dict[str, str]:
    return {
        uid: obj["metadata"]["resourceVersion"] for uid, obj in fold(running.sink.events).items()
    }


async def converge(plane: ControlPlane, running: Running, timeout: float = 30.0) -> None:
    """Wait until what the source emitted equals what the server holds (the cluster never stops
    changing: kwok and the controllers keep writing status)."""
    last: dict[str, Any] = {}

    async def check() -> bool:
        server = await server_state(plane, running)
        ours = emitted(running)
        last["missing"] = sorted(set(server) - set(ours))[:5]
        last["extra"] = sorted(set(ours) - set(server))[:5]
        last["stale"] = [u for u in server if u in ours and ours[u] != server[u]][:5]
        return server == ours

    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the emitted stream did not converge to the server: {last}")
        await asyncio.sleep(0.2)


async def test_default_set_is_discovered_and_synced(real_kubeconfig: Path, real_cluster) -> None:
    running = start_source(real_kubeconfig, REAL)
    try:
        await running.synced(60)
        watched = {name.split(".", 1)[0] for name in running.source.watched()}
        assert watched >= DEFAULT_SET, f"not watched: {DEFAULT_SET - watched}"
        assert "customresourcedefinitions" not in watched  # followed, not emitted, by default
        kinds = {event.resource.plural for event in running.sink.events if event.uid}
        # a real cluster has these from the moment it runs: its namespaces, the kwok node, the
        # bootstrap ClusterRoles, the kubernetes Service, kube-root-ca.crt in every namespace
        assert {"namespaces", "nodes", "clusterroles", "services", "configmaps"} <= kinds
        await converge(real_cluster, running)
        assert (
            running.source.cluster_id
            == real_cluster.api("GET", "/api/v1/namespaces/kube-system")["metadata"]["uid"]
        )
    finally:
        await running.stop()


async def test_deployment_lifecycle_through_the_controllers(
    real_kubeconfig: Path, real_cluster: ControlPlane, real_namespace: str
) -> None:
    running = start_source(
        real_kubeconfig,
        REAL,
        resources=["deployments", "replicasets", "pods"],
        namespaces=[real_namespace],
    )
    try:
        await running.synced(60)
        real_cluster.apply(deployment(real_namespace, "web", replicas=3))

        def pods_running() -> bool:
            pods = running.by_plural("pods")
            return len(pods) == 3 and all(
                p.get("status", {}).get("phase") == "Running" for p in pods.values()
            )

        await wait_until(pods_running, 60, "3 Running pods (scheduler + kwok)")
        view = fold(running.sink.events)
        deployments = [o for o in view.values() if o["kind"] == "Deployment"]
        replicasets = [o for o in view.values() if o["kind"] == "ReplicaSet"]
        pods = [o for o in view.values() if o["kind"] == "Pod"]
        assert len(deployments) == 1 and len(replicasets) == 1
        # ownership as the controllers wrote it: Pod -> ReplicaSet -> Deployment
        assert owner_uid(replicasets[0]) == deployments[0]["metadata"]["uid"]
        assert {owner_uid(p) for p in pods} == {replicasets[0]["metadata"]["uid"]}
        # each object's own history arrives in order: ADDED first, resourceVersions rising.
        # (Across resources there is no order to keep: each is its own watch stream, in
        # Kubernetes as in client-go's informers.)
        for uid in view:
            history = [e for e in running.sink.events if e.uid == uid]
            assert history[0].type is EventType.ADDED
            versions = [int(e.resource_version) for e in history]
            assert versions == sorted(versions) and len(set(versions)) == len(versions)
        # the pods went Pending -> Running in front of us, as kwok moved them
        phases = [e.object.get("status", {}).get("phase") for e in running.sink.events
                  if e.resource.plural == "pods"]  # fmt: skip
        assert "Running" in phases and phases.index("Running") > 0

        real_cluster.api(
            "DELETE",
            f"/apis/apps/v1/namespaces/{real_namespace}/deployments/web",
            {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
        )
        await wait_until(lambda: not fold(running.sink.events), 60, "every cascaded DELETED")
        deleted = {e.uid for e in running.sink.events if e.type is EventType.DELETED}
        assert deleted == {o["metadata"]["uid"] for o in deployments + replicasets + pods}
    finally:
        await running.stop()


def owner_uid(obj: dict[str, Any]) -> str:
    (owner,) = obj["metadata"]["ownerReferences"]
    return str(owner["uid"])


def deployment(namespace: str, name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{"name": "app", "image": "example.invalid/app:1"}],
                    # kwok's fake node carries this taint-free label; nothing else could run it
                    "nodeSelector": {"type": "kwok"},
                    "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists"}],
                },
            },
        },
    }
