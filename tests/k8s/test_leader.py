"""Leader election on a Lease (client-go's rules) against the fake API server: one leader at a
time, takeover after a crash only once the Lease expired, at once after a clean release, and a
leader that cannot renew stops before anyone else may start."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from meshsync_k8s.client import ApiClient
from meshsync_k8s.kubeconfig import load_connection
from meshsync_k8s.leader import LeaderElector, LeaseTiming
from meshsync_testkit.fake_apiserver import FakeApiServer

from .conftest import wait_until

FAST = LeaseTiming(lease_duration=1.5, renew_deadline=1.0, retry_period=0.2)


@dataclass
class Candidate:
    elector: LeaderElector
    task: asyncio.Task[None]
    started: list[float] = field(default_factory=list)
    stopped: list[float] = field(default_factory=list)

    async def crash(self) -> None:
        """Gone without a word, as after SIGKILL: the Lease is left to expire."""
        self.elector.release_on_cancel = False
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@pytest.fixture
async def campaign(kubeconfig: Path):
    clients: list[ApiClient] = []
    candidates: list[Candidate] = []

    async def start(identity: str, timing: LeaseTiming = FAST) -> Candidate:
        client = ApiClient(await asyncio.to_thread(load_connection, str(kubeconfig), None))
        clients.append(client)
        times: dict[str, list[float]] = {"started": [], "stopped": []}
        elector = LeaderElector(
            client, "default", "meshsync", identity, timing,
            on_started=lambda: times["started"].append(time.monotonic()),
            on_stopped=lambda: times["stopped"].append(time.monotonic()),
        )  # fmt: skip
        candidate = Candidate(elector, asyncio.create_task(elector.run()),
                              times["started"], times["stopped"])  # fmt: skip
        candidates.append(candidate)
        return candidate

    yield start
    for candidate in candidates:
        await candidate.stop()
    for client in clients:
        await client.close()


def _lease(server: FakeApiServer) -> dict:
    lease = server.get(
        {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
         "metadata": {"name": "meshsync", "namespace": "default"}}
    )  # fmt: skip
    assert lease is not None
    return lease["spec"]


async def test_one_leader_and_takeover_after_a_crash(server, campaign) -> None:
    a = await campaign("replica-a")
    await wait_until(lambda: a.elector.leading, 5, "replica-a to lead")
    b = await campaign("replica-b")
    await wait_until(lambda: b.elector.observed_holder == "replica-a", 5, "b to see a's lease")
    assert not b.elector.leading
    assert _lease(server)["holderIdentity"] == "replica-a"

    await a.crash()
    crashed = time.monotonic()
    await wait_until(lambda: b.elector.leading, 10, "replica-b to take over")
    # not before the Lease expired (as b observed it), not much later either
    waited = b.started[0] - crashed
    assert FAST.lease_duration - 2 * FAST.retry_period <= waited
    assert waited <= FAST.lease_duration + 3 * FAST.retry_period * 2.2
    spec = _lease(server)
    assert spec["holderIdentity"] == "replica-b" and spec["leaseTransitions"] == 1


async def test_a_clean_stop_hands_over_at_once(server, campaign) -> None:
    slow = LeaseTiming(lease_duration=30, renew_deadline=20, retry_period=0.2)
    a = await campaign("replica-a", slow)
    await wait_until(lambda: a.elector.leading, 5, "replica-a to lead")
    b = await campaign("replica-b", slow)
    await wait_until(lambda: b.elector.observed_holder == "replica-a", 5, "b to see a's lease")
    stopped = time.monotonic()
    await a.stop()  # releases: empty holder, 1 s duration
    await wait_until(lambda: b.elector.leading, 5, "replica-b to take over")
    assert b.started[0] - stopped < 3.0  # far sooner than the 30 s Lease


async def test_a_leader_that_cannot_renew_stops_before_the_next_starts(
    tmp_path: Path,
) -> None:
    server = FakeApiServer(token="good")
    await server.start()
    try:
        kubeconfig = server.write_kubeconfig(tmp_path / "kc")
        clients = []

        async def elector(identity: str) -> tuple[LeaderElector, list[float], list[float]]:
            client = ApiClient(await asyncio.to_thread(load_connection, str(kubeconfig), None))
            clients.append(client)
            started: list[float] = []
            stopped: list[float] = []
            e = LeaderElector(client, "default", "meshsync", identity, FAST,
                              on_started=lambda: started.append(time.monotonic()),
                              on_stopped=lambda: stopped.append(time.monotonic()))  # fmt: skip
            return e, started, stopped

        a, _a_started, a_stopped = await elector("replica-a")
        a_task = asyncio.create_task(a.run())
        await wait_until(lambda: a.leading, 5, "replica-a to lead")
        b, b_started, _ = await elector("replica-b")
        b_task = asyncio.create_task(b.run())
        await wait_until(lambda: b.observed_holder == "replica-a", 5, "b to see a's lease")
        # replica-a is cut off from the API server (its credentials are refused from now on)
        a.client.connection.headers["Authorization"] = "Bearer revoked"
        await wait_until(lambda: b.leading, 10, "replica-b to take over")
        assert a_stopped and not a.leading
        assert a_stopped[0] < b_started[0]  # fenced: never two leaders at once
        for task in (a_task, b_task):
            task.cancel()
        await asyncio.gather(a_task, b_task, return_exceptions=True)
        for client in clients:
            await client.close()
    finally:
        await server.stop()


def test_timings_are_checked() -> None:
    with pytest.raises(ValueError, match="lease duration > renew deadline"):
        LeaseTiming(lease_duration=10, renew_deadline=10, retry_period=2)


async def test_readyz_tells_the_leader_and_the_standby_apart(server, kubeconfig: Path) -> None:
    """Both replicas are ready (a standby takes over without a start-up); /readyz says which one
    publishes, and meshsync_k8s_leader is 1 on the leader only."""
    import aiohttp
    from meshsync_k8s.source import KubernetesSource
    from meshsync_testkit.fake_apiserver import demo_cluster

    from meshsync_core import Engine, Options
    from meshsync_core.health import HealthServer
    from meshsync_core.testing import CaptureSink

    from .conftest import FAST as FAST_TUNING

    server.load(demo_cluster())
    replicas = []
    for name in ("replica-a", "replica-b"):
        source = KubernetesSource(
            Options({"kubeconfig": str(kubeconfig), "leader_elect": True,
                     "leader_elect_namespace": "default", "leader_elect_lease_duration": 1.5,
                     "leader_elect_renew_deadline": 1.0, "leader_elect_retry_period": 0.2}),
            tuning=FAST_TUNING,
        )  # fmt: skip
        assert source.leadership is not None
        source.leadership.on_lost = lambda: None  # never os._exit the test process
        source.leadership.identity = name
        engine = Engine([source], [CaptureSink()])
        health = HealthServer(engine, "127.0.0.1", 0)
        await health.start()
        replicas.append((source, engine, health, asyncio.create_task(engine.run())))
    try:
        await wait_until(
            lambda: sum(s.leadership.leading for s, *_ in replicas) == 1, 10, "one leader"
        )
        await wait_until(lambda: all(e.ready for _, e, *_ in replicas), 10, "both ready")
        await wait_until(  # the standby's next try reads the Lease the other one created
            lambda: all("held by" in s.role or s.leadership.leading for s, *_ in replicas), 10,
            "the standby to see the holder",
        )  # fmt: skip
        async with aiohttp.ClientSession() as session:
            for source, _engine, health, _task in replicas:
                base = f"http://127.0.0.1:{health.port}"
                async with session.get(f"{base}/readyz") as response:
                    status, body = response.status, await response.text()
                async with session.get(f"{base}/metrics") as response:
                    metrics = await response.text()
                assert status == 200 and body.startswith("ready\n")
                if source.leadership.leading:
                    assert "k8s: leader (lease default/meshsync)" in body
                    assert 'meshsync_k8s_leader{plugin="k8s"} 1.0' in metrics
                else:
                    assert "k8s: standby (not publishing; lease default/meshsync" in body
                    assert "held by replica-" in body
                    assert 'meshsync_k8s_leader{plugin="k8s"} 0.0' in metrics
    finally:
        for _source, engine, health, task in replicas:
            engine.stop("test done")
            await asyncio.wait_for(task, 10)
            await health.stop()
