"""Two ``meshsync run --leader-elect`` replicas publishing to one NATS: only the Lease holder
publishes; when it is SIGKILLed mid-churn the standby takes over and the consumer's picture
ends up equal to the cluster, nothing lost and nothing stale."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from meshsync_testkit.fake_apiserver import FakeApiServer, demo_cluster
from meshsync_testkit.nats_server import NatsServer

from tests.nats.helpers import Subscriber, wait_indexed, wait_until

PLURALS = ("configmaps", "pods", "services", "namespaces", "nodes")
TIMING = ["--leader-elect-lease-duration", "3s", "--leader-elect-renew-deadline", "2s",
          "--leader-elect-retry-period", "0.5s"]  # fmt: skip


def _replica(
    tmp_path: Path, kubeconfig: Path, nats_url: str, name: str, timing: list[str] = TIMING
) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHSYNC_")}
    env.update(POD_NAME=name, MESHSYNC_HEALTH_PORT="0")
    return subprocess.Popen(
        [sys.executable, "-m", "meshsync_core", "run", "--kubeconfig", str(kubeconfig),
         "--output", "nats", "--broker-url", nats_url, "--leader-elect",
         "--leader-elect-namespace", "default", *timing],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _holder(server: FakeApiServer) -> str:
    lease = server.get(
        {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
         "metadata": {"name": "meshsync", "namespace": "default"}}
    )  # fmt: skip
    return str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")


def _cluster(server: FakeApiServer, plurals: tuple[str, ...]) -> dict[str, str]:
    return {
        o["metadata"]["uid"]: o["metadata"]["resourceVersion"]
        for plural in PLURALS
        for o in server.objects(plural)
    }


@pytest.fixture
def cluster(tmp_path: Path):
    with FakeApiServer.in_thread() as server:
        server.load(demo_cluster())
        yield server, server.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.mark.parametrize(
    "jetstream", [False, True], ids=["no-index-resync", "published-index-in-jetstream-kv"]
)
async def test_sigkill_of_the_leader_mid_churn(tmp_path: Path, cluster, jetstream: bool) -> None:
    """Without JetStream the new leader announces everything it tracks; with it, the new leader
    reads what the old one published from the index bucket and emits only the difference."""
    server, kubeconfig = cluster
    with NatsServer(tmp_path / "nats", jetstream=jetstream) as nats_server:
        sub = Subscriber()
        await sub.connect(nats_server.url)
        replicas = {
            name: _replica(tmp_path, kubeconfig, nats_server.url, name)
            for name in ("replica-a", "replica-b")
        }
        try:
            await wait_until(lambda: _holder(server) != "", 30, "a leader")
            leader = _holder(server).split("_")[0]
            standby = next(n for n in replicas if n != leader)
            await wait_until(lambda: len(sub.view) > 0, 30, "the leader's first messages")

            touched: set[str] = set()

            def churn(tag: str) -> None:
                created = server.create(
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": f"cm-{tag}", "namespace": "default"},
                    }
                )
                touched.add(created["metadata"]["uid"])
                for obj in server.objects("configmaps")[:2]:
                    obj.setdefault("data", {})["tag"] = tag
                    server.update(obj)
                    touched.add(obj["metadata"]["uid"])

            # the standby is warm: it has listed and watches (else it could not know of a delete)
            await wait_until(
                lambda: sum(w.rt.plural == "configmaps" for w in server.store.watchers()) >= 2,
                30, "both replicas watching",
            )  # fmt: skip
            churn("before")
            await wait_until(lambda: touched <= set(sub.view), 30, "the leader publishing churn")
            if jetstream:  # what the old leader published is in the index before it dies
                await wait_indexed(nats_server.url, set(_cluster(server, PLURALS)))
            replicas[leader].send_signal(signal.SIGKILL)
            heard_before_kill = len(sub.messages)
            killed = time.monotonic()
            churn("during")  # while nobody leads
            # an object the consumer holds from the old leader, deleted while nobody leads
            gone = next(
                o for o in server.objects("configmaps")
                if o["metadata"]["uid"] in sub.view and o["metadata"]["uid"] not in touched
            )  # fmt: skip
            server.delete(gone)
            touched.add(gone["metadata"]["uid"])
            await wait_until(lambda: _holder(server).startswith(standby), 30, "the takeover")
            took_over = time.monotonic() - killed
            churn("after")

            def converged() -> bool:
                wanted = _cluster(server, PLURALS)
                seen = {
                    uid: version
                    for uid, version in sub.versions().items()
                    if sub.view[uid]["kind"].lower() + "s" in PLURALS
                }
                return seen == wanted

            await wait_until(converged, 30, "the consumer's picture to equal the cluster")
            assert took_over < 15  # the failover target
            assert gone["metadata"]["uid"] not in sub.view  # the delete made while nobody led
            assert replicas[standby].poll() is None
            after_kill = {m["Object"]["metadata"]["uid"] for m in sub.messages[heard_before_kill:]}
            if jetstream:  # only the difference: what changed around the kill
                assert after_kill <= touched, len(after_kill - touched)
            else:  # the whole tracked state again, as Go does on start
                assert len(after_kill) > len(touched)
        finally:
            for proc in replicas.values():
                if proc.poll() is None:
                    proc.terminate()
            for proc in replicas.values():
                try:
                    proc.communicate(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()
            await sub.close()
