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


async def seeded_server(objects: int, **options: Any) -> Any:
    """A started fake API server holding ``bulk_objects(objects)`` in the bulk namespaces, and
    the churn namespace (``options`` go to ``FakeApiServer``)."""
    from meshsync_testkit.fake_apiserver import FakeApiServer
    from meshsync_testkit.seed import bulk_namespaces, bulk_objects

    server = FakeApiServer(**options)
    await server.start()
    namespaces = bulk_namespaces()
    namespaces.append(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": CHURN_NAMESPACE}}
    )
    server.load(namespaces)
    server.load(bulk_objects(objects))
    return server


def _serve(conn: Connection, objects: int, kubeconfig: str) -> None:
    async def main() -> None:
        server = await seeded_server(objects)
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


class ChildProcess:
    """A function run in a fresh interpreter ("spawn": its own GIL, its own peak RSS), spoken
    to over a pipe. ``target(conn, *args)`` gets the child's end of the pipe."""

    def __init__(self, target: Any, *args: Any, start: bool = True, daemon: bool = True) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=target, args=(child, *args), daemon=daemon)
        if start:
            self.process.start()

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def recv(self, timeout: float = 300) -> Any:
        """The child's next message, waiting up to ``timeout`` seconds."""
        if not self.conn.poll(timeout):
            raise TimeoutError(f"{type(self).__name__} did not answer within {timeout}s")
        return self.conn.recv()

    def ask(self, message: Any, timeout: float = 300) -> Any:
        """Send ``message``; the child's answer."""
        self.conn.send(message)
        return self.recv(timeout)

    def stop(self, message: Any = ("stop", None), timeout: float = 30) -> None:
        """Ask the child to stop; killed if it has not ended after ``timeout`` seconds."""
        self.conn.send(message)
        self.process.join(timeout=timeout)
        if self.process.is_alive():
            self.process.kill()


class FakeClusterProcess(ChildProcess):
    """Context manager: a fake API server with ``objects`` bulk objects in a child process."""

    def __init__(self, objects: int) -> None:
        self.objects = objects
        self._tmp = tempfile.TemporaryDirectory()
        self.kubeconfig = str(Path(self._tmp.name) / "kubeconfig")
        self.url = ""
        super().__init__(_serve, objects, self.kubeconfig, start=False)

    def __enter__(self) -> FakeClusterProcess:
        self.process.start()
        status, self.url = self.conn.recv()
        assert status == "ready"
        return self

    def churn(self, rate: float, count: int) -> None:
        """Start ``count`` changes at ``rate`` per second; :meth:`wait_churn` waits for the end."""
        self.conn.send(("churn", (rate, count)))

    def wait_churn(self) -> None:
        self.conn.recv()

    def __exit__(self, *exc: object) -> None:
        self.stop()
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
