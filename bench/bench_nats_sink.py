"""Throughput and latency of the NATS sink alone: MemorySource -> engine -> NatsSink -> a real
nats-server -> a nats-py subscriber. Usage: python bench/bench_nats_sink.py [objects] [rate]

Part 1 pushes ``objects`` realistic Pods as fast as the engine takes them and reports objects/s
as counted by the subscriber. Part 2 emits ``rate`` changes/s for 5 s and reports the latency
from emit to receipt (p50/p99). The end-to-end benchmark with the Kubernetes source is separate.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

import nats
import orjson
from meshsync_nats.sink import NatsSink
from meshsync_testkit.nats_server import NatsServer

from meshsync_core import Engine, Event, EventType, Options, Resource, Source, SourceContext

PODS = Resource("", "v1", "pods", "Pod")


def pod(i: int, rv: int = 1) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"web-{i}",
            "namespace": f"ns-{i % 50}",
            "uid": f"00000000-0000-4000-8000-{i:012d}",
            "resourceVersion": str(rv),
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"app": "web", "pod-template-hash": "7d4b9c", "tier": "frontend"},
            "annotations": {"prometheus.io/scrape": "true"},
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "x",
                 "controller": True}
            ],
        },
        "spec": {
            "containers": [
                {"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                 "env": [{"name": f"VAR_{k}", "value": "x" * 20} for k in range(5)]}
            ],
            "nodeName": "node-1",
            "restartPolicy": "Always",
        },
        "status": {"phase": "Running", "podIP": "10.0.0.1", "hostIP": "172.18.0.2",
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }  # fmt: skip


class Flood(Source):
    name = "flood"

    def __init__(self, count: int) -> None:
        super().__init__(Options())
        self.objects = [pod(i) for i in range(count)]  # built before the clock starts

    async def run(self, ctx: SourceContext) -> None:
        for obj in self.objects:
            await ctx.emit(Event(EventType.ADDED, obj, PODS, cluster_id="bench"))
        ctx.initial_sync_complete()
        await asyncio.Event().wait()


class Paced(Source):
    name = "paced"

    def __init__(self, rate: int, seconds: float) -> None:
        super().__init__(Options())
        self.rate, self.seconds = rate, seconds
        self.sent_at: dict[str, float] = {}

    async def run(self, ctx: SourceContext) -> None:
        ctx.initial_sync_complete()
        start = time.perf_counter()
        for n in range(int(self.rate * self.seconds)):
            due = start + n / self.rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            obj = pod(n % 1000, rv=n + 2)
            self.sent_at[obj["metadata"]["resourceVersion"]] = time.perf_counter()
            await ctx.emit(Event(EventType.MODIFIED, obj, PODS, cluster_id="bench"))
        await asyncio.Event().wait()


async def throughput(url: str, count: int) -> tuple[float, float]:
    """(objects/s handed to NATS by the sink, objects/s received by the subscriber).

    The subscriber runs in this process and shares its CPU, so the second figure is a floor.
    """
    nc = await nats.connect(url)
    got = 0
    done = asyncio.Event()

    async def on_msg(msg: object) -> None:
        nonlocal got
        got += 1
        if got == count:
            done.set()

    await nc.subscribe("meshery.meshsync.core", cb=on_msg, pending_msgs_limit=-1,
                       pending_bytes_limit=-1)  # fmt: skip
    await nc.flush()
    sink = NatsSink(Options(broker_url=url))
    engine = Engine([Flood(count)], [sink])
    started = time.perf_counter()
    task = asyncio.create_task(engine.run())
    while sink.counts["published"] < count:
        await asyncio.sleep(0.005)
    published = time.perf_counter() - started
    await asyncio.wait_for(done.wait(), 300)
    received = time.perf_counter() - started
    engine.stop()
    await task
    await nc.close()
    return count / published, count / received


async def latency(url: str, rate: int, seconds: float) -> tuple[float, float]:
    nc = await nats.connect(url)
    source = Paced(rate, seconds)
    latencies: list[float] = []

    async def on_msg(msg: object) -> None:
        rv = orjson.loads(msg.data)["Object"]["metadata"]["resourceVersion"]  # type: ignore[attr-defined]
        latencies.append(time.perf_counter() - source.sent_at[rv])

    await nc.subscribe("meshery.meshsync.core", cb=on_msg)
    await nc.flush()
    engine = Engine([source], [NatsSink(Options(broker_url=url))])
    task = asyncio.create_task(engine.run())
    total = int(rate * seconds)
    while len(latencies) < total:
        await asyncio.sleep(0.05)
    engine.stop()
    await task
    await nc.close()
    latencies.sort()
    return latencies[len(latencies) // 2] * 1000, latencies[int(len(latencies) * 0.99)] * 1000


async def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    rate = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000
    with tempfile.TemporaryDirectory() as tmp, NatsServer(Path(tmp)) as server:
        sent, received = await throughput(server.url, count)
        print(f"throughput ({count} Pods): sink {sent:,.0f}/s, subscriber {received:,.0f}/s")
        p50, p99 = await latency(server.url, rate, 5.0)
        print(f"latency at {rate}/s: p50 {p50:.2f} ms, p99 {p99:.2f} ms")


if __name__ == "__main__":
    asyncio.run(main())
