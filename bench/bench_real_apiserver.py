"""Benchmark against a real kube-apiserver: initial sync of N Pods and ConfigMaps.

    python bench/bench_real_apiserver.py [--objects 100000] [--rounds 1]

A real control plane (etcd + kube-apiserver 1.37 from ``tests/realkube``, no controllers, no
scheduler) is started and seeded through the API: half Pods (bare, ``spec.nodeName`` set to a
node nobody manages, status written through the ``status`` subresource as a kubelet would),
half ConfigMaps, spread over 10 namespaces, created by POST ~48 at a time so that the server
writes real managedFields. Then, each in a fresh process so that its RSS is its own:

* ``floor``          - the same paginated GETs (limit 500) of pods and configmaps, concurrently,
  + the msgspec split the source does (``raw_json.decode_page``), nothing else. Same headers as
  the source's client (aiohttp's default ``Accept-Encoding: gzip, deflate``);
* ``floor identity`` - the same, with ``Accept-Encoding: identity`` (the server does not gzip);
* ``floor stream``   - a watch with ``sendInitialEvents=true`` per resource, lines split and
  decoded with msgspec up to the ``initial-events-end`` bookmark (the streaming-list floor);
* ``floor stream identity`` - the same with ``Accept-Encoding: identity`` (kube gzips watch
  streams too when asked);
* ``floor unpaged``  - one GET per resource without ``limit`` (what streaming lists replace);
* ``source paged|stream`` - ``KubernetesSource`` (pods + configmaps) in the real engine into a
  counting sink, ``Tuning(streaming_list=False|True)``;
* ``default set paged|stream`` - the same with the default resource set (+ CRD watching);
* ``nats paged|stream`` - the engine with the NATS sink (as ``meshsync run --output nats``) to a
  real nats-server, timed until a subscriber in its own process has the last message.

The kube-apiserver is restarted before each measurement (etcd keeps the data), so that every
measurement meets a freshly started server with its watch cache filled and idle. Measured around
each sync: its CPU seconds (``/proc/<pid>/stat``), its peak RSS (``VmRSS`` sampled every 50 ms),
the bytes its Go runtime allocated (``go_memstats_alloc_bytes_total`` from ``/metrics``), the
Go GC cycles that ran (``go_gc_duration_seconds_count``: with 100k objects one cycle over the
apiserver's ~1 GB live heap costs seconds of CPU and moves both its CPU and RSS numbers) and
etcd's CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import json
import multiprocessing as mp
import os
import platform
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PAGE = 500
NAMESPACES = 10
IN_FLIGHT = 48
RESOURCES = ("pods", "configmaps")
SUBJECT = "meshery.meshsync.core"
INITIAL_EVENTS_END = b'"k8s.io/initial-events-end":"true"'

#: measurement -> what it runs (in the worker process)
KINDS = {
    "floor": "paginated GETs (limit 500) + msgspec split",
    "floor identity": "the same, Accept-Encoding: identity",
    "floor stream": "watch sendInitialEvents + msgspec line split",
    "floor stream identity": "the same, Accept-Encoding: identity",
    "floor unpaged": "one GET per resource, no limit",
    "source paged": "KubernetesSource pods+configmaps, paginated lists",
    "source stream": "KubernetesSource pods+configmaps, streaming lists",
    "default set paged": "KubernetesSource default resource set, paginated",
    "default set stream": "KubernetesSource default resource set, streaming",
    "nats paged": "engine -> NATS sink -> nats-server -> subscriber, paginated",
    "nats stream": "engine -> NATS sink -> nats-server -> subscriber, streaming",
}


# -- /proc ---------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def peak_kb() -> int:
    """This process's peak RSS: VmHWM, not ru_maxrss, which on Linux keeps the high-water mark
    of the process that forked us across the exec."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class RssSampler(threading.Thread):
    """Samples VmRSS of some processes every ``interval`` seconds; keeps each one's peak."""

    def __init__(self, pids: dict[str, int], interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.interval = interval
        self.peak_kb = {name: rss_kb(pid) for name, pid in pids.items()}
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.samples += 1
            for name, pid in self.pids.items():
                with contextlib.suppress(OSError):  # the process just ended
                    self.peak_kb[name] = max(self.peak_kb[name], rss_kb(pid))

    def stop(self) -> dict[str, int]:
        self._stop_event.set()
        self.join()
        return self.peak_kb


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "memory": f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB",
    }


