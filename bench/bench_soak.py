"""Steady state of MeshSync: first event, idle CPU, CPU per change, latency and memory over a soak.

    python bench/bench_soak.py [--objects 100000] [--rate 500] [--minutes 30] [--interval 30]
                               [--plot docs/img/soak.png] [--json bench/results/soak.json]
                               [--idle 60] [--bookmark-interval 60]

For the 1M-object latency target: ``--objects 1000000 --rate 1000 --minutes 2`` (the fake
server takes 1.5-2 minutes to seed and, before its exact-size storage, about 12.6 GB of RSS).

One run of the real engine (k8s source -> NATS sink, ``--resources pods,configmaps``, as in
``bench_end_to_end.bench_nats``) against the fake API server holding ``--objects`` bulk Pods and
ConfigMaps plus a pool of churn ConfigMaps, with a real ``nats-server`` and a nats-py subscriber.
Every part runs in its own process: the fake API server (which also generates the churn), the
MeshSync engine, the subscriber, nats-server; this script only orchestrates and reads ``/proc``.

Measured, in this order:

1. time from the engine's start to the first message at the subscriber, and the initial sync
   (engine start -> ``synced``, and -> the last message of the sync at the subscriber);
2. idle: after the sync and the one-off memory release (1 s after it), 60 s with no changes:
   the MeshSync process's CPU seconds and context switches (all its threads; voluntary switches
   are about its wakeups), the asyncio timers it has scheduled, a ``py-spy dump``, and for up to
   20 s more every callback the event loop runs (asyncio debug mode, logged afterwards). The fake
   server sends watch bookmarks every ``--bookmark-interval`` seconds (60, about what
   kube-apiserver does; the fake's own default of 1 s would wake each watch every second);
3. the soak: ``--rate`` changes/s for ``--minutes``, every change stamped with its send time
   (annotation ``SENT_AT``) and a sequence number. The churn keeps a pool of ConfigMaps the size
   of which stays flat while its objects come and go: of every 4 changes, one creates a new
   ConfigMap, one updates a live one, and two retire the oldest (an update that stamps it, and
   right after it the delete, whose event carries that stamp). Every ``--interval`` seconds:
   latency p50/p99/max of the changes received in the interval (send -> receipt at the
   subscriber), how many, and the MeshSync process's RSS and CPU %;
4. CPU per change delivered, per process; every sequence number is checked at the end: lost
   and duplicated changes are reported.

The table and a summary are printed; ``--json`` saves everything and ``--plot`` draws latency
percentiles and RSS over time, naming the commit, machine and date.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_cluster import CHURN_NAMESPACE, SENT_AT, ChildProcess, machine_description, seeded_server

#: Annotation with the change's sequence number (0, 1, 2, ...), to find lost changes.
SEQ = "bench.meshsync.io/seq"
SUBJECT = "meshery.meshsync.core"
RESOURCES = ["pods", "configmaps"]
#: ConfigMaps in the churn pool (tracked the whole time; each lives pool / (rate / 4) seconds).
POOL = 1000
REPO = Path(__file__).resolve().parent.parent


# --- the fake API server and the churn, in one child process ---------------------------------


def _configmap(name: str, annotations: dict[str, str] | None, seq: int) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": CHURN_NAMESPACE}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"seq": str(seq)}}


def _serve(conn: Connection, objects: int, kubeconfig: str, bookmark_interval: float) -> None:
    async def main() -> None:
        server = await seeded_server(objects, bookmark_interval=bookmark_interval)
        pool: collections.deque[str] = collections.deque(f"pool-{i:07d}" for i in range(POOL))
        server.load(_configmap(name, None, -1) for name in pool)
        server.write_kubeconfig(kubeconfig)
        conn.send(("ready", server.url))
        loop = asyncio.get_running_loop()
        while True:
            command, args = await loop.run_in_executor(None, conn.recv)
            if command == "stop":
                break
            if command == "churn":
                sent = await _churn(server, pool, *args)
                conn.send(("done", sent))
        await server.stop()

    asyncio.run(main())


async def _churn(server: Any, pool: collections.deque[str], rate: float, seconds: float) -> int:
    """Changes at ``rate``/s for ``seconds``; returns how many were made (seq 0 .. n-1).

    Of every 4: create a ConfigMap; update the newest-but-half one; stamp the oldest, then delete
    it (its DELETED event carries the stamp's seq: the subscriber counts it as seq + 1)."""
    start = time.perf_counter()
    end = start + seconds
    seq = 0
    created = 0
    while True:
        due = start + seq / rate
        if due >= end:
            return seq
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing the load generator, not synchronisation
        step = seq % 4
        stamp = {SENT_AT: repr(time.time()), SEQ: str(seq)}
        if step == 0:
            name = f"soak-{created:08d}"
            created += 1
            server.create(_configmap(name, stamp, seq))
            pool.append(name)
            seq += 1
        elif step == 1:
            server.apply(_configmap(pool[len(pool) // 2], stamp, seq))
            seq += 1
        else:  # step 2 and 3: retire the oldest, back to back
            name = pool.popleft()
            server.apply(_configmap(name, stamp, seq))
            server.delete(_configmap(name, None, seq))
            seq += 2


class SoakCluster(ChildProcess):
    """The fake API server (and churn generator) in a child process."""

    def __init__(self, objects: int, tmp: Path, bookmark_interval: float) -> None:
        self.kubeconfig = str(tmp / "kubeconfig")
        super().__init__(_serve, objects, self.kubeconfig, bookmark_interval)
        status, self.url = self.recv(1800)  # seeding a million objects takes minutes
        assert status == "ready"

    def churn(self, rate: float, seconds: float) -> None:
        self.conn.send(("churn", (rate, seconds)))

    def churn_done(self) -> int | None:
        """The number of changes made, once the churn has finished; else None."""
        if not self.conn.poll():
            return None
        status, sent = self.conn.recv()
        assert status == "done"
        return int(sent)


# --- the subscriber -------------------------------------------------------------------------


def _subscribe(conn: Connection, url: str) -> None:
    import nats
    import orjson

    async def main() -> None:
        nc = await nats.connect(url, pending_size=1024 * 1024 * 1024)
        state: dict[str, Any] = {"count": 0, "first_at": 0.0, "last_at": 0.0, "churn": False}
        seen = bytearray()
        dups = [0]
        interval: list[float] = []  # latencies (s) received since the last "interval"
        other = [0]  # churn-phase messages without a seq (e.g. re-sent objects)

        def mark(seq: int) -> None:
            if seq >= len(seen):
                seen.extend(bytes(max(seq + 1 - len(seen), 65536)))
            if seen[seq]:
                dups[0] += 1
            seen[seq] = 1

        async def on_message(msg: Any) -> None:
            now = time.time()
            state["count"] += 1
            state["last_at"] = now
            if not state["first_at"]:
                state["first_at"] = now
            if not state["churn"]:
                return
            data = orjson.loads(msg.data)
            notes = (data.get("Object") or {}).get("metadata", {}).get("annotations") or []
            sent_at = seq = None
            for note in notes:
                if note.get("key") == SENT_AT:
                    sent_at = float(note["value"])
                elif note.get("key") == SEQ:
                    seq = int(note["value"])
            if seq is None or sent_at is None:
                other[0] += 1
                return
            mark(seq + 1 if data.get("EventType") == "DELETED" else seq)
            interval.append(now - sent_at)

        await nc.subscribe(SUBJECT, cb=on_message, pending_msgs_limit=-1, pending_bytes_limit=-1)
        await nc.flush()
        conn.send("ready")
        loop = asyncio.get_running_loop()
        while True:
            command, arg = await loop.run_in_executor(None, conn.recv)
            if command == "wait":  # until `arg` messages arrived: (first, last) wall times
                while state["count"] < arg:
                    await asyncio.sleep(0.01)  # polling a counter in this process, bounded below
                conn.send((state["first_at"], state["last_at"]))
            elif command == "churn":  # from now on, every message is a change of the churn
                state["churn"] = True
                conn.send("ok")
            elif command == "interval":
                conn.send(list(interval))
                interval.clear()
            elif command == "check":  # sequence numbers 0 .. arg-1: which are missing
                missing = [i for i in range(arg) if i >= len(seen) or not seen[i]]
                conn.send({"missing": missing, "duplicates": dups[0], "unstamped": other[0]})
            elif command == "stop":
                break
        await nc.close()

    asyncio.run(main())


class Subscriber(ChildProcess):
    def __init__(self, url: str) -> None:
        super().__init__(_subscribe, url)
        assert self.recv() == "ready"

    def ask(self, command: Any, arg: object = None, timeout: float = 900) -> Any:
        return super().ask((command, arg), timeout)


# --- MeshSync, in its own process -----------------------------------------------------------


def _meshsync(conn: Connection, kubeconfig: str, nats_url: str) -> None:
    from meshsync_core.api import build_engine, resolve_options
    from meshsync_core.plugin_manager import PluginRegistry

    async def main() -> None:
        options = {
            "kubeconfig": kubeconfig,
            "resources": RESOURCES,
            "broker_url": nats_url,
            "log_level": "warning",
            "output": ["nats"],
        }
        manager = PluginRegistry.from_entry_points()
        engine = build_engine(manager, resolve_options(manager, options))
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, conn.recv) == "start"
        started = time.time()
        run = asyncio.create_task(engine.run())
        await engine.synced.wait()
        conn.send(("synced", started, time.time(), sum(engine.stats.emitted.values())))
        while (command := await loop.run_in_executor(None, conn.recv)) != "stop":
            if command == "timers":  # what the event loop will wake up for next
                now = loop.time()
                timers = sorted(
                    (h.when() - now, repr(h))
                    for h in loop._scheduled  # type: ignore[attr-defined]
                    if not h.cancelled()
                )
                tasks = sorted(repr(t.get_coro()) for t in asyncio.all_tasks())
                conn.send({"timers": timers, "tasks": tasks})
            elif command[0] == "probe":  # every callback the loop runs for a while (debug mode)
                conn.send(await loop.run_in_executor(None, _probe, loop, command[1]))
        engine.stop()
        result = await run
        conn.send(("stopped", result.exit_code, sum(engine.stats.emitted.values())))

    asyncio.run(main())


def _probe(loop: asyncio.AbstractEventLoop, seconds: float) -> dict[str, int]:
    """Run the loop in debug mode with ``slow_callback_duration`` 0 for ``seconds``: asyncio
    then logs every callback it runs, which names what wakes the process up."""
    import logging
    import re

    seen: collections.Counter[str] = collections.Counter()

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            text = record.getMessage()
            if text.startswith("Executing"):
                text = re.sub(r" took [0-9.]+ seconds", "", text)
                text = re.sub(r"0x[0-9a-f]+|when=[0-9.]+", "", text)
                seen[text] += 1

    handler = Collect()
    log = logging.getLogger("asyncio")
    log.addHandler(handler)
    level, log.level = log.level, logging.WARNING

    def debug(on: bool) -> None:
        loop.slow_callback_duration = 0.0 if on else 0.1
        loop.set_debug(on)

    loop.call_soon_threadsafe(debug, True)
    time.sleep(seconds)  # this thread only waits; the event loop runs on
    loop.call_soon_threadsafe(debug, False)
    time.sleep(0.1)
    log.removeHandler(handler)
    log.level = level
    return dict(seen.most_common())


class MeshSyncProcess(ChildProcess):
    def __init__(self, kubeconfig: str, nats_url: str) -> None:
        super().__init__(_meshsync, kubeconfig, nats_url, daemon=False)

    def start(self) -> None:
        self.conn.send("start")

    def timers(self) -> dict[str, Any]:
        return self.ask("timers", 30)  # type: ignore[no-any-return]

    def probe(self, seconds: float) -> dict[str, int]:
        return self.ask(("probe", seconds), seconds + 30)  # type: ignore[no-any-return]

    def finish(self) -> tuple[int, int]:
        """Stop the engine: its exit code and how many events it emitted."""
        _, code, emitted = self.ask("stop", 60)
        self.process.join(timeout=30)
        return code, emitted


# --- /proc ------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def machine_ticks() -> tuple[int, int]:
    """(all, steal) CPU ticks of the whole machine so far: steal is time the hypervisor gave
    to someone else while this VM wanted to run (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields[:8]), fields[7]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def thread_switches(pid: int) -> dict[str, tuple[int, int]]:
    """Per thread (``tid name``): (voluntary, involuntary) context switches so far."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            vol = invol = 0
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    vol = int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    invol = int(line.split()[1])
            out[f"{task.name} {name}"] = (vol, invol)
        except OSError:
            continue  # the thread ended
    return out


def py_spy_dump(pid: int) -> str:
    try:
        done = subprocess.run(
            ["py-spy", "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"py-spy not available: {err}"
    return done.stdout or done.stderr


def percentiles(latencies: list[float]) -> tuple[float, float, float]:
    """p50, p99, max in ms (p99 = max below 100 samples)."""
    if not latencies:
        return (float("nan"),) * 3  # type: ignore[return-value]
    ordered = sorted(latencies)
    p50 = ordered[len(ordered) // 2]
    p99 = statistics.quantiles(ordered, n=100)[98] if len(ordered) >= 100 else ordered[-1]
    return p50 * 1000, p99 * 1000, ordered[-1] * 1000


def commit() -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    # Changed tracked files, or this script not committed yet.
    dirty = (
        subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        or subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", __file__],
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    return done.stdout.strip() + ("+dirty" if dirty else "")


# --- the run ----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    from meshsync_testkit.nats_server import NatsServer

    result: dict[str, Any] = {
        "objects": args.objects,
        "pool": POOL,
        "rate": args.rate,
        "minutes": args.minutes,
        "interval": args.interval,
        "bookmark_interval": args.bookmark_interval,
        "commit": commit(),
        "machine": machine_description(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average_start": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory() as tmp_name, NatsServer(Path(tmp_name)) as nats_server:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        print(f"seeding the fake API server with {args.objects:,} objects ...", flush=True)
        cluster = SoakCluster(args.objects, tmp, args.bookmark_interval)
        result["seed_seconds"] = time.perf_counter() - t0
        sub = Subscriber(nats_server.url)
        meshsync = MeshSyncProcess(cluster.kubeconfig, nats_server.url)
        try:
            assert nats_server.process is not None
            pids = {
                "meshsync": meshsync.pid,
                "fake API server": cluster.pid,
                "nats-server": nats_server.process.pid,
                "subscriber": sub.pid,
            }
            time.sleep(1)  # let the MeshSync process finish importing before the clock starts
            cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
            meshsync.start()
            _, started, synced_at, emitted = meshsync.recv(1800)
            first_at, last_at = sub.ask("wait", emitted)
            cpu_sync = {name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
            result["sync"] = {
                "emitted": emitted,
                "first_event_s": first_at - started,
                "synced_s": synced_at - started,
                "to_subscriber_s": last_at - started,
                "cpu_s": cpu_sync,
                "rss_mib": rss_mib(meshsync.pid),
            }
            print(
                f"initial sync: {emitted:,} objects, first event at the subscriber after "
                f"{(first_at - started) * 1000:.0f} ms, synced after {synced_at - started:.2f} s,"
                f" last message after {last_at - started:.2f} s",
                flush=True,
            )

            # Idle: after the one-off memory release (1 s after the sync), nothing changes.
            time.sleep(max(0.0, synced_at + 3.0 - time.time()))
            result["idle"] = idle(pids, meshsync, args.idle)

            # The soak.
            sub.ask("churn")
            seconds = args.minutes * 60
            cluster.churn(args.rate, seconds)
            result["intervals"] = soak(args, pids, cluster, sub, seconds, result)
            code, emitted_total = meshsync.finish()
            result["exit_code"] = code
            result["emitted_total"] = emitted_total
        finally:
            sub.stop()
            cluster.stop()
    result["load_average_end"] = os.getloadavg()
    return result


def idle(pids: dict[str, int], meshsync: MeshSyncProcess, seconds: float) -> dict[str, Any]:
    pid = pids["meshsync"]
    print(f"idle: {seconds:.0f} s with no changes ...", flush=True)
    cpu0 = {name: cpu_seconds(p) for name, p in pids.items()}
    sw0 = thread_switches(pid)
    time.sleep(seconds)
    cpu = {name: cpu_seconds(p) - cpu0[name] for name, p in pids.items()}
    sw1 = thread_switches(pid)
    threads = {
        tid: (sw1[tid][0] - sw0.get(tid, (0, 0))[0], sw1[tid][1] - sw0.get(tid, (0, 0))[1])
        for tid in sw1
    }
    voluntary = sum(v for v, _ in threads.values())
    involuntary = sum(i for _, i in threads.values())
    out = {
        "seconds": seconds,
        "cpu_s": cpu,
        "cpu_percent": cpu["meshsync"] / seconds * 100,
        "voluntary_switches_per_s": voluntary / seconds,
        "involuntary_switches_per_s": involuntary / seconds,
        "threads": threads,
        "rss_mib": rss_mib(pid),
    }
    # After the measurement, so that neither disturbs it: what the process would wake up for.
    out["loop"] = meshsync.timers()
    out["py_spy_dump"] = py_spy_dump(pid)
    probe = min(seconds, 20.0)
    out["probe_seconds"] = probe
    out["probe_callbacks"] = meshsync.probe(probe)
    return out


def soak(
    args: argparse.Namespace,
    pids: dict[str, int],
    cluster: SoakCluster,
    sub: Subscriber,
    seconds: float,
    result: dict[str, Any],
) -> list[dict[str, Any]]:
    pid = pids["meshsync"]
    print(
        f"\nsoak: {args.rate:,.0f} changes/s for {args.minutes:g} min "
        f"({args.objects:,} bulk objects + a pool of {POOL:,} churn ConfigMaps tracked)"
    )
    header = f"{'t (s)':>7} {'changes':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>8} "
    print(header + f"{'RSS MiB':>8} {'CPU %':>6} {'steal %':>7}", flush=True)
    intervals: list[dict[str, Any]] = []
    start = time.time()
    cpu_start = {name: cpu_seconds(p) for name, p in pids.items()}
    split_start = cpu_split(pid)
    last_cpu, last_t = cpu_start["meshsync"], start
    last_ticks = machine_ticks()
    sent: int | None = None
    everything: list[float] = []
    k = 0
    while sent is None:
        k += 1
        boundary = start + k * args.interval
        if boundary >= start + seconds - 1:  # the last row: until the churn is over
            while (sent := cluster.churn_done()) is None:
                time.sleep(0.2)
            time.sleep(2.0)  # the changes still on their way
        else:
            time.sleep(max(0.0, boundary - time.time()))
        latencies = sub.ask("interval")
        everything.extend(latencies)
        now = time.time()
        cpu = cpu_seconds(pid)
        ticks = machine_ticks()
        p50, p99, worst = percentiles(latencies)
        row = {
            "t": now - start,
            "changes": len(latencies),
            "p50_ms": p50,
            "p99_ms": p99,
            "max_ms": worst,
            "rss_mib": rss_mib(pid),
            "cpu_percent": (cpu - last_cpu) / (now - last_t) * 100,
            "steal_percent": (ticks[1] - last_ticks[1]) / max(1, ticks[0] - last_ticks[0]) * 100,
        }
        last_cpu, last_t, last_ticks = cpu, now, ticks
        intervals.append(row)
        print(
            f"{row['t']:>7.0f} {row['changes']:>8,} {p50:>7.1f} {p99:>7.1f} {worst:>8.1f} "
            f"{row['rss_mib']:>8.1f} {row['cpu_percent']:>6.1f} {row['steal_percent']:>7.1f}",
            flush=True,
        )
    cpu_used = {name: cpu_seconds(p) - cpu_start[name] for name, p in pids.items()}
    split = cpu_split(pid)
    user, system = split[0] - split_start[0], split[1] - split_start[1]
    check = sub.ask("check", sent)
    result["churn"] = {
        "sent": sent,
        "received": sum(r["changes"] for r in intervals),
        "missing": len(check["missing"]),
        "missing_first": check["missing"][:20],
        "duplicates": check["duplicates"],
        "unstamped": check["unstamped"],
        "cpu_s": cpu_used,
        "cpu_us_per_change": {
            name: cpu / max(1, sent or 0) * 1e6 for name, cpu in cpu_used.items()
        },
        "meshsync_user_s": user,
        "meshsync_system_s": system,
        "latency_ms_whole_soak": dict(
            zip(("p50", "p99", "max"), percentiles(everything), strict=True)
        ),
    }
    return intervals


# --- summary, JSON, plot ------------------------------------------------------------------------


def summarise(result: dict[str, Any]) -> None:
    intervals = result["intervals"]
    sync, idle_, churn = result["sync"], result["idle"], result["churn"]
    # RSS trend over the soak, from the intervals that had a full interval of churn.
    full = [r for r in intervals if r["changes"] > 0]
    hours = [r["t"] / 3600 for r in full]
    rss = [r["rss_mib"] for r in full]
    slope = statistics.linear_regression(hours, rss).slope if len(full) >= 3 else float("nan")
    half = full[len(full) // 2 :]
    slope_2nd = (
        statistics.linear_regression(
            [r["t"] / 3600 for r in half], [r["rss_mib"] for r in half]
        ).slope
        if len(half) >= 3
        else float("nan")
    )
    steady = full[1:] or full  # the first interval includes the warm-up
    result["summary"] = {
        "first_event_ms": sync["first_event_s"] * 1000,
        "initial_sync_s": sync["synced_s"],
        "initial_sync_to_subscriber_s": sync["to_subscriber_s"],
        "idle_cpu_percent": idle_["cpu_percent"],
        "idle_wakeups_per_s": idle_["voluntary_switches_per_s"],
        "cpu_us_per_change": churn["cpu_us_per_change"]["meshsync"],
        "rss_start_mib": rss[0] if rss else float("nan"),
        "rss_end_mib": rss[-1] if rss else float("nan"),
        "rss_slope_mib_per_hour": slope,
        "rss_slope_second_half_mib_per_hour": slope_2nd,
        "worst_interval_p99_ms": max((r["p99_ms"] for r in steady), default=float("nan")),
        "median_interval_p99_ms": statistics.median(r["p99_ms"] for r in steady)
        if steady
        else float("nan"),
        "max_ms": max((r["max_ms"] for r in full), default=float("nan")),
        "sent": churn["sent"],
        "received": churn["received"],
        "lost": churn["missing"],
        "duplicates": churn["duplicates"],
    }
    s = result["summary"]
    print(f"\nSummary — {result['objects']:,} objects, {result['rate']:,.0f} changes/s, "
          f"{result['minutes']:g} min; {result['machine']}; commit {result['commit']}, "
          f"{result['date']}")  # fmt: skip
    print(
        f"load average at start {result['load_average_start'][0]:.2f}, "
        f"at end {result['load_average_end'][0]:.2f}; fake server seeded in "
        f"{result['seed_seconds']:.0f} s"
    )
    kernel = churn["meshsync_system_s"] / max(
        1e-9, churn["meshsync_user_s"] + churn["meshsync_system_s"]
    )
    kernel *= 100
    rows = [
        ("engine start -> first event at the subscriber", f"{s['first_event_ms']:.0f} ms"),
        (
            "initial sync (engine start -> synced / -> last message)",
            f"{s['initial_sync_s']:.2f} s / {s['initial_sync_to_subscriber_s']:.2f} s "
            f"({sync['emitted'] / s['initial_sync_to_subscriber_s']:,.0f} objects/s)",
        ),
        (
            f"idle CPU over {idle_['seconds']:.0f} s",
            f"{idle_['cpu_s']['meshsync']:.2f} CPU-s = {s['idle_cpu_percent']:.2f} %; "
            f"{idle_['voluntary_switches_per_s']:.2f} wakeups/s "
            f"(+{idle_['involuntary_switches_per_s']:.2f} involuntary/s)",
        ),
        (
            "idle CPU of the others",
            ", ".join(
                f"{name} {cpu:.2f} s" for name, cpu in idle_["cpu_s"].items() if name != "meshsync"
            ),
        ),
        (
            "CPU per change delivered",
            ", ".join(f"{n} {us:.0f} µs" for n, us in churn["cpu_us_per_change"].items())
            + f" (MeshSync: {kernel:.0f} % of it in the kernel)",
        ),
        (
            "RSS at start of soak / end / slope",
            f"{s['rss_start_mib']:.1f} / {s['rss_end_mib']:.1f} MiB; "
            f"{s['rss_slope_mib_per_hour']:+.1f} MiB/hour (least squares; second half "
            f"{s['rss_slope_second_half_mib_per_hour']:+.1f})",
        ),
        (
            "latency p99 per interval: median / worst; max",
            f"{s['median_interval_p99_ms']:.1f} / {s['worst_interval_p99_ms']:.1f} ms; "
            f"{s['max_ms']:.0f} ms",
        ),
        (
            "latency over the whole soak: p50 / p99 / max",
            "{p50:.1f} / {p99:.1f} / {max:.0f} ms".format(**churn["latency_ms_whole_soak"]),
        ),
        (
            "changes sent / received / lost / duplicated",
            f"{s['sent']:,} / {s['received']:,} / {s['lost']:,} / {s['duplicates']:,}",
        ),
    ]
    steal = [r["steal_percent"] for r in intervals if "steal_percent" in r]
    if steal:
        rows.append(
            (
                "CPU steal (hypervisor) per interval: mean / max",
                f"{statistics.mean(steal):.0f} / {max(steal):.0f} % of the machine",
            )
        )
    for label, value in rows:
        print(f"  {label:<58} {value}")
    if churn["missing"]:
        print(f"  first lost sequence numbers: {churn['missing_first']}")
    if churn["unstamped"]:
        print(f"  messages during the churn without a stamp: {churn['unstamped']:,}")
    loop = idle_["loop"]
    print("  idle event loop: timers (in s) " + "; ".join(
        f"{when:.1f} {what}" for when, what in loop["timers"][:8]) or "none")  # fmt: skip
    probe = idle_["probe_callbacks"]
    print(f"  idle: callbacks the event loop ran in {idle_['probe_seconds']:.0f} s (debug probe):")
    for what, n in list(probe.items())[:8]:
        print(f"    {n:>5}  {what[:150]}")
    busy = sorted(idle_["threads"].items(), key=lambda kv: -kv[1][0])[:4]
    print("  idle wakeups per thread (voluntary/involuntary switches in the idle window): "
          + ", ".join(f"{tid} {v}/{i}" for tid, (v, i) in busy))  # fmt: skip


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["intervals"] if r["changes"] > 0]
    minutes = [r["t"] / 60 for r in rows]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    ax1.plot(minutes, [r["p50_ms"] for r in rows], marker=".", label="p50")
    ax1.plot(minutes, [r["p99_ms"] for r in rows], marker=".", label="p99")
    ax1.plot(minutes, [r["max_ms"] for r in rows], marker=".", linestyle=":", label="max")
    ax1.axhline(20, color="grey", linewidth=0.8, linestyle="--", label="p99 target 20 ms")
    if rows and "steal_percent" in rows[0]:
        steal = ax1.twinx()
        steal.bar(
            minutes,
            [r["steal_percent"] for r in rows],
            width=result["interval"] / 60 * 0.8,
            color="lightgrey",
            alpha=0.5,
            zorder=0,
        )
        steal.set_ylim(0, 100)
        steal.set_ylabel("steal % of the VM's CPU (bars)", color="grey", fontsize=8)
        ax1.set_zorder(steal.get_zorder() + 1)
        ax1.patch.set_visible(False)
    ax1.set_yscale("log")
    ax1.set_ylabel(f"change → subscriber latency (ms)\nper {result['interval']:g} s interval")
    ax1.legend(loc="upper left", ncol=4, fontsize=8)
    ax1.grid(True, which="both", alpha=0.3)
    s = result["summary"]
    ax2.plot(minutes, [r["rss_mib"] for r in rows], marker=".", color="tab:green", label="VmRSS")
    if len(rows) >= 3:
        fit = statistics.linear_regression(minutes, [r["rss_mib"] for r in rows])
        ax2.plot(
            minutes,
            [fit.intercept + fit.slope * m for m in minutes],
            color="grey",
            linewidth=0.8,
            linestyle="--",
            label="least-squares fit",
        )
    ax2.legend(loc="upper left", fontsize=8)
    ax2.set_ylabel("MeshSync RSS (MiB)")
    ax2.set_xlabel("minutes into the soak")
    ax2.set_title(f"slope {s['rss_slope_mib_per_hour']:+.1f} MiB/hour (least squares)", fontsize=9)
    ax2.grid(True, alpha=0.3)
    low, high = min(r["rss_mib"] for r in rows), max(r["rss_mib"] for r in rows)
    ax2.set_ylim(low - max(5, (high - low)), high + max(5, (high - low)))
    fig.suptitle(
        f"MeshSync soak: k8s → NATS, {result['objects']:,} objects tracked, "
        f"{result['rate']:,.0f} changes/s for {result['minutes']:g} min",
        fontsize=11,
    )
    fig.text(
        0.01,
        0.005,
        f"commit {result['commit']} · {result['machine']} · {result['date']} · "
        f"bench/bench_soak.py --objects {result['objects']} --rate {result['rate']:g} "
        f"--minutes {result['minutes']:g} --interval {result['interval']:g}",
        fontsize=7,
        color="dimgrey",
    )
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


#: The directories in front of a file name in a py-spy dump or an asyncio debug line.
_DIRECTORIES = re.compile(r"(?<![\w.~-])/(?:[\w.+-]+/)+")


def without_machine_paths(text: str) -> str:
    """``text`` with every absolute directory dropped before a file name (``futures.py:311``):
    the results are committed, and must not name this machine's paths."""
    return _DIRECTORIES.sub("", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=500.0, help="changes per second")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=30.0, help="seconds per table row")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of idle measurement")
    parser.add_argument(
        "--bookmark-interval",
        type=float,
        default=60.0,
        help="seconds between the fake server's watch bookmarks (kube-apiserver: about 60; "
        "the fake server's own default is 1)",
    )
    parser.add_argument("--plot", type=Path, default=REPO / "docs/img/soak.png")
    parser.add_argument("--json", type=Path, default=REPO / "bench/results/soak.json")
    args = parser.parse_args()
    result = run(args)
    summarise(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(without_machine_paths(json.dumps(result, indent=1)) + "\n")
    print(f"json: {args.json}")
    plot(result, args.plot)


if __name__ == "__main__":
    main()
