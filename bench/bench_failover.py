"""Leader failover, measured: two ``meshsync run --leader-elect`` replicas (fake API server,
JetStream-enabled nats-server), the leader SIGKILLed with changes made while nobody leads.

    python bench/bench_failover.py [rounds] [lease seconds]   (default: 5 rounds, 3 s lease)

Printed per round: seconds from the kill to the new Lease holder, to the consumer's picture
equalling the cluster again (the failover target: 15 s), messages the new leader published
(with the published index: only the difference; the objects tracked, for scale), and whether
anything was lost or stale at the consumer.
"""

from __future__ import annotations

import asyncio
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_cluster import machine_description  # noqa: E402 - after the path fix
from meshsync_testkit.fake_apiserver import FakeApiServer, demo_cluster  # noqa: E402
from meshsync_testkit.nats_server import NatsServer  # noqa: E402

from tests.integration import test_leader_failover as failover  # noqa: E402
from tests.nats.helpers import Subscriber, wait_indexed, wait_until  # noqa: E402


def _timing(lease: float) -> list[str]:
    return ["--leader-elect-lease-duration", f"{lease:g}s",
            "--leader-elect-renew-deadline", f"{lease * 2 / 3:g}s",
            "--leader-elect-retry-period", f"{lease / 6:g}s"]  # fmt: skip


async def one_round(lease: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp_name, FakeApiServer.in_thread() as server:
        tmp = Path(tmp_name)
        server.load(demo_cluster())
        kubeconfig = server.write_kubeconfig(tmp / "kubeconfig")
        with NatsServer(tmp / "nats", jetstream=True) as nats_server:
            sub = Subscriber()
            await sub.connect(nats_server.url)
            procs = {
                n: failover._replica(tmp, kubeconfig, nats_server.url, n, _timing(lease))
                for n in ("a", "b")
            }
            try:
                await wait_until(lambda: failover._holder(server) != "", 60, "a leader")
                await wait_until(
                    lambda: sum(w.rt.plural == "configmaps" for w in server.store.watchers()) >= 2,
                    60, "both replicas watching",
                )  # fmt: skip
                cluster = failover._cluster(server, failover.PLURALS)
                await wait_until(lambda: set(cluster) <= set(sub.view), 60, "the first sync")
                await wait_indexed(nats_server.url, set(cluster))
                leader = failover._holder(server).split("_")[0]
                heard = len(sub.messages)
                procs[leader].send_signal(signal.SIGKILL)
                killed = time.monotonic()
                gone = server.objects("configmaps")[0]
                server.delete(gone)  # while nobody leads
                server.create({"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": "new", "namespace": "default"}})  # fmt: skip
                await wait_until(
                    lambda: failover._holder(server) not in ("",) and not
                    failover._holder(server).startswith(leader), 60, "the take-over",
                )  # fmt: skip
                holder_at = time.monotonic() - killed

                def converged() -> bool:
                    wanted = failover._cluster(server, failover.PLURALS)
                    seen = {u: v for u, v in sub.versions().items()
                            if sub.view[u]["kind"].lower() + "s" in failover.PLURALS}  # fmt: skip
                    return seen == wanted

                await wait_until(converged, 60, "the consumer to equal the cluster")
                return {
                    "holder": holder_at,
                    "converged": time.monotonic() - killed,
                    "published": len(sub.messages) - heard,
                    "tracked": len(failover._cluster(server, failover.PLURALS)),
                }
            finally:
                for proc in procs.values():
                    if proc.poll() is None:
                        proc.terminate()
                for proc in procs.values():
                    proc.wait(timeout=30)
                await sub.close()


async def main(rounds: int, lease: float) -> None:
    rows = [await one_round(lease) for _ in range(rounds)]
    print(f"\nLeader failover after SIGKILL, {lease:g} s lease — {machine_description()}")
    print(f"{'round':>5} {'new holder s':>13} {'consumer equal s':>17} {'published':>10} "
          f"{'tracked':>8}")  # fmt: skip
    for i, row in enumerate(rows, 1):
        print(f"{i:>5} {row['holder']:>13.2f} {row['converged']:>17.2f} "
              f"{row['published']:>10.0f} {row['tracked']:>8.0f}")  # fmt: skip
    median = statistics.median(r["converged"] for r in rows)
    print(f"median consumer equal after {median:.2f} s (target: 15 s); nothing lost or stale "
          "in any round (each waited for equality)")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5,
                     float(sys.argv[2]) if len(sys.argv) > 2 else 3.0))  # fmt: skip
