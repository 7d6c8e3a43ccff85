"""End-to-end benchmarks: fake API server -> MeshSync -> a real nats-server / a snapshot file.

    python bench/bench_end_to_end.py [nats|file|all] [objects] [rounds]   (default: all 100000 1)

``nats``: initial sync of ``objects`` Pods and ConfigMaps (realistic, with managedFields) from the
fake API server (its own process) through the k8s source and the NATS sink to a nats-py
subscriber, against raw floors measured in the same run, no framework: the same paginated GETs +
orjson decode + nats-py publish of each item re-encoded (the issue's floor), and the same GETs +
msgspec split + publish of each item's JSON slice as it is (no decode at all; MeshSync's own
source works this way). Then the latency from a change on the fake server
to its message at the subscriber, at 1,000 changes/s.

``file``: ``meshsync run --output file --once`` of the same cluster: objects/s end to end and
peak RSS. Each part runs in a fresh subprocess so that peak RSS is its own.

Both restrict the source to pods and configmaps (``--resources pods,configmaps``), which is
what the floor lists too.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import nats
import orjson
from meshsync_file import yaml_writer
from meshsync_k8s.raw_json import decode_page
from meshsync_nats import wire
from meshsync_testkit.nats_server import NatsServer
from nats.aio.msg import Msg

from meshsync_core.api import arun, build_engine, resolve_options
from meshsync_core.plugin_manager import PluginRegistry

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_cluster import (
    SENT_AT,
    ChildProcess,
    FakeClusterProcess,
    machine_description,
    peak_rss_mib,
)

SUBJECT = "meshery.meshsync.core"
RESOURCES = ["pods", "configmaps"]


def _subscribe(conn: Connection, url: str) -> None:
    """Child process: count messages; on request, report when a count was reached, latencies."""

    async def main() -> None:
        nc = await nats.connect(url, pending_size=1024 * 1024 * 1024)
        state = {"count": 0, "last_at": 0.0, "latency": False}
        latencies: list[float] = []

        async def on_message(msg: Msg) -> None:
            now = time.time()
            state["count"] += 1
            state["last_at"] = time.time()
            if state["latency"]:
                data = orjson.loads(msg.data)
                notes = (data.get("Object") or {}).get("metadata", {}).get("annotations") or []
                for note in notes:
                    if note.get("key") == SENT_AT:
                        latencies.append(now - float(note["value"]))

        await nc.subscribe(SUBJECT, cb=on_message, pending_msgs_limit=-1, pending_bytes_limit=-1)
        await nc.flush()
        conn.send("ready")
        loop = asyncio.get_running_loop()
        while True:
            command, arg = await loop.run_in_executor(None, conn.recv)
            if command == "wait":  # until `arg` messages arrived; answer the wall time of the last
                while state["count"] < arg:
                    await asyncio.sleep(0.01)  # polling a counter in this process, bounded below
                conn.send(state["last_at"])
            elif command == "reset":
                state.update(count=0, latency=bool(arg))
                latencies.clear()
                conn.send("ok")
            elif command == "latencies":
                conn.send(list(latencies))
            elif command == "stop":
                break
        await nc.close()

    asyncio.run(main())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Subscriber(ChildProcess):
    """A nats-py subscriber in its own process, as Meshery Server would be."""

    def __init__(self, url: str) -> None:
        super().__init__(_subscribe, url)
        assert self.recv() == "ready"

    async def wait_for(self, count: int) -> float:
        """Wall-clock time (time.time()) at which the count-th message arrived."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.ask, ("wait", count))  # type: ignore[no-any-return]

    def reset(self, latency: bool = False) -> None:
        self.ask(("reset", latency))

    def latencies(self) -> list[float]:
        return self.ask(("latencies", None))  # type: ignore[no-any-return]


def split_page(body: bytes) -> tuple[list[Any], str]:
    """A page's items as raw JSON slices (msgspec; no decode) and its continue token."""
    page = decode_page(body)
    return list(page.items or ()), page.continue_token


def decoded_page(body: bytes) -> tuple[list[Any], str]:
    """A page's items decoded into dicts (orjson) and its continue token."""
    data = orjson.loads(body)
    return data["items"], data["metadata"].get("continue", "")


