"""A 3-node JetStream cluster of real ``nats-server`` processes on loopback, for failover tests.

Each node is a :class:`~meshsync_testkit.nats_server.NatsServer` with its own store directory, a
fixed client port, cluster port and monitoring port (so a node restarted after ``kill -9``
rejoins on the same addresses), ``server_name`` ``n1``..``n3`` and routes to the other two::

    cluster = NatsCluster(tmp_path / "cluster")
    cluster.start()                         # returns once the meta leader is elected
    await cluster.wait_stream_leader(nc, "MESHSYNC")
    cluster.kill("n2")                      # SIGKILL: a crash
    cluster.restart("n2")

Every wait is bounded by a deadline and asks the servers (the ``/jsz`` monitoring endpoint, or
the JetStream API) instead of sleeping for a guessed time.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats.errors
import nats.js.errors
from meshsync_testkit.nats_server import NatsServer, free_port
from nats.aio.client import Client

CLUSTER_NAME = "meshsync-test"


class ClusterNode:
    """One node: its NatsServer plus the ports it keeps across restarts."""

    def __init__(self, name: str, workdir: Path, port: int, cluster_port: int, http_port: int):
        self.name = name
        self.port = port
        self.cluster_port = cluster_port
        self.http_port = http_port
        self.workdir = workdir
        self.server: NatsServer | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def route(self) -> str:
        return f"nats://127.0.0.1:{self.cluster_port}"

    def configure(self, routes: list[str]) -> None:
        extra = (
            f"server_name: {self.name}\n"
            f"http: 127.0.0.1:{self.http_port}\n"
            "cluster {\n"
            f"  name: {CLUSTER_NAME}\n"
            f"  listen: 127.0.0.1:{self.cluster_port}\n"
            f"  routes: [{', '.join(routes)}]\n"
            "}\n"
        )
        self.server = NatsServer(self.workdir, jetstream=True, port=self.port, extra_config=extra)

    @property
    def running(self) -> bool:
        return self.server is not None and self.server.running

    def monitor(self, path: str, timeout: float = 1.0) -> dict[str, Any] | None:
        """A monitoring endpoint's JSON (``/jsz``), or None while the node cannot answer."""
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.http_port}{path}", timeout=timeout
            ) as response:
                return json.loads(response.read())
        except (OSError, urllib.error.URLError, ValueError):
            return None


class NatsCluster:
    """Three JetStream nodes routed to each other; ``urls`` is the comma-separated client list."""

    def __init__(self, workdir: Path, size: int = 3, start_timeout: float = 30.0) -> None:
        self.workdir = Path(workdir)
        self.start_timeout = start_timeout
        self.nodes: dict[str, ClusterNode] = {}
        for index in range(1, size + 1):
            name = f"n{index}"
            self.nodes[name] = ClusterNode(
                name, self.workdir / name, free_port(), free_port(), free_port()
            )
        for node in self.nodes.values():
            node.configure([other.route for other in self.nodes.values() if other is not node])

    @property
    def urls(self) -> str:
        """Every node's client URL, comma-separated, as ``BROKER_URL`` takes them."""
        return ",".join(node.url for node in self.nodes.values())

    def node_at(self, url: str) -> ClusterNode:
        """The node a client URL (``nats://127.0.0.1:<port>``) belongs to."""
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        return next(node for node in self.nodes.values() if node.port == port)

    def start(self) -> None:
        """Start every node, then wait until they see each other and a meta leader is elected."""
        for node in self.nodes.values():
            assert node.server is not None
            node.server.start()
        self.wait_meta_leader()

    def stop(self) -> None:
        for node in self.nodes.values():
            if node.server is not None:
                node.server.stop()

    def kill(self, name: str) -> None:
        """``kill -9`` one node and wait for the process to be gone."""
        server = self.nodes[name].server
        assert server is not None
        server.stop(signal.SIGKILL)

    def restart(self, name: str) -> None:
        """Start a stopped node again on the same ports and store (it rejoins the cluster)."""
        server = self.nodes[name].server
        assert server is not None
        server.start()

    def _wait(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                logs = "\n".join(
                    f"--- {n.name}\n{n.server.read_log()[-1500:]}"
                    for n in self.nodes.values()
                    if n.server is not None
                )
                raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{logs}")
            time.sleep(0.05)  # polling other processes' state, bounded by the deadline

    def meta_leader(self) -> str | None:
        """The meta leader every running node agrees on, once all of them have it."""
        leaders = set()
        for node in self.nodes.values():
            if not node.running:
                continue
            jsz = node.monitor("/jsz")
            meta = (jsz or {}).get("meta_cluster") or {}
            leader = meta.get("leader")
            if not leader or meta.get("cluster_size") != len(self.nodes):
                return None
            leaders.add(leader)
        return leaders.pop() if len(leaders) == 1 else None

    def wait_meta_leader(self, timeout: float | None = None) -> str:
        return self._wait(
            self.meta_leader, timeout or self.start_timeout, "a JetStream meta leader"
        )


async def stream_cluster(nc: Client, stream: str) -> Any:
    """The stream's cluster info (``leader``, ``replicas``), or None while it has no leader."""
    try:
        info = await nc.jsm().stream_info(stream)
    except (nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError):
        return None
    return info.cluster


async def wait_stream_leader(
    nc: Client,
    stream: str,
    *,
    not_on: str | None = None,
    current: int = 0,
    timeout: float = 30.0,
) -> str:
    """Wait until the stream has a leader (other than ``not_on``) with at least ``current``
    replicas caught up, and return the leader's server name."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while True:
        cluster = await stream_cluster(nc, stream)
        last = cluster
        if cluster is not None and cluster.leader and cluster.leader != not_on:
            caught_up = sum(1 for peer in cluster.replicas or () if peer.current)
            if caught_up >= current:
                return str(cluster.leader)
        if loop.time() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for a leader of stream {stream} "
                f"(not {not_on}, {current} replica(s) current); last seen: {last}"
            )
        await asyncio.sleep(0.05)  # asking the servers again, bounded by the deadline