# -- the cluster, as the workers see it ----------------------------------------------------------


@dataclass
class Cluster:
    url: str
    ca: str
    cert: str
    key: str
    kubeconfig: str
    nats_url: str

    @classmethod
    def load(cls, path: str) -> Cluster:
        return cls(**json.loads(Path(path).read_text()))

    def ssl(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca)
        context.load_cert_chain(self.cert, self.key)
        return context


# -- seeding -------------------------------------------------------------------------------------


def seed_objects(n: int) -> Iterator[tuple[str, dict[str, Any], dict[str, Any] | None]]:
    """(plural, object to POST, status to write afterwards) for ``n`` realistic objects.

    The shapes are the fake API server's ``bulk_objects`` (a worker Pod with one container,
    env, probes, a projected volume, ownerReferences and a kubelet-like status; a ConfigMap with
    two data keys), minus everything the server sets itself.
    """
    from meshsync_testkit.seed import bulk_objects

    for i, obj in enumerate(bulk_objects(n, NAMESPACES)):
        meta = obj["metadata"]
        for key in ("managedFields", "uid", "resourceVersion", "creationTimestamp"):
            meta.pop(key, None)
        status = None
        if obj["kind"] == "Pod":
            status = obj.pop("status", None)
            spec = obj["spec"]
            spec["nodeName"] = f"unmanaged-node-{i % 7}"  # no kubelet, no kwok: nobody
            spec.pop("priority", None)  # set by the server's Priority admission
            spec.pop("preemptionPolicy", None)
        yield ("pods" if obj["kind"] == "Pod" else "configmaps"), obj, status


async def seed(plane: Any, n: int) -> dict[str, float]:
    import aiohttp
    import orjson
    from meshsync_testkit.seed import bulk_namespaces

    for namespace in bulk_namespaces(NAMESPACES):
        plane.apply(namespace)
    context = ssl.create_default_context(cafile=str(plane.ca_file))
    context.load_cert_chain(str(plane.admin.cert), str(plane.admin.key))
    objects = seed_objects(n)
    done = {"objects": 0, "requests": 0}
    start = time.perf_counter()

    async def post(session: aiohttp.ClientSession, url: str, body: bytes, ctype: str) -> None:
        for attempt in range(20):
            async with session.request(
                "PATCH" if ctype.endswith("patch+json") else "POST",
                url,
                data=body,
                headers={"Content-Type": ctype},
            ) as resp:
                done["requests"] += 1
                if resp.status in (200, 201):
                    await resp.read()
                    return
                text = await resp.text()
                if resp.status not in (429, 500, 503, 504) or attempt == 19:
                    raise SystemExit(f"seeding: {resp.status} from {url}: {text[:300]}")
            await asyncio.sleep(0.2 * (attempt + 1))  # the server asked to back off

    async def worker(session: aiohttp.ClientSession) -> None:
        for plural, obj, status in objects:
            ns = obj["metadata"]["namespace"]
            base = f"{plane.url}/api/v1/namespaces/{ns}/{plural}"
            manager = "kube-controller-manager" if plural == "pods" else "kubectl-client-side-apply"
            await post(
                session, f"{base}?fieldManager={manager}", orjson.dumps(obj), "application/json"
            )
            if status is not None:
                await post(
                    session,
                    f"{base}/{obj['metadata']['name']}/status?fieldManager=kubelet",
                    orjson.dumps({"status": status}),
                    "application/strategic-merge-patch+json",
                )
            done["objects"] += 1

    connector = aiohttp.TCPConnector(limit=IN_FLIGHT, ssl=context)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(IN_FLIGHT)))
    seconds = time.perf_counter() - start
    return {"objects": done["objects"], "requests": done["requests"], "seconds": seconds}


# -- workers (each measurement in its own process) ----------------------------------------------


def say(phase: str, **fields: Any) -> None:
    print(json.dumps({"phase": phase, **fields}), flush=True)


def wait_go() -> None:
    say("ready")
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("no go")


