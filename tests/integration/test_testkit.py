"""meshsync-testkit: its MeshSync plugin (``meshsync demo``) and its pytest plugin's fixtures."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import nats
import pytest
import yaml
from meshsync_testkit import pytest_plugin
from meshsync_testkit.nats_server import NatsServer
from meshsync_testkit.pytest_plugin import FakeCluster

from tests.integration.test_demo import meshsync


def test_the_fixtures_come_from_the_pytest11_entry_point(request: pytest.FixtureRequest) -> None:
    """pytest loaded the kit by itself (no ``pytest_plugins`` entry names it)."""
    assert request.config.pluginmanager.get_plugin("meshsync_testkit") is pytest_plugin


def test_demo_is_the_test_kits_command_not_the_k8s_plugins(tmp_path: Path) -> None:
    result = meshsync("plugins", "list", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    plugins = {info["name"]: info for info in json.loads(result.stdout)}
    assert plugins["testkit"]["package"] == "meshsync-testkit"
    assert plugins["testkit"]["status"] == "loaded"
    assert plugins["testkit"]["hooks"] == ["meshsync_commands"]
    assert "meshsync_commands" not in plugins["k8s"]["hooks"]
    assert "demo" in meshsync("--help", cwd=tmp_path).stdout


def test_fake_cluster_serves_the_demo_cluster_to_meshsync_run(
    fake_cluster: FakeCluster, tmp_path: Path
) -> None:
    assert fake_cluster.url == fake_cluster.server.url
    config = yaml.safe_load(fake_cluster.kubeconfig.read_text())
    assert config["current-context"] == "fake"
    assert config["clusters"][0]["cluster"]["server"] == fake_cluster.url
    names = {d["metadata"]["name"] for d in fake_cluster.server.objects("deployments", "apps")}
    assert "web" in names
    snapshot = tmp_path / "snapshot.yaml"
    result = meshsync(
        "run", "--once", "--kubeconfig", str(fake_cluster.kubeconfig), "--output", "file",
        "--output-file", str(snapshot), "--file-progress", "off", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    kinds = {
        (d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(snapshot.read_text()) if d
    }
    assert ("Deployment", "web") in kinds and ("Namespace", "kube-system") in kinds


async def test_nats_server_is_a_running_nats_server(nats_server: NatsServer) -> None:
    assert nats_server.running and not nats_server.jetstream
    nc = await nats.connect(nats_server.url)
    try:
        sub = await nc.subscribe("testkit.hello")
        await nc.publish("testkit.hello", b"hi")
        message = await sub.next_msg(timeout=5)
        assert message.data == b"hi"
    finally:
        await nc.close()


def test_nats_server_factory_starts_servers(nats_server_factory: Callable[..., NatsServer]) -> None:
    server = nats_server_factory(jetstream=True)
    assert server.running and server.jetstream
