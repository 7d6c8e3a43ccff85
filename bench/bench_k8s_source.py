"""Benchmark of the ``k8s`` source: initial sync of N objects from the fake API server.

    python bench/bench_k8s_source.py [--objects 100000] [--rounds 3]

The fake API server runs in its own process (holding ``bulk_objects(N)``: Pods and ConfigMaps
with realistic managedFields, ~3 KB each). Each measurement runs in a fresh process, so its
peak RSS is its own:

* ``floor``  - the same paginated GETs (limit 500, pods and configmaps concurrently) + orjson
  decode of every page, nothing else: the best any client in Python could do;
* ``source`` - ``KubernetesSource`` with its default settings (21 default resources + CRD
  watching) in the real engine, into a sink that only counts, timed from engine start (which
  includes connecting and API discovery) until the sink is told the initial sync is complete.
  The source hands objects over undecoded (``event.raw_json``), so this sink never pays for
  building dicts;
* ``source+read`` - the same, but the sink reads every ``event.object``, forcing the decode a
  dict-reading sink (file, console) pays.

Printed: objects/s, ratio source/floor, peak RSS, and the bytes retained per tracked object
(the watchers' uid -> "rv\\0ns\\0name" structure, measured with sys.getsizeof and tracemalloc).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PAGE = 500


def _rss_now_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _peak_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# -- server process ------------------------------------------------------------------------------


def serve(objects: int, kubeconfig: str) -> None:
    from meshsync_testkit.fake_apiserver import FakeApiServer
    from meshsync_testkit.seed import bulk_namespaces, bulk_objects

    async def main() -> None:
        server = FakeApiServer(seed=True)
        await server.start()
        namespaces = bulk_namespaces()
        server.load(namespaces)
        server.load(bulk_objects(objects))
        server.write_kubeconfig(kubeconfig)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await server.stop()

    asyncio.run(main())


# -- workers -------------------------------------------------------------------------------------


async def floor_worker(kubeconfig: str, gc_pause: bool) -> dict[str, Any]:
    """Paginated GET + orjson.loads of pods and configmaps, concurrently; nothing else.

    ``gc_pause`` pauses the collector during the one C call, as the old decoding source did.
    """
    import aiohttp
    import orjson
    from meshsync_k8s.client import decode
    from meshsync_k8s.kubeconfig import load_connection

    loads = decode if gc_pause else orjson.loads

    conn = load_connection(kubeconfig)
    count = 0
    async with aiohttp.ClientSession(headers=conn.headers) as session:

        async def list_all(path: str) -> None:
            nonlocal count
            params = {"limit": str(PAGE)}
            while True:
                async with session.get(conn.server + path, params=params) as resp:
                    page = loads(await resp.read())
                count += len(page["items"])
                token = page["metadata"].get("continue")
                if not token:
                    return
                params = {"limit": str(PAGE), "continue": token}

        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(list_all("/api/v1/pods"), list_all("/api/v1/configmaps"))
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
    return {"objects": count, "seconds": elapsed, "cpu": cpu, "peak_rss_kb": _peak_kb()}


async def source_worker(kubeconfig: str, read_objects: bool = False) -> dict[str, Any]:
    from meshsync_k8s.source import KubernetesSource

    from meshsync_core import Engine, Options, Sink

    class CountingSink(Sink):
        name = "count"

        def __init__(self) -> None:
            super().__init__(Options())
            self.count = 0
            self.synced_at = 0.0
            self.done = asyncio.Event()

        async def deliver(self, events: Sequence[Any]) -> None:
            self.count += len(events)
            if read_objects:
                for event in events:
                    event.object  # noqa: B018 - the decode is what is measured

        async def on_synced(self) -> None:
            self.synced_at = time.perf_counter()
            self.done.set()

    gc.collect()
    base_rss = _rss_now_kb()
    source = KubernetesSource(Options({"kubeconfig": kubeconfig}))
    sink = CountingSink()
    engine = Engine([source], [sink])
    start, cpu = time.perf_counter(), time.process_time()
    task = asyncio.create_task(engine.run())
    await asyncio.wait_for(sink.done.wait(), 600)
    elapsed = sink.synced_at - start
    cpu = time.process_time() - cpu
    emitted = sink.count
    tracked = source.tracked
    states = [w.state for ws in source.watchers.values() for w in ws]
    getsizeof_bytes = sum(
        sys.getsizeof(s) + sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in s.items())
        for s in states
    )
    await asyncio.sleep(1.5)  # the source hands freed heap back to the OS 1 s after the sync
    gc.collect()
    rss_after = _rss_now_kb()
    engine.stop("bench done")
    await task
    # tracemalloc: rebuild the same structure from the same strings' sizes while tracing
    tracemalloc.start()
    snap0 = tracemalloc.take_snapshot()
    rebuilt = [{k.encode().decode(): v.encode().decode() for k, v in s.items()} for s in states]
    traced = sum(
        stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(snap0, "filename")
    )
    tracemalloc.stop()
    del rebuilt
    return {
        "objects": emitted,
        "tracked": tracked,
        "seconds": elapsed,
        "cpu": cpu,
        "peak_rss_kb": _peak_kb(),
        "base_rss_kb": base_rss,
        "rss_after_sync_kb": rss_after,
        "getsizeof_bytes_per_object": getsizeof_bytes / max(tracked, 1),
        "tracemalloc_bytes_per_object": traced / max(tracked, 1),
    }


async def breakdown(pages: int = 40) -> dict[str, float]:
    """In-process CPU cost per object of each stage, on one 500-object page read repeatedly.

    No network and no server: orjson decode of the page (the floor's work); msgspec split (the
    source's); split + the watcher's page loop with a no-op emit; the same into the real engine
    with the Secret redaction transform and a no-op sink.
    """
    import orjson
    from meshsync_k8s import raw_json
    from meshsync_k8s.client import decode
    from meshsync_k8s.redaction import SecretRedaction
    from meshsync_k8s.resources import ApiResource
    from meshsync_k8s.watcher import ResourceWatcher
    from meshsync_testkit.seed import bulk_objects

    from meshsync_core import Engine, Options, Sink, Source
    from meshsync_core.gc_pause import gc_paused

    items = []
    for i, obj in enumerate(bulk_objects(PAGE)):
        obj["metadata"].setdefault("uid", f"00000000-0000-4000-8000-{i:012d}")
        obj["metadata"]["resourceVersion"] = str(1000 + i)
        items.append(obj)
    body = orjson.dumps({"kind": "List", "metadata": {"resourceVersion": "9"}, "items": items})
    api = ApiResource("", "v1", "pods", "Pod", True)
    out: dict[str, float] = {}

    def per_object(start: float) -> float:
        return (time.process_time() - start) / (pages * PAGE) * 1e6

    start = time.process_time()
    for _ in range(pages):
        decode(body)
    out["orjson decode"] = per_object(start)
    start = time.process_time()
    for _ in range(pages):
        raw_json.decode_page(body)
    out["msgspec split"] = per_object(start)

    async def noop(_event: Any) -> None:
        pass

    async def pump(emit: Any) -> float:
        watcher = ResourceWatcher(None, api, emit)  # type: ignore[arg-type]
        start = time.process_time()
        for _ in range(pages):
            watcher.state.clear()
            page = raw_json.decode_page(body)
            with gc_paused():
                await watcher._apply_page(page.items or [], None, False)
        return per_object(start)

    out["split + watcher"] = await pump(noop)

    class NullSink(Sink):
        name = "null"

        async def deliver(self, events: Sequence[Any]) -> None:
            pass

    class PumpSource(Source):
        name = "pump"

        async def run(self, ctx: Any) -> None:
            out["split + watcher + engine"] = await pump(ctx.emit)
            ctx.initial_sync_complete()

    await Engine([PumpSource(Options())], [NullSink(Options())], [SecretRedaction(Options())]).run()
    return out


def run_worker(kind: str, kubeconfig: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", kind, "--kubeconfig", kubeconfig],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- orchestration ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", choices=["floor", "floor-gc", "source", "source+read"])
    parser.add_argument("--serve", action="store_true")
    parser.add_argument("--kubeconfig")
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.objects, args.kubeconfig)
        return 0
    if args.worker:
        if args.worker.startswith("source"):
            result = asyncio.run(source_worker(args.kubeconfig, args.worker == "source+read"))
        else:
            result = asyncio.run(floor_worker(args.kubeconfig, args.worker == "floor-gc"))
        print(json.dumps(result))
        return 0

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = str(Path(tmp) / "kubeconfig")
        t0 = time.perf_counter()
        server = subprocess.Popen(
            [
                *(sys.executable, __file__, "--serve"),
                *("--objects", str(args.objects), "--kubeconfig", kubeconfig),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            if server.stdout.readline().strip() != "ready":
                raise SystemExit("fake API server did not start")
            print(
                f"fake API server loaded {args.objects:,} objects in "
                f"{time.perf_counter() - t0:.1f}s (own process); {os.cpu_count()} CPUs"
            )
            plain, floors, sources, reading = [], [], [], []
            for _ in range(args.rounds):
                plain.append(run_worker("floor", kubeconfig))
                floors.append(run_worker("floor-gc", kubeconfig))
                sources.append(run_worker("source", kubeconfig))
                reading.append(run_worker("source+read", kubeconfig))
        finally:
            if server.stdin:
                server.stdin.close()
            server.wait(timeout=60)

    n = args.objects
    for result in plain + floors + sources + reading:
        if result["objects"] < n:
            raise SystemExit(f"a run saw only {result['objects']} of {n} objects")
    plain_rate = [r["objects"] / r["seconds"] for r in plain]
    floor_rate = [r["objects"] / r["seconds"] for r in floors]
    source_rate = [n / r["seconds"] for r in sources]
    reading_rate = [n / r["seconds"] for r in reading]
    ratios = [s / f for s, f in zip(source_rate, floor_rate, strict=True)]
    best = max(range(len(sources)), key=lambda i: source_rate[i])
    src = sources[best]
    rows = [
        ("objects", f"{n:,}"),
        ("raw floor, plain orjson.loads, objects/s", _spread(plain_rate)),
        ("raw floor, loads with GC paused, objects/s", _spread(floor_rate)),
        ("k8s source initial sync, objects/s", _spread(source_rate)),
        ("k8s source, sink reads every object, objects/s", _spread(reading_rate)),
        ("ratio source / GC-paused floor (same round)", _spread(ratios, "{:.2f}")),
        (
            "ratio source / plain floor (same round)",
            _spread([s / f for s, f in zip(source_rate, plain_rate, strict=True)], "{:.2f}"),
        ),
        (
            "client CPU per object: plain floor / GC-paused floor / source / source+read",
            " / ".join(
                f"{statistics.median(r['cpu'] / r['objects'] for r in runs) * 1e6:.1f} us"
                for runs in (plain, floors, sources, reading)
            ),
        ),
        ("load average (1 min) before / after", f"{load_before:.2f} / {os.getloadavg()[0]:.2f}"),
        ("floor peak RSS", f"{max(r['peak_rss_kb'] for r in plain + floors) / 1024:.0f} MiB"),
        ("source peak RSS", f"{max(r['peak_rss_kb'] for r in sources) / 1024:.0f} MiB"),
        (
            "source RSS after sync - before start",
            f"{(src['rss_after_sync_kb'] - src['base_rss_kb']) / 1024:.1f} MiB "
            f"({(src['rss_after_sync_kb'] - src['base_rss_kb']) * 1024 / n:.0f} B/object)",
        ),
        ("tracked objects", f"{src['tracked']:,}"),
        (
            "retained per tracked object (getsizeof)",
            f"{src['getsizeof_bytes_per_object']:.0f} B",
        ),
        (
            "retained per tracked object (tracemalloc)",
            f"{src['tracemalloc_bytes_per_object']:.0f} B",
        ),
    ]
    runs = [asyncio.run(breakdown()) for _ in range(5)]  # short runs: keep each stage's best
    costs = {stage: min(run[stage] for run in runs) for stage in runs[0]}
    rows.append(
        (
            "in-process CPU/object: " + " | ".join(costs),
            " | ".join(f"{v:.1f} us" for v in costs.values()),
        )
    )
    width = max(len(k) for k, _ in rows)
    print()
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


def _spread(values: list[float], fmt: str = "{:,.0f}") -> str:
    med = statistics.median(values)
    return (
        f"{fmt.format(med)} median (min {fmt.format(min(values))}, max {fmt.format(max(values))}, "
        f"{len(values)} rounds)"
    )


if __name__ == "__main__":
    sys.exit(main())