async def floor_worker(cluster: Cluster, kind: str) -> dict[str, Any]:
    """GETs (or streaming-list watches) of pods and configmaps + msgspec split; nothing else."""
    import aiohttp
    from meshsync_k8s.raw_json import decode_page, decode_watch_line

    headers = {"Accept": "application/json", "User-Agent": "meshsync-python"}
    if kind.endswith("identity"):
        headers["Accept-Encoding"] = "identity"
    limit = None if kind == "floor unpaged" else PAGE
    counts = {"objects": 0, "bytes": 0}
    first: list[float] = []
    connector = aiohttp.TCPConnector(limit=0, ssl=cluster.ssl())
    timeout = aiohttp.ClientTimeout(total=None, sock_read=300)
    async with aiohttp.ClientSession(
        connector=connector, headers=headers, timeout=timeout
    ) as session:

        async def list_all(plural: str) -> None:
            params = {"limit": str(limit)} if limit else {}
            while True:
                async with session.get(f"{cluster.url}/api/v1/{plural}", params=params) as resp:
                    body = await resp.read()
                    if resp.status != 200:
                        raise SystemExit(f"GET {plural}: {resp.status} {body[:300]!r}")
                page = decode_page(body)
                if not first:
                    first.append(time.perf_counter())
                counts["objects"] += len(page.items or ())
                counts["bytes"] += len(body)
                token = page.continue_token
                del body, page
                if not token:
                    return
                params = {"limit": str(limit), "continue": token}

        async def stream_all(plural: str) -> None:
            params = {
                "watch": "1",
                "sendInitialEvents": "true",
                "resourceVersionMatch": "NotOlderThan",
                "allowWatchBookmarks": "true",
                "timeoutSeconds": "600",
            }
            async with session.get(f"{cluster.url}/api/v1/{plural}", params=params) as resp:
                if resp.status != 200:
                    raise SystemExit(f"watch {plural}: {resp.status} {await resp.text()}")
                pending = bytearray()
                async for chunk in resp.content.iter_any():
                    counts["bytes"] += len(chunk)
                    pending += chunk
                    start = 0
                    while (end := pending.find(b"\n", start)) >= 0:
                        event = decode_watch_line(pending[start:end])
                        start = end + 1
                        if event.type == "ADDED":
                            if not first:
                                first.append(time.perf_counter())
                            counts["objects"] += 1
                        elif event.type == "BOOKMARK" and INITIAL_EVENTS_END in bytes(event.object):
                            return
                        elif event.type != "BOOKMARK":
                            raise SystemExit(f"watch {plural}: unexpected {event.type}")
                    del pending[:start]
            raise SystemExit(f"watch {plural} ended before its initial-events-end bookmark")

        each = stream_all if kind.startswith("floor stream") else list_all
        wait_go()
        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(each(plural) for plural in RESOURCES))
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
        say("synced")
    return {
        "objects": counts["objects"],
        "seconds": elapsed,
        "first_event": first[0] - start if first else None,
        "cpu": cpu,
        "peak_rss_kb": peak_kb(),
        "mb_received": counts["bytes"] / 1e6,
    }


async def source_worker(cluster: Cluster, kind: str) -> dict[str, Any]:
    """KubernetesSource in the real engine into a sink that only counts."""
    from meshsync_k8s.source import KubernetesSource
    from meshsync_k8s.watcher import Tuning

    from meshsync_core import Engine, Options, Sink

    class CountingSink(Sink):
        name = "count"

        def __init__(self) -> None:
            super().__init__(Options())
            self.count = 0
            self.first_at = 0.0
            self.synced_at = 0.0
            self.done = asyncio.Event()

        async def deliver(self, events: Sequence[Any]) -> None:
            if not self.first_at:
                self.first_at = time.perf_counter()
            self.count += len(events)

        async def on_synced(self) -> None:
            self.synced_at = time.perf_counter()
            self.done.set()

    options: dict[str, Any] = {"kubeconfig": cluster.kubeconfig}
    if not kind.startswith("default set"):
        options["resources"] = list(RESOURCES)
    tuning = Tuning(streaming_list=kind.endswith("stream"))
    source = KubernetesSource(Options(options), tuning=tuning)
    sink = CountingSink()
    engine = Engine([source], [sink])
    gc.collect()
    base_rss = rss_kb()
    wait_go()
    start, cpu = time.perf_counter(), time.process_time()
    task = asyncio.create_task(engine.run())
    await asyncio.wait_for(sink.done.wait(), 900)
    cpu = time.process_time() - cpu
    say("synced")
    watchers = [w for ws in source.watchers.values() for w in ws]
    result = {
        "objects": sink.count,
        "seconds": sink.synced_at - start,
        "first_event": sink.first_at - start,
        "cpu": cpu,
        "peak_rss_kb": peak_kb(),
        "base_rss_kb": base_rss,
        "streamed_lists": sum(w.streamed_lists for w in watchers),
        "lists": sum(w.lists for w in watchers),
        "watchers": len(watchers),
    }
    await asyncio.sleep(1.5)  # the source hands freed heap back to the OS 1 s after the sync
    gc.collect()
    result["rss_after_sync_kb"] = rss_kb()
    engine.stop("bench done")
    await task
    return result


