"""SIGKILL + restart against the real kube-apiserver: what changed while no MeshSync ran
(deletes, updates, adds) reaches the NATS consumer from the published index in a JetStream
key-value bucket, and nothing else does. The resourceVersions, uids and list semantics are the
real server's."""

from __future__ import annotations

import signal
from pathlib import Path

from meshsync_testkit.nats_server import NatsServer

from tests.integration.test_restart_index import _start, _stop
from tests.nats.helpers import Subscriber, wait_indexed, wait_until
from tests.realkube.cluster import ControlPlane


def _configmap(namespace: str, name: str, value: str = "1") -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace}, "data": {"v": value}}  # fmt: skip


def _cluster(real_cluster: ControlPlane, namespace: str) -> dict[str, str]:
    listed = real_cluster.api("GET", f"/api/v1/namespaces/{namespace}/configmaps")
    return {o["metadata"]["uid"]: o["metadata"]["resourceVersion"] for o in listed["items"]}


def _picture(sub: Subscriber, namespace: str) -> dict[str, str]:
    return {
        uid: version
        for uid, version in sub.versions().items()
        if sub.view[uid]["kind"] == "ConfigMap"
        and sub.view[uid]["metadata"].get("namespace") == namespace
    }


async def test_sigkill_and_restart_against_a_real_apiserver(
    tmp_path: Path, real_cluster: ControlPlane, real_kubeconfig: Path, real_namespace: str
) -> None:
    ns = real_namespace
    for i in range(20):
        real_cluster.apply(_configmap(ns, f"cm-{i}"))
    scope = ["--resources", "configmaps", "--namespaces", ns, "--no-meshsync-cr"]
    with NatsServer(tmp_path / "nats", jetstream=True) as nats_server:
        sub = Subscriber()
        await sub.connect(nats_server.url)
        try:
            first = _start(tmp_path, real_kubeconfig, nats_server.url, *scope)
            try:
                await wait_until(
                    lambda: _picture(sub, ns) == _cluster(real_cluster, ns), 60, "the first sync"
                )
                await wait_indexed(nats_server.url, set(_cluster(real_cluster, ns)))
                first.send_signal(signal.SIGKILL)
                first.wait(timeout=10)
            finally:
                _stop(first)
            published = _picture(sub, ns)  # what the consumer holds when MeshSync dies
            # while no MeshSync runs
            gone = real_cluster.api("GET", f"/api/v1/namespaces/{ns}/configmaps/cm-0")
            real_cluster.api("DELETE", f"/api/v1/namespaces/{ns}/configmaps/cm-0")
            changed = real_cluster.apply(_configmap(ns, "cm-1", "changed"))
            added = real_cluster.apply(_configmap(ns, "cm-new"))
            heard = len(sub.messages)
            second = _start(tmp_path, real_kubeconfig, nats_server.url, *scope)
            try:
                await wait_until(
                    lambda: _picture(sub, ns) == _cluster(real_cluster, ns), 60, "the diff"
                )
            finally:
                err = _stop(second)
            after = {(m["EventType"], m["Object"]["metadata"]["uid"]) for m in sub.messages[heard:]}
            assert {
                ("ADDED", added["metadata"]["uid"]),
                ("DELETED", gone["metadata"]["uid"]),
                ("MODIFIED", changed["metadata"]["uid"]),
            } <= after, err
            # and nothing else: only the difference between what was published and the cluster
            # (the controller-manager may add kube-root-ca.crt to the namespace at any time)
            now = _cluster(real_cluster, ns)
            difference = (
                {("ADDED", uid) for uid in now.keys() - published.keys()}
                | {("DELETED", uid) for uid in published.keys() - now.keys()}
                | {("MODIFIED", uid) for uid in now.keys() & published.keys()
                   if now[uid] != published[uid]}
            )  # fmt: skip
            assert after == difference, err
            assert len(sub.messages) - heard == len(difference)  # each said once
        finally:
            await sub.close()
