"""MeshSync's pytest plugin: fixtures for the tests of MeshSync and of its plugins.

pytest loads it by itself once ``meshsync-testkit`` is installed (entry point ``pytest11``), so
a plugin's tests ask for the fixtures by name, with no ``conftest.py`` entry::

    async def test_my_sink(capture_sink, memory_source):
        await Engine([memory_source], [capture_sink]).run()
        assert capture_sink.names == ["pod-0", "pod-1", "pod-2"]

    async def test_my_source(fake_cluster):
        fake_cluster.server.create({...})        # the FakeApiServer, demo cluster loaded
        run_my_source(kubeconfig=fake_cluster.kubeconfig)

    async def test_publish(nats_server):
        nc = await nats.connect(nats_server.url)

The classes behind them are importable on their own: :mod:`meshsync_core.testing`
(``CaptureSink``, ``MemorySource``, the event factories), :mod:`meshsync_testkit.fake_apiserver`
(``FakeApiServer``), :mod:`meshsync_testkit.seed` and :mod:`meshsync_testkit.nats_server`
(``NatsServer``). The fake server and nats-server are imported only by a test that uses them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from meshsync_core.testing import CaptureSink, MemorySource, make_event

if TYPE_CHECKING:
    from meshsync_testkit.fake_apiserver import FakeApiServer
    from meshsync_testkit.nats_server import NatsServer


@pytest.fixture
def capture_sink() -> CaptureSink:
    """A fresh :class:`~meshsync_core.testing.CaptureSink`."""
    return CaptureSink()


@pytest.fixture
def memory_source() -> MemorySource:
    """A :class:`MemorySource` with three ``ADDED`` Pods: ``pod-0``, ``pod-1``, ``pod-2``."""
    return MemorySource([make_event(f"pod-{i}") for i in range(3)])


@dataclass
class FakeCluster:
    """What the ``fake_cluster`` fixture gives: the running server and a kubeconfig for it."""

    #: The running :class:`~meshsync_testkit.fake_apiserver.FakeApiServer` (its own thread).
    server: FakeApiServer
    #: A kubeconfig file whose current context (``fake``) is that server.
    kubeconfig: Path

    @property
    def url(self) -> str:
        """The server's base URL (``http://127.0.0.1:<port>``)."""
        return self.server.url


@pytest.fixture
def fake_cluster(tmp_path: Path) -> Iterator[FakeCluster]:
    """A running :class:`FakeApiServer` with the demo cluster, and a kubeconfig for it.

    ``fake_cluster.server`` is the :class:`~meshsync_testkit.fake_apiserver.FakeApiServer`,
    loaded with :func:`~meshsync_testkit.seed.demo_cluster`; ``fake_cluster.kubeconfig`` is the
    path of a kubeconfig whose current context (``fake``) is that server. The server runs in its
    own thread, so sync and async tests alike can use it (and subprocesses through the
    kubeconfig); it is stopped after the test.
    """
    from meshsync_testkit.fake_apiserver import FakeApiServer
    from meshsync_testkit.seed import demo_cluster

    with FakeApiServer.in_thread() as server:
        server.load(demo_cluster())
        kubeconfig = server.write_kubeconfig(tmp_path / "fake-cluster-kubeconfig", context="fake")
        yield FakeCluster(server=server, kubeconfig=Path(kubeconfig))


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A plain nats-server on a free port, stopped after the test."""
    from meshsync_testkit.nats_server import NatsServer

    with NatsServer(tmp_path / "nats") as server:
        yield server


@pytest.fixture
def jetstream_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server with JetStream (file storage in the test's directory)."""
    from meshsync_testkit.nats_server import NatsServer

    with NatsServer(tmp_path / "nats-js", jetstream=True) as server:
        yield server


@pytest.fixture
def nats_server_factory(tmp_path: Path) -> Iterator[Any]:
    """``factory(**NatsServer kwargs)`` -> a started server; all stopped after the test."""
    from meshsync_testkit.nats_server import NatsServer

    servers: list[NatsServer] = []

    def factory(**kwargs: Any) -> NatsServer:
        server = NatsServer(tmp_path / f"nats-{len(servers)}", **kwargs)
        servers.append(server)
        server.start()
        return server

    yield factory
    for server in servers:
        server.stop()