def _subscribe(conn: Connection, url: str) -> None:
    """Child process: count messages; remember when the first and the latest one arrived."""
    import nats

    async def main() -> None:
        nc = await nats.connect(url, pending_size=1024 * 1024 * 1024)
        state = {"count": 0, "first_at": 0.0, "last_at": 0.0}

        async def on_message(_msg: Any) -> None:
            now = time.time()
            if not state["count"]:
                state["first_at"] = now
            state["count"] += 1
            state["last_at"] = now

        await nc.subscribe(SUBJECT, cb=on_message, pending_msgs_limit=-1, pending_bytes_limit=-1)
        await nc.flush()
        conn.send("ready")
        loop = asyncio.get_running_loop()
        while True:
            command, arg = await loop.run_in_executor(None, conn.recv)
            if command == "wait":  # until `arg` messages arrived
                while state["count"] < arg:
                    await asyncio.sleep(0.01)  # polling a counter in this process
                conn.send((state["first_at"], state["last_at"], state["count"]))
            else:
                break
        await nc.close()

    asyncio.run(main())


async def nats_worker(cluster: Cluster, kind: str) -> dict[str, Any]:
    """The engine as ``meshsync run --output nats`` builds it, to a subscriber process."""
    from meshsync_core.api import build_engine, resolve_options
    from meshsync_core.plugin_manager import PluginRegistry

    ctx = mp.get_context("spawn")
    conn, child = ctx.Pipe()
    subscriber = ctx.Process(target=_subscribe, args=(child, cluster.nats_url), daemon=True)
    subscriber.start()
    assert conn.recv() == "ready"
    options = {
        "kubeconfig": cluster.kubeconfig,
        "resources": list(RESOURCES),
        "broker_url": cluster.nats_url,
        "log_level": "warning",
        "output": ["nats"],
        "streaming_list": kind.endswith("stream"),
    }
    manager = PluginRegistry.from_entry_points()
    engine = build_engine(manager, resolve_options(manager, options))
    (source,) = engine.sources
    # as the option asks, whatever the option parsing made of it (an explicit True was dropped
    # once the default became False); the watchers' counters below show what really happened
    source.tuning = dataclasses.replace(source.tuning, streaming_list=kind.endswith("stream"))
    gc.collect()
    base_rss = rss_kb()
    wait_go()
    start, cpu = time.time(), time.process_time()
    run = asyncio.create_task(engine.run())
    await engine.synced.wait()
    delivered = sum(engine.stats.emitted.values())
    conn.send(("wait", delivered))
    loop = asyncio.get_running_loop()
    first_at, last_at, received = await loop.run_in_executor(None, conn.recv)
    cpu = time.process_time() - cpu
    say("synced")
    watchers = [w for ws in source.watchers.values() for w in ws]
    result = {
        "streamed_lists": sum(w.streamed_lists for w in watchers),
        "lists": sum(w.lists for w in watchers),
        "watchers": len(watchers),
        "objects": received,
        "seconds": last_at - start,
        "first_event": first_at - start,
        "cpu": cpu,
        "peak_rss_kb": peak_kb(),
        "base_rss_kb": base_rss,
    }
    await asyncio.sleep(1.5)
    gc.collect()
    result["rss_after_sync_kb"] = rss_kb()
    engine.stop()
    await run
    conn.send(("stop", None))
    subscriber.join(timeout=10)
    return result


def worker_main(kind: str, cluster_file: str) -> None:
    cluster = Cluster.load(cluster_file)
    if kind.startswith("floor"):
        result = asyncio.run(floor_worker(cluster, kind))
    elif kind.startswith("nats"):
        result = asyncio.run(nats_worker(cluster, kind))
    else:
        result = asyncio.run(source_worker(cluster, kind))
    say("result", **result)


