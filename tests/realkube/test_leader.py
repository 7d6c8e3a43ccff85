"""Leader election against the real kube-apiserver: its Lease validation, optimistic
concurrency and MicroTime handling are the real ones."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from meshsync_k8s.client import ApiClient
from meshsync_k8s.kubeconfig import load_connection
from meshsync_k8s.leader import LeaderElector

from tests.k8s.conftest import wait_until
from tests.k8s.test_leader import FAST
from tests.realkube.cluster import ControlPlane


async def _elector(kubeconfig: Path, namespace: str, identity: str) -> LeaderElector:
    client = ApiClient(await asyncio.to_thread(load_connection, str(kubeconfig), None))
    return LeaderElector(client, namespace, "meshsync", identity, FAST)


async def test_election_handover_and_crash_on_a_real_server(
    real_kubeconfig: Path, real_cluster: ControlPlane, real_namespace: str
) -> None:
    a = await _elector(real_kubeconfig, real_namespace, "replica-a")
    b = await _elector(real_kubeconfig, real_namespace, "replica-b")
    c = await _elector(real_kubeconfig, real_namespace, "replica-c")
    tasks = {e.identity: asyncio.create_task(e.run()) for e in (a, b)}
    try:
        await wait_until(lambda: a.leading or b.leading, 10, "a leader")
        await wait_until(lambda: a.leading != b.leading, 5, "exactly one leader")
        leader, standby = (a, b) if a.leading else (b, a)
        lease = real_cluster.api(
            "GET", f"/apis/coordination.k8s.io/v1/namespaces/{real_namespace}/leases/meshsync"
        )
        assert lease["spec"]["holderIdentity"] == leader.identity
        assert lease["spec"]["leaseDurationSeconds"] == 2  # 1.5 s rounded, as an int32

        # a clean stop releases the Lease: the standby leads at its next try
        tasks[leader.identity].cancel()
        await asyncio.gather(tasks[leader.identity], return_exceptions=True)
        await wait_until(lambda: standby.leading, 5, "the standby to take over")

        # a crash (no release): a third replica waits for the Lease to expire
        tasks[c.identity] = asyncio.create_task(c.run())
        await wait_until(lambda: c.observed_holder == standby.identity, 5, "c to see the lease")
        standby.release_on_cancel = False
        tasks[standby.identity].cancel()
        await asyncio.gather(tasks[standby.identity], return_exceptions=True)
        crashed = time.monotonic()
        await wait_until(lambda: c.leading, 10, "c to take over after expiry")
        assert time.monotonic() - crashed >= FAST.lease_duration - 2 * FAST.retry_period
        lease = real_cluster.api(
            "GET", f"/apis/coordination.k8s.io/v1/namespaces/{real_namespace}/leases/meshsync"
        )
        assert lease["spec"]["holderIdentity"] == "replica-c"
        assert lease["spec"]["leaseTransitions"] == 2
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        for e in (a, b, c):
            await e.client.close()
