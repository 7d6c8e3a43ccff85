"""What the published index costs and buys: fake API server -> MeshSync -> a JetStream-enabled
nats-server, initial sync with the index off (Go's behaviour) and on (an empty bucket: every
object is written to the index), then a restart against an unchanged cluster.

    python bench/bench_published_index.py [objects] [rounds]   (default: 100000 2)

Rounds alternate off/on so that a drift of the machine hits both alike. Printed: objects/s to
the subscriber, the ratio on/off (issue 15: at most 10% lost), how long the index took to be
complete in the bucket after the sync, its size per object in the bucket's stream, and for the
restart: seconds from start to the end of the initial sync and messages published.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nats
from meshsync_testkit.nats_server import NatsServer

from meshsync_core.api import build_engine, resolve_options
from meshsync_core.plugin_manager import PluginRegistry

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_end_to_end import RESOURCES, Subscriber
from fake_cluster import FakeClusterProcess, machine_description


def _engine(cluster: FakeClusterProcess, url: str, index: bool, bucket: str):
    options = {
        "kubeconfig": cluster.kubeconfig,
        "resources": RESOURCES,
        "broker_url": url,
        "log_level": "warning",
        "output": ["nats"],
        "published_index": index,
        "nats_index_bucket": bucket,
    }
    manager = PluginRegistry.from_entry_points()
    return build_engine(manager, resolve_options(manager, options))


async def _bucket_stats(url: str, bucket: str) -> tuple[int, int]:
    """(keys, bytes) of the bucket's stream."""
    nc = await nats.connect(url)
    try:
        info = await nc.jsm().stream_info(f"KV_{bucket}")
        return info.state.messages, info.state.bytes
    finally:
        await nc.close()


async def _initial_sync(
    cluster: FakeClusterProcess, url: str, sub: Subscriber, index: bool, bucket: str
) -> dict[str, float]:
    engine = _engine(cluster, url, index, bucket)
    start = time.time()
    run = asyncio.create_task(engine.run())
    await engine.synced.wait()
    delivered = sum(engine.stats.emitted.values())
    seconds = await sub.wait_for(delivered) - start
    row = {"objects": delivered, "seconds": seconds}
    if index:
        # complete when every object is in the bucket (plus its format key)
        written_at = time.time()
        while (await _bucket_stats(url, bucket))[0] < delivered + 1:
            await asyncio.sleep(0.05)
        row["index_lag"] = time.time() - written_at
        keys, size = await _bucket_stats(url, bucket)
        row["bytes_per_object"] = size / max(1, keys - 1)
    engine.stop()
    await run
    sub.reset()
    return row


async def _restart(cluster: FakeClusterProcess, url: str, bucket: str) -> dict[str, float]:
    engine = _engine(cluster, url, True, bucket)
    start = time.perf_counter()
    run = asyncio.create_task(engine.run())
    await engine.synced.wait()
    synced = time.perf_counter() - start
    emitted = sum(engine.stats.emitted.values())
    engine.stop()
    await run
    return {"seconds": synced, "emitted": emitted}


async def main(objects: int, rounds: int) -> None:
    off: list[dict[str, float]] = []
    on: list[dict[str, float]] = []
    restarts: list[dict[str, float]] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        NatsServer(Path(tmp), jetstream=True) as server,
        FakeClusterProcess(objects) as cluster,
    ):
        sub = Subscriber(server.url)
        try:
            for turn in range(rounds):
                off.append(await _initial_sync(cluster, server.url, sub, False, f"off-{turn}"))
                on.append(await _initial_sync(cluster, server.url, sub, True, f"on-{turn}"))
                restarts.append(await _restart(cluster, server.url, f"on-{turn}"))
        finally:
            sub.stop()

    print(f"\nPublished index, {objects:,} objects, {rounds} round(s) — {machine_description()}")
    print(f"{'run':<44} {'objects/s':>10} {'seconds':>8}")
    for label, rows in (("index off (Go's behaviour)", off), ("index on, empty bucket", on)):
        for row in rows:
            rate = row["objects"] / row["seconds"]
            print(f"{label:<44} {rate:>10,.0f} {row['seconds']:>8.2f}")
    rate_off = statistics.median(r["objects"] / r["seconds"] for r in off)
    rate_on = statistics.median(r["objects"] / r["seconds"] for r in on)
    print(f"median ratio on/off: {rate_on / rate_off:.2f} (target >= 0.90)")
    lag = statistics.median(r["index_lag"] for r in on)
    size = statistics.median(r["bytes_per_object"] for r in on)
    print(f"index complete in the bucket {lag:.2f} s after the sync; {size:.0f} B per object")
    for row in restarts:
        print(
            f"restart, cluster unchanged: initial sync in {row['seconds']:.2f} s, "
            f"{row['emitted']:.0f} event(s) emitted"
        )


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    turns = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    asyncio.run(main(count, turns))