# -- orchestration ---------------------------------------------------------------------------------


def api_metrics(plane: Any) -> dict[str, float]:
    """The apiserver Go runtime's cumulative allocation and GC count, from its /metrics."""
    status, body = plane.request("GET", "/metrics")
    out: dict[str, float] = {}
    if status != 200:
        return out
    wanted = {
        "go_memstats_alloc_bytes_total": "alloc_bytes",
        "go_gc_duration_seconds_count": "gc_cycles",
        "go_memstats_heap_inuse_bytes": "heap_inuse",
    }
    for line in body.decode().splitlines():
        name, _, value = line.partition(" ")
        if name in wanted:
            out[wanted[name]] = float(value)
    return out


def _status(plane: Any, path: str) -> int:
    try:
        return plane.request("GET", path)[0]
    except OSError:  # timed out or refused while the server starts
        return 0


def fresh_apiserver(plane: Any, quiet_cpu: float = 0.05, settle: float = 30.0) -> None:
    """Restart kube-apiserver (etcd keeps the data); return once its watch cache answers and it
    has gone quiet (< ``quiet_cpu`` CPU-seconds per second, or ``settle`` seconds passed)."""
    plane.stop_apiserver()
    plane.start_apiserver()
    deadline = time.monotonic() + 120
    for plural in RESOURCES:
        # resourceVersion=0: served by the watch cache alone, 429 until it is initialised
        while _status(plane, f"/api/v1/{plural}?limit=1&resourceVersion=0") != 200:
            if time.monotonic() > deadline:
                raise SystemExit(f"the apiserver's watch cache for {plural} never came up")
            time.sleep(0.2)  # polling a server that has no readiness signal for this
    pid = plane.processes["kube-apiserver"].popen.pid
    end = time.monotonic() + settle
    while time.monotonic() < end:
        before = cpu_seconds(pid)
        time.sleep(1.0)
        if cpu_seconds(pid) - before < quiet_cpu:
            break


