"""Scale benchmark: initial sync of 10,000 .. 1,000,000 objects, MeshSync against a raw floor
and against what a Python user would write instead (the official clients, informer-style).

    python bench/bench_scale.py [--counts 10000,100000,300000,1000000] [--peer-max 100000]
                                [--plot docs/img/scale.png] [--json out.json]
    python bench/bench_scale.py --replot out.json [--plot docs/img/scale.png]

For each object count N a fresh fake API server process (``FakeClusterProcess``) holds
``bulk_objects(N)`` (half Pods, half ConfigMaps, ~3 KB each, with managedFields). Every
measured client runs in a fresh subprocess of its own, so its peak RSS (``ru_maxrss``) is its
own. Each lists pods and configmaps with pages of 500:

* ``floor`` - paginated GETs (aiohttp, both resources concurrently) + msgspec split of each page
  into raw items, nothing kept: the best any Python client could do;
* ``meshsync`` - ``KubernetesSource`` in the real engine (``build_engine``/``resolve_options``,
  ``--resources pods,configmaps``) into a sink that only counts, timed from engine start
  (connecting, discovery) until the initial sync is complete. "RSS after sync" is the process's
  VmRSS 1.5 s after the sync (after the source hands freed memory back), with every object
  tracked: the issue's target is <= 400 MB at 1,000,000 objects;
* ``kubernetes`` - the official client, synchronous: ``list_pod_for_all_namespaces`` and
  ``list_config_map_for_all_namespaces`` pages decoded into models (its default), every object
  kept in a dict by uid as an informer's cache would, then a watch from the list's
  resourceVersion (short ``timeout_seconds``) to show that list+watch works; timed until the
  lists are complete. Only for N <= ``--peer-max``: they hold every object as models;
* ``kubernetes_asyncio`` - the same with the async client, both resources concurrently.

Printed: one table (path x N: objects, seconds, objects/s, ratio to the floor of the same N,
peak RSS, RSS after sync, client CPU per object), the ratios meshsync/peer, and the fake API
server's own seed time, RSS and CPU per object served. ``--plot`` draws throughput and RSS
against N (one line per path), titled with the commit, machine and date the results came from;
``--json`` saves the results, which ``--replot`` draws again without rerunning.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_cluster import FakeClusterProcess, machine_description

PAGE = 500
RESOURCES = ["pods", "configmaps"]
PATHS = ["floor", "meshsync", "kubernetes", "kubernetes_asyncio"]
PEERS = ["kubernetes", "kubernetes_asyncio"]
REPO = Path(__file__).resolve().parent.parent
#: How long a peer's watch (after its list) stays open: enough to show it connects and streams.
WATCH_SECONDS = 1


def _rss_now_kb(pid: int | str = "self") -> int:
    return _status_kb(pid, "VmRSS")


def _status_kb(pid: int | str, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _peak_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _result(count: int, seconds: float, cpu: float, **extra: Any) -> dict[str, Any]:
    return {
        "objects": count,
        "seconds": seconds,
        "cpu": cpu,
        "peak_rss_kb": _peak_kb(),
        "rss_after_kb": _rss_now_kb(),
        **extra,
    }


# -- workers (each in a fresh subprocess) ----------------------------------------------------------


async def floor_worker(kubeconfig: str) -> dict[str, Any]:
    """Paginated GETs of pods and configmaps (concurrently) + msgspec split; nothing kept."""
    import aiohttp
    from meshsync_k8s.kubeconfig import load_connection
    from meshsync_k8s.raw_json import decode_page

    conn = load_connection(kubeconfig)
    count = 0
    connector = aiohttp.TCPConnector(ssl=conn.ssl if conn.ssl is not None else True)
    async with aiohttp.ClientSession(headers=conn.headers, connector=connector) as session:

        async def list_all(plural: str) -> None:
            nonlocal count
            params = {"limit": str(PAGE)}
            while True:
                async with session.get(f"{conn.server}/api/v1/{plural}", params=params) as resp:
                    resp.raise_for_status()
                    page = decode_page(await resp.read())
                count += len(page.items or ())
                if not page.continue_token:
                    return
                params = {"limit": str(PAGE), "continue": page.continue_token}

        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(list_all(plural) for plural in RESOURCES))
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return _result(count, elapsed, cpu)


async def meshsync_worker(kubeconfig: str) -> dict[str, Any]:
    """The k8s source in the real engine, into a sink that only counts."""
    from meshsync_core import Options, Sink
    from meshsync_core.api import build_engine, resolve_options
    from meshsync_core.plugin_manager import PluginRegistry

    class CountingSink(Sink):
        name = "count"

        def __init__(self, options: Options) -> None:
            super().__init__(options)
            self.count = 0
            self.synced_at = 0.0
            self.done = asyncio.Event()

        async def deliver(self, events: Sequence[Any]) -> None:
            self.count += len(events)

        async def on_synced(self) -> None:
            self.synced_at = time.perf_counter()
            self.done.set()

    manager = PluginRegistry.from_entry_points()
    manager.sinks["count"] = CountingSink
    values = {"kubeconfig": kubeconfig, "resources": RESOURCES, "log_level": "warning"}
    options = Options({**resolve_options(manager, values), "output": ["count"]})
    engine = build_engine(manager, options)
    (sink,) = (lane.sink for lane in engine.lanes)
    assert isinstance(sink, CountingSink)
    (source,) = engine.sources
    gc.collect()
    base_rss = _rss_now_kb()
    start, cpu = time.perf_counter(), time.process_time()
    task = asyncio.create_task(engine.run())
    await asyncio.wait_for(sink.done.wait(), 1800)
    elapsed, cpu = sink.synced_at - start, time.process_time() - cpu
    count = sink.count
    peak_at_sync = _peak_kb()
    await asyncio.sleep(1.5)  # the source hands freed heap back to the OS 1 s after the sync
    gc.collect()
    result = _result(
        count,
        elapsed,
        cpu,
        base_rss_kb=base_rss,
        peak_rss_at_sync_kb=peak_at_sync,
        tracked=getattr(source, "tracked", None),
    )
    engine.stop("bench done")
    await task
    return result


def kubernetes_worker(kubeconfig: str) -> dict[str, Any]:
    """The official client as an informer would use it: list (models) into a cache, then watch."""
    from kubernetes import client, config, watch

    config.load_kube_config(config_file=kubeconfig)
    v1 = client.CoreV1Api()
    cache: dict[str, Any] = {}
    versions: dict[str, str] = {}
    listers = {
        "pods": v1.list_pod_for_all_namespaces,
        "configmaps": v1.list_config_map_for_all_namespaces,
    }
    start, cpu = time.perf_counter(), time.process_time()
    for plural, lister in listers.items():
        token = None
        while True:
            page = lister(limit=PAGE, _continue=token)
            for item in page.items:
                cache[item.metadata.uid] = item
            token = page.metadata._continue
            if not token:
                break
        versions[plural] = page.metadata.resource_version
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    rss_after = _rss_now_kb()
    events = 0
    for plural, lister in listers.items():
        for _event in watch.Watch().stream(
            lister, resource_version=versions[plural], timeout_seconds=WATCH_SECONDS
        ):
            events += 1
    result = _result(len(cache), elapsed, cpu, watch_ok=True, watch_events=events)
    result["rss_after_kb"] = rss_after
    return result


async def kubernetes_asyncio_worker(kubeconfig: str) -> dict[str, Any]:
    """The same with kubernetes_asyncio, both resources listed concurrently."""
    from kubernetes_asyncio import client, config, watch

    await config.load_kube_config(config_file=kubeconfig)
    cache: dict[str, Any] = {}
    versions: dict[str, str] = {}
    async with client.ApiClient() as api:
        v1 = client.CoreV1Api(api)
        listers = {
            "pods": v1.list_pod_for_all_namespaces,
            "configmaps": v1.list_config_map_for_all_namespaces,
        }

        async def list_all(plural: str) -> None:
            token = None
            while True:
                page = await listers[plural](limit=PAGE, _continue=token)
                for item in page.items:
                    cache[item.metadata.uid] = item
                token = page.metadata._continue
                if not token:
                    break
            versions[plural] = page.metadata.resource_version

        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(list_all(plural) for plural in RESOURCES))
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        rss_after = _rss_now_kb()
        events = 0
        for plural, lister in listers.items():
            async with watch.Watch() as w:
                async for _event in w.stream(
                    lister, resource_version=versions[plural], timeout_seconds=WATCH_SECONDS
                ):
                    events += 1
    result = _result(len(cache), elapsed, cpu, watch_ok=True, watch_events=events)
    result["rss_after_kb"] = rss_after
    return result


def run_worker(path: str, kubeconfig: str, server_pid: int) -> dict[str, Any]:
    server_cpu = _cpu_seconds(server_pid)
    out = subprocess.run(
        [sys.executable, __file__, "--worker", path, "--kubeconfig", kubeconfig],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"{path} worker failed:\n{out.stderr}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["server_cpu"] = _cpu_seconds(server_pid) - server_cpu
    return result


# -- orchestration -------------------------------------------------------------------------------


def measure(counts: list[int], peer_max: int) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    servers: list[dict[str, Any]] = []
    for n in counts:
        t0 = time.perf_counter()
        with FakeClusterProcess(n) as cluster:
            seed_s = time.perf_counter() - t0
            seeded_kb = _rss_now_kb(cluster.pid)
            print(
                f"N={n:,}: fake API server seeded in {seed_s:.1f}s, "
                f"RSS {seeded_kb / 1024:,.0f} MiB",
                file=sys.stderr,
                flush=True,
            )
            served = 0
            server_cpu = 0.0
            for path in PATHS:
                if path in PEERS and n > peer_max:
                    continue
                result = run_worker(path, cluster.kubeconfig, cluster.pid)
                if result["objects"] < n:
                    raise SystemExit(f"{path} saw only {result['objects']:,} of {n:,} objects")
                result.update(path=path, n=n)
                runs.append(result)
                served += n
                server_cpu += result["server_cpu"]
                print(
                    f"  {path}: {n / result['seconds']:,.0f} objects/s, "
                    f"peak {result['peak_rss_kb'] / 1024:,.0f} MiB",
                    file=sys.stderr,
                    flush=True,
                )
            servers.append(
                {
                    "n": n,
                    "seed_seconds": seed_s,
                    "rss_seeded_kb": seeded_kb,
                    "peak_rss_kb": _status_kb(cluster.pid, "VmHWM"),
                    "cpu_per_object_served_us": server_cpu / served * 1e6,
                }
            )
    return {"runs": runs, "servers": servers}


def _git(*args: str) -> str:
    out = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
    return out.stdout.strip()


def describe_run(argv: list[str]) -> dict[str, Any]:
    commit = _git("rev-parse", "--short", "HEAD")
    if _git("status", "--porcelain", "--untracked-files=no"):
        commit += "+dirty"
    return {
        "commit": commit,
        "machine": machine_description(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python bench/bench_scale.py " + " ".join(argv),
        "load_average": list(os.getloadavg()),
    }


def _mib(kb: float | None) -> str:
    return "-" if kb is None else f"{kb / 1024:,.0f}"


def print_report(data: dict[str, Any]) -> None:
    meta = data["meta"]
    runs = data["runs"]
    print(f"\nScale: initial sync of pods+configmaps — {meta['machine']}")
    print(f"date {meta['date']}, commit {meta['commit']}; {meta['command']}")
    floor = {r["n"]: r["objects"] / r["seconds"] for r in runs if r["path"] == "floor"}
    header = (
        f"{'path':<20} {'N':>10} {'objects':>10} {'seconds':>8} {'objects/s':>10} "
        f"{'/floor':>6} {'peak RSS MiB':>12} {'RSS after sync MiB':>18} {'CPU us/obj':>10}"
    )
    print(header)
    print("-" * len(header))
    for path in PATHS:
        for r in sorted((r for r in runs if r["path"] == path), key=lambda r: r["n"]):
            rate = r["objects"] / r["seconds"]
            ratio = f"{rate / floor[r['n']]:.2f}" if r["n"] in floor else "-"
            print(
                f"{path:<20} {r['n']:>10,} {r['objects']:>10,} {r['seconds']:>8.2f} "
                f"{rate:>10,.0f} {ratio:>6} {_mib(r['peak_rss_kb']):>12} "
                f"{_mib(r.get('rss_after_kb')):>18} {r['cpu'] / r['objects'] * 1e6:>10.1f}"
            )
    by = {(r["path"], r["n"]): r for r in runs}
    for peer in PEERS:
        for n in sorted({r["n"] for r in runs if r["path"] == peer}):
            ms, other = by.get(("meshsync", n)), by[(peer, n)]
            if ms is None:
                continue
            speed = (ms["objects"] / ms["seconds"]) / (other["objects"] / other["seconds"])
            print(
                f"meshsync / {peer} at {n:,}: {speed:.1f}x the objects/s, "
                f"{other['peak_rss_kb'] / ms['peak_rss_kb']:.1f}x less peak RSS, "
                f"{other['rss_after_kb'] / ms['rss_after_kb']:.1f}x less RSS after sync"
            )
    for r in sorted((r for r in runs if r["path"] == "meshsync"), key=lambda r: r["n"]):
        grown = (r["rss_after_kb"] - r["base_rss_kb"]) * 1024
        print(
            f"meshsync at {r['n']:,}: RSS after sync {r['rss_after_kb'] / 1024:,.0f} MiB "
            f"({r['base_rss_kb'] / 1024:.0f} MiB before the engine started, "
            f"{grown / r['n']:.0f} B per tracked object; tracked {r.get('tracked') or 0:,})"
        )
    for s in data["servers"]:
        print(
            f"fake API server at {s['n']:,}: seeded in {s['seed_seconds']:.1f}s, "
            f"RSS {s['rss_seeded_kb'] / 1024:,.0f} MiB seeded, peak {s['peak_rss_kb'] / 1024:,.0f}"
            f" MiB, {s['cpu_per_object_served_us']:.1f} us CPU per object served"
        )
    start, end = meta["load_average"], meta.get("load_average_after", ["?"])
    print(f"load average (1 min) before / after: {start[0]:.2f} / {end[0]}")


LABELS = {
    "floor": "floor (GET + msgspec split)",
    "meshsync": "meshsync k8s source",
    "kubernetes": "kubernetes (sync, models)",
    "kubernetes_asyncio": "kubernetes_asyncio (models)",
}


def plot(data: dict[str, Any], out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta, runs = data["meta"], data["runs"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    for path in PATHS:
        rows = sorted((r for r in runs if r["path"] == path), key=lambda r: r["n"])
        if not rows:
            continue
        ns = [r["n"] for r in rows]
        left.plot(ns, [r["objects"] / r["seconds"] for r in rows], "o-", label=LABELS[path])
        right.plot(ns, [r["peak_rss_kb"] / 1024 for r in rows], "o-", label=LABELS[path])
        if path != "floor":
            color = right.lines[-1].get_color()
            right.plot(
                ns,
                [r["rss_after_kb"] / 1024 for r in rows],
                "x--",
                color=color,
                label=f"{LABELS[path]}, after sync",
            )
    servers = sorted(data["servers"], key=lambda s: s["n"])
    right.plot(
        [s["n"] for s in servers],
        [s["rss_seeded_kb"] / 1024 for s in servers],
        ":",
        color="grey",
        label="fake API server (other process)",
    )
    right.axhline(
        400e6 / 2**20, color="red", linewidth=0.8, linestyle="-.", label="target: 400 MB at 1M"
    )
    left.set(
        xscale="log", yscale="log", xlabel="objects (pods + configmaps)", ylabel="objects/s",
        title="initial sync throughput",
    )  # fmt: skip
    right.set(
        xscale="log", yscale="log", xlabel="objects (pods + configmaps)",
        ylabel="RSS MiB (solid: peak, dashed: after sync)", title="client memory",
    )  # fmt: skip
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8)
    right.legend(fontsize=7)
    fig.suptitle("MeshSync at scale: fresh process per client, fake API server in its own")
    fig.text(
        0.5,
        0.01,
        f"commit {meta['commit']} · {meta['machine']} · {meta['date']} · bench/bench_scale.py",
        ha="center",
        fontsize=8,
    )
    fig.tight_layout(rect=(0, 0.04, 1, 0.96))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"plot: {out}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="10000,100000,300000,1000000")
    parser.add_argument("--peer-max", type=int, default=100_000)
    parser.add_argument("--plot", help="write a PNG of the results here")
    parser.add_argument("--json", help="save the results here")
    parser.add_argument("--replot", help="print and draw results saved with --json, no run")
    parser.add_argument("--worker", choices=PATHS, help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        workers = {
            "floor": lambda: asyncio.run(floor_worker(args.kubeconfig)),
            "meshsync": lambda: asyncio.run(meshsync_worker(args.kubeconfig)),
            "kubernetes": lambda: kubernetes_worker(args.kubeconfig),
            "kubernetes_asyncio": lambda: asyncio.run(kubernetes_asyncio_worker(args.kubeconfig)),
        }
        print(json.dumps(workers[args.worker]()))
        return 0

    if args.replot:
        data = json.loads(Path(args.replot).read_text())
    else:
        meta = describe_run(argv)
        counts = [int(c.replace("_", "")) for c in args.counts.split(",") if c]
        data = {"meta": meta, **measure(counts, args.peer_max)}
        meta["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(data, indent=1) + "\n")
    print_report(data)
    if args.plot:
        plot(data, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