async def list_pages(
    cluster: FakeClusterProcess, read: Callable[[bytes], tuple[list[Any], str]]
) -> AsyncIterator[list[Any]]:
    """The items of every page of the paginated lists (limit 500) the floors make, as
    ``read`` gives them."""
    async with aiohttp.ClientSession() as session:
        for plural in RESOURCES:
            token = ""
            while True:
                url = f"{cluster.url}/api/v1/{plural}?limit=500"
                if token:
                    url += f"&continue={token}"
                async with session.get(url) as response:
                    body = await response.read()
                items, token = read(body)
                yield items
                if not token:
                    break


async def raw_floor(
    cluster: FakeClusterProcess, nats_url: str, sub: Subscriber, *, split: bool = False
) -> tuple[int, float]:
    """Paginated GETs + decode + nats-py publish of each item: no MeshSync at all.

    ``split``: msgspec cuts the page into per-item JSON slices, published as they are.
    """
    nc = await nats.connect(nats_url, pending_size=512 * 1024 * 1024)
    start = time.time()
    total = 0
    async for items in list_pages(cluster, split_page if split else decoded_page):
        if split:
            for raw in items:
                await nc.publish(SUBJECT, bytes(raw))
        else:
            for item in items:
                await nc.publish(SUBJECT, orjson.dumps(item))
        total += len(items)
    await nc.flush()
    elapsed = await sub.wait_for(total) - start
    await nc.close()
    return total, elapsed


async def bench_nats(objects: int) -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        NatsServer(Path(tmp)) as server,
        FakeClusterProcess(objects) as cluster,
    ):
        sub = Subscriber(server.url)
        try:
            me = os.getpid()
            cpu_start = cpu_seconds(me)
            floor_n, floor_s = await raw_floor(cluster, server.url, sub)
            floor_cpu = cpu_seconds(me) - cpu_start
            sub.reset()
            cpu_start = cpu_seconds(me)
            split_n, split_s = await raw_floor(cluster, server.url, sub, split=True)
            split_cpu = cpu_seconds(me) - cpu_start
            sub.reset()

            options = {
                "kubeconfig": cluster.kubeconfig,
                "resources": RESOURCES,
                "broker_url": server.url,
                "log_level": "warning",
                "output": ["nats"],
            }
            manager = PluginRegistry.from_entry_points()
            engine = build_engine(manager, resolve_options(manager, options))
            assert server.process is not None
            pids = {
                "meshsync": os.getpid(),
                "fake API server": cluster.pid,
                "nats-server": server.process.pid,
                "subscriber": sub.pid,
            }
            cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            start = time.time()
            run = asyncio.create_task(engine.run())
            await engine.synced.wait()
            delivered = sum(engine.stats.emitted.values())
            ms_s = await sub.wait_for(delivered) - start
            cpu_used = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
            # The same engine, now tracking every object, serves the change stream. The source
            # hands memory back to the OS once, 1 s after its initial sync: let that pass so the
            # latency is the steady state's.
            await asyncio.sleep(2)
            sub.reset(latency=True)
            latencies = await measure_latency(cluster, sub)
            engine.stop()
            await run
        finally:
            sub.stop()

    print(f"\nNATS end to end, {objects:,} objects — {machine_description()}")
    print(f"NATS message writer: {wire.IMPLEMENTATION}")
    print(f"{'path':<44} {'objects':>9} {'seconds':>8} {'objects/s':>10} {'client CPU us/obj':>18}")
    for label, n, seconds, cpu in (
        ("raw floor (GET+decode+publish)", floor_n, floor_s, floor_cpu),
        ("raw floor, no decode (GET+split+publish)", split_n, split_s, split_cpu),
        ("meshsync k8s -> nats (to subscriber)", delivered, ms_s, cpu_used["meshsync"]),
    ):
        print(f"{label:<44} {n:>9,} {seconds:>8.2f} {n / seconds:>10,.0f} {cpu / n * 1e6:>18.1f}")
    rate = delivered / ms_s
    print(
        f"ratio to floor: {rate / (floor_n / floor_s):.2f}; "
        f"to the no-decode floor: {rate / (split_n / split_s):.2f}"
    )
    print(
        "CPU per object during the MeshSync run: "
        + ", ".join(f"{name} {cpu / delivered * 1e6:.1f} us" for name, cpu in cpu_used.items())
        + f" (2 cores: {2 / delivered * ms_s * 1e6:.1f} us of CPU available per object)"
    )
    if latencies:
        q = statistics.quantiles(latencies, n=100)
        p50, p99, worst = q[49] * 1000, q[98] * 1000, max(latencies) * 1000
        print(
            f"change -> subscriber latency at 1,000 changes/s ({len(latencies):,} changes): "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {worst:.1f} ms"
        )
    print(f"peak RSS of the meshsync process: {peak_rss_mib():.0f} MiB")