def run_worker(plane: Any, kind: str, cluster_file: str, nats_pid: int, log: Path) -> dict:
    apiserver = plane.processes["kube-apiserver"].popen.pid
    etcd = plane.processes["etcd"].popen.pid
    with open(log, "ab") as stderr:
        child = subprocess.Popen(
            [sys.executable, __file__, "--worker", kind, "--cluster", cluster_file],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=REPO,
        )
    assert child.stdin is not None and child.stdout is not None

    def expect(phase: str) -> dict[str, Any]:
        for line in child.stdout:
            if line.startswith("{"):
                message = json.loads(line)
                if message.get("phase") == phase:
                    return message
        child.wait()
        raise SystemExit(f"{kind} worker failed (exit {child.returncode}); see {log}")

    expect("ready")
    pids = {"apiserver": apiserver, "etcd": etcd, "nats": nats_pid}
    rss_before = {name: rss_kb(pid) for name, pid in pids.items()}
    metrics_before = api_metrics(plane)
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    sampler = RssSampler(pids)
    sampler.start()
    child.stdin.write("go\n")
    child.stdin.flush()
    expect("synced")
    cpu_after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    peaks = sampler.stop()
    metrics_after = api_metrics(plane)
    result = expect("result")
    child.stdin.close()
    child.wait(timeout=60)
    result["kind"] = kind
    for name in pids:
        result[f"{name}_cpu"] = cpu_after[name] - cpu_before[name]
        result[f"{name}_rss_before_kb"] = rss_before[name]
        result[f"{name}_peak_rss_kb"] = peaks[name]
    for key in ("alloc_bytes", "gc_cycles"):
        if key in metrics_before and key in metrics_after:
            result[f"apiserver_{key}"] = metrics_after[key] - metrics_before[key]
    result["rss_samples"] = sampler.samples
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--only", help="comma-separated measurements to run (default: all): " + ", ".join(KINDS)
    )
    parser.add_argument("--no-restart", action="store_true", help="keep one apiserver throughout")
    parser.add_argument("--json", help="also write every raw result to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument("--worker", choices=list(KINDS))
    parser.add_argument("--cluster")
    args = parser.parse_args(argv)
    if args.worker:
        worker_main(args.worker, args.cluster)
        return 0
    kinds = [k.strip() for k in args.only.split(",")] if args.only else list(KINDS)
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown measurements: {', '.join(sorted(unknown))}")

    sys.path.insert(0, str(REPO))
    from meshsync_testkit.nats_server import NatsServer

    from tests.realkube.cluster import ControlPlane

    info = machine()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    load_before = os.getloadavg()
    print(
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}; {info['cpus']} CPUs "
        f"({info['cpu']}), {info['memory']}, Python {info['python']}; load average "
        + " / ".join(f"{x:.2f}" for x in load_before),
        flush=True,
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench-realkube-"))
    # kube's default compaction interval: the tests' 5 s would expire continue tokens mid-list
    plane = ControlPlane(tmp / "cluster", with_controllers=False, compaction_interval="5m")
    results: list[dict[str, Any]] = []
    try:
        t0 = time.perf_counter()
        plane.start()
        print(f"control plane up in {time.perf_counter() - t0:.1f}s ({plane.url})", flush=True)
        apiserver_pid = plane.processes["kube-apiserver"].popen.pid
        seed_cpu = cpu_seconds(apiserver_pid)
        seeded = asyncio.run(seed(plane, args.objects))
        seed_cpu = cpu_seconds(apiserver_pid) - seed_cpu
        db = tmp / "cluster" / "etcd-data" / "member" / "snap" / "db"
        print(
            f"seeded {seeded['objects']:,} objects ({seeded['requests']:,} requests, "
            f"{IN_FLIGHT} in flight) in {seeded['seconds']:.1f}s: "
            f"{seeded['objects'] / seeded['seconds']:,.0f} objects/s, "
            f"{seeded['requests'] / seeded['seconds']:,.0f} requests/s; "
            f"apiserver CPU {seed_cpu / seeded['requests'] * 1000:.2f} ms per request; "
            f"etcd db {db.stat().st_size / 2**20:.0f} MiB",
            flush=True,
        )
        with NatsServer(tmp / "nats") as nats_server:
            assert nats_server.process is not None
            cluster_file = tmp / "cluster.json"
            cluster_file.write_text(
                json.dumps(
                    {
                        "url": plane.url,
                        "ca": str(plane.ca_file),
                        "cert": str(plane.admin.cert),
                        "key": str(plane.admin.key),
                        "kubeconfig": str(plane.kubeconfig(tmp / "admin.kubeconfig")),
                        "nats_url": nats_server.url,
                    }
                )
            )
            for round_ in range(args.rounds):
                for kind in kinds:
                    if not args.no_restart:
                        fresh_apiserver(plane)
                    result = run_worker(
                        plane, kind, str(cluster_file), nats_server.process.pid, tmp / "worker.log"
                    )
                    result["round"] = round_
                    results.append(result)
                    print(
                        f"  round {round_ + 1} {kind:<20} {result['objects']:>8,} objects "
                        f"{result['objects'] / result['seconds']:>9,.0f}/s  apiserver "
                        f"{result['apiserver_cpu']:.1f} CPU-s, load {os.getloadavg()[0]:.2f}",
                        flush=True,
                    )
    except BaseException:
        for log in sorted(tmp.rglob("*.log")):
            print(f"--- {log.relative_to(tmp)} (last lines)", file=sys.stderr)
            print("\n".join(log.read_text(errors="replace").splitlines()[-15:]), file=sys.stderr)
        raise
    finally:
        plane.stop()
        if args.keep:
            print(f"work directory kept: {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    load_after = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    rounds = sorted({r["round"] for r in results})
    if len(rounds) > 1:
        for round_ in rounds:
            table([r for r in results if r["round"] == round_], kinds, f"round {round_ + 1}")
    report(results, kinds, args.objects, load_before, load_after)
    return 0


def table(results: list[dict[str, Any]], kinds: list[str], title: str) -> None:
    """One table of the measurements (medians where several rounds are given)."""

    def med(rows: list[dict[str, Any]], key: str) -> float:
        values = [r[key] for r in rows if r.get(key) is not None]
        return statistics.median(values) if values else float("nan")

    by_kind = {kind: [r for r in results if r["kind"] == kind] for kind in kinds}

    def rate_of(kind: str) -> float | None:
        rows = by_kind.get(kind)
        return med([{"r": r["objects"] / r["seconds"]} for r in rows], "r") if rows else None

    floor_rate, stream_floor_rate = rate_of("floor"), rate_of("floor stream")
    header = (
        "measurement",
        "objects",
        "s",
        "objects/s",
        "/floor",
        "/own floor",
        "1st event",
        "peak RSS",
        "RSS B/obj",
        "CPU us/obj",
        "apisrv CPU-s",
        "apisrv us/obj",
        "apisrv RSS peak (+)",
        "apisrv alloc",
        "apisrv GCs",
        "etcd CPU-s",
    )

    def own_floor(kind: str) -> float | None:
        """The floor a measurement lists like: streaming rows against the streaming floor."""
        if kind.startswith("floor"):
            return None
        return stream_floor_rate if kind.endswith("stream") else floor_rate

    lines = [header]
    for kind, rows in by_kind.items():
        if not rows:
            continue
        n = med(rows, "objects")
        rate = med([{"r": r["objects"] / r["seconds"]} for r in rows], "r")
        growth = [
            {"g": (r["rss_after_sync_kb"] - r["base_rss_kb"]) * 1024 / r["objects"]}
            for r in rows
            if "rss_after_sync_kb" in r
        ]
        peak = med(rows, "apiserver_peak_rss_kb")
        grew = med(
            [{"d": r["apiserver_peak_rss_kb"] - r["apiserver_rss_before_kb"]} for r in rows], "d"
        )
        alloc = med(rows, "apiserver_alloc_bytes")
        lines.append(
            (
                kind,
                f"{n:,.0f}",
                f"{med(rows, 'seconds'):.2f}",
                f"{rate:,.0f}",
                f"{rate / floor_rate:.2f}" if floor_rate else "-",
                f"{rate / own:.2f}" if (own := own_floor(kind)) else "-",
                f"{med(rows, 'first_event') * 1000:,.0f} ms",
                f"{med(rows, 'peak_rss_kb') / 1024:,.0f} MiB",
                f"{med(growth, 'g'):,.0f}" if growth else "-",
                f"{med(rows, 'cpu') / n * 1e6:.1f}",
                f"{med(rows, 'apiserver_cpu'):.1f}",
                f"{med(rows, 'apiserver_cpu') / n * 1e6:.0f}",
                f"{peak / 1024:,.0f} MiB (+{grew / 1024:,.0f})",
                f"{alloc / 2**20:,.0f} MiB" if alloc == alloc else "-",
                "/".join(str(int(r.get("apiserver_gc_cycles", -1))) for r in rows),
                f"{med(rows, 'etcd_cpu'):.1f}",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    print(f"\n{title}:")
    for i, line in enumerate(lines):
        cells = [line[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True)]
        print("  ".join(cells))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def report(
    results: list[dict[str, Any]],
    kinds: list[str],
    objects: int,
    load_before: tuple[float, ...],
    load_after: tuple[float, ...],
) -> None:
    rounds = max((r["round"] for r in results), default=0) + 1
    what = "medians of " if rounds > 1 else ""
    table(results, kinds, f"{objects:,} objects, {what}{rounds} round(s)")
    nats_rows = [r for r in results if r["kind"].startswith("nats")]
    if nats_rows:
        print(
            "nats-server CPU per object: "
            + ", ".join(
                f"{r['kind']} {r['nats_cpu'] / r['objects'] * 1e6:.1f} us" for r in nats_rows
            )
        )
    stream = [r for r in results if r.get("watchers")]
    for r in stream:
        if r["kind"].endswith("stream") and r["streamed_lists"] < r["watchers"]:
            print(f"note: {r['kind']}: only {r['streamed_lists']}/{r['watchers']} lists streamed")
        if r["kind"].endswith("paged") and r["streamed_lists"]:
            print(f"note: {r['kind']}: {r['streamed_lists']} lists streamed")
    received = [r for r in results if r.get("mb_received")]
    if received:
        print(
            "JSON received by the floors (after any gzip): "
            + ", ".join(f"{r['kind']} {r['mb_received']:,.0f} MB" for r in received)
        )
    print(
        "load average before: "
        + " / ".join(f"{x:.2f}" for x in load_before)
        + "; after: "
        + " / ".join(f"{x:.2f}" for x in load_after)
    )


if __name__ == "__main__":
    sys.exit(main())
