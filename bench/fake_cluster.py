"""A fake cluster in its own process, for benchmarks.

The fake API server runs in a child process so that it has its own interpreter (and, on this
2-core machine, its own core) instead of competing for the GIL with the code being measured —
closer to a real cluster, where the API server is another machine.

    with FakeClusterProcess(objects=100_000) as cluster:
        cluster.url, cluster.kubeconfig
        cluster.churn(rate=1000, count=5000)    # ConfigMap updates stamped with their send time
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

#: Annotation the churn stamps on every change: time.time() when the change was made.
SENT_AT = "bench.meshsync.io/sent-at"
CHURN_NAMESPACE = "churn"


def _serve(conn: Connection, objects: int, kubeconfig: str) -> None:
    from meshsync_testkit.fake_apiserver import FakeApiServer
    from meshsync_testkit.seed import bulk_namespaces, bulk_objects

    async def main() -> None:
        server = FakeApiServer()
        await server.start()
        namespaces = bulk_namespaces()
        namespaces.append(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": CHURN_NAMESPACE}}
        )
        server.load(namespaces)
        server.load(bulk_objects(objects))
        server.write_kubeconfig(kubeconfig)
        conn.send(("ready", server.url))
        loop = asyncio.get_running_loop()
        while True:
            command, args = await loop.run_in_executor(None, conn.recv)
            if command == "stop":
                break
            if command == "churn":
                await _churn(server, *args)
                conn.send(("done", None))
        await server.stop()

    asyncio.run(main())


async def _churn(server: Any, rate: float, count: int) -> None:
    """``count`` changes at ``rate``/s: create 100 ConfigMaps, then update them round-robin."""
    names = [f"churn-{i:03d}" for i in range(100)]
    start = time.perf_counter()
    for i in range(count):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing the load generator, not synchronisation
        name = names[i % len(names)]
        obj = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": CHURN_NAMESPACE,
                "annotations": {SENT_AT: repr(time.time())},
            },
            "data": {"seq": str(i)},
        }
        server.apply(obj)


class FakeClusterProcess:
    """Context manager: a fake API server with ``objects`` bulk objects in a child process."""

    def __init__(self, objects: int) -> None:
        self.objects = objects
        self._tmp = tempfile.TemporaryDirectory()
        self.kubeconfig = str(Path(self._tmp.name) / "kubeconfig")
        self.url = ""
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(
            target=_serve, args=(child, objects, self.kubeconfig), daemon=True
        )

    @property
    def pid(self) -> int:
        assert self._process.pid is not None
        return self._process.pid

    def __enter__(self) -> FakeClusterProcess:
        self._process.start()
        status, self.url = self._conn.recv()
        assert status == "ready"
        return self

    def churn(self, rate: float, count: int) -> None:
        """Start ``count`` changes at ``rate`` per second; :meth:`wait_churn` waits for the end."""
        self._conn.send(("churn", (rate, count)))

    def wait_churn(self) -> None:
        self._conn.recv()

    def __exit__(self, *exc: object) -> None:
        self._conn.send(("stop", None))
        self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.kill()
        self._tmp.cleanup()


def machine_description() -> str:
    """One line about the machine, for the result tables."""
    import os
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