async def measure_latency(cluster: FakeClusterProcess, sub: Subscriber) -> list[float]:
    """5,000 ConfigMap changes at 1,000/s on the fake server; latency to the subscriber."""
    count = 5000
    cluster.churn(rate=1000, count=count)
    await asyncio.get_running_loop().run_in_executor(None, cluster.wait_churn)
    await sub.wait_for(count)
    return sub.latencies()


async def file_floor(cluster: FakeClusterProcess, path: Path) -> tuple[int, float]:
    """Paginated GETs + msgspec split + each item's raw JSON written to a file: no MeshSync,
    no YAML (the floor of ``--output file``)."""
    start = time.perf_counter()
    total = 0
    with path.open("wb") as out:
        async for items in list_pages(cluster, split_page):
            for raw in items:
                out.write(b"---\n")
                out.write(raw)
                out.write(b"\n")
            total += len(items)
        out.flush()
        os.fsync(out.fileno())
    return total, time.perf_counter() - start


async def bench_file(objects: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, FakeClusterProcess(objects) as cluster:
        floor_n, floor_s = await file_floor(cluster, Path(tmp) / "floor.json")
        out = Path(tmp) / "snapshot.yaml"
        options = {
            "kubeconfig": cluster.kubeconfig,
            "resources": RESOURCES,
            "output_file": str(out),
            "once": True,
            "log_level": "warning",
        }
        start = time.perf_counter()
        result = await arun(source="k8s", outputs=["file"], options=options)
        elapsed = time.perf_counter() - start
        assert result.exit_code == 0, result.reason
        delivered = result.stats.delivered["file"]
        size = out.stat().st_size / 1e6
        log_size = (Path(tmp) / "snapshot-extended.yaml").stat().st_size / 1e6
    print(f"\nFile snapshot end to end (--once), {objects:,} objects — {machine_description()}")
    print(f"YAML writer: {yaml_writer.IMPLEMENTATION}, JSON-to-YAML fast path: "
          f"{'on' if yaml_writer.transcode is not None else 'off'}")  # fmt: skip
    print(f"{'path':<40} {'objects':>9} {'seconds':>8} {'objects/s':>10}")
    rate, rss = delivered / elapsed, peak_rss_mib()
    floor_rate = floor_n / floor_s
    label = "floor (GET+split+write raw JSON)"
    print(f"{label:<40} {floor_n:>9,} {floor_s:>8.2f} {floor_rate:>10,.0f}")
    print(f"{'meshsync k8s -> file (--once)':<40} {delivered:>9,} {elapsed:>8.2f} {rate:>10,.0f}")
    print(f"ratio to floor: {rate / floor_rate:.2f}; snapshot {size:.1f} MB + extended log "
          f"{log_size:.1f} MB; peak RSS of the meshsync process {rss:.0f} MiB")  # fmt: skip


def main() -> None:
    part = sys.argv[1] if len(sys.argv) > 1 else "all"
    objects = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    if part == "all" or rounds > 1:
        # every run in a fresh process, so that each peak RSS is its own
        for name in ("nats", "file") if part == "all" else (part,):
            for _ in range(rounds):
                subprocess.run([sys.executable, __file__, name, str(objects)], check=True)
        return
    asyncio.run(bench_nats(objects) if part == "nats" else bench_file(objects))


if __name__ == "__main__":
    main()
