"""The Helm chart, rendered and linted with the real Helm SDK (helm-python-sdk, no helm binary)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from meshsync_core.cli import build_run_command
from meshsync_core.options import parse_params
from meshsync_core.plugin_manager import PluginRegistry
from meshsync_core.tools import require_tool

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "meshsync"


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    chart = helm.Chart.load(str(CHART))
    rendered = chart.render(values or {}, name="meshsync", namespace="meshery", is_install=True)
    docs = []
    for text in rendered.values():
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


def deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return next(doc for doc in docs if doc["kind"] == "Deployment")


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return deployment(docs)["spec"]["template"]["spec"]["containers"][0]


def test_chart_lints_clean() -> None:
    report = helm.lint(str(CHART), strict=True)
    assert report["errors"] == []
    assert not [m for m in report["messages"] if m["severity"] >= 2], report["messages"]


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"output": "file", "namespaces": ["shop", "web"], "clusterScoped": False},
        {"broker": {"existingSecret": "meshsync-broker"}, "watchResources": ["pods", "-secrets"]},
        {"replicaCount": 2, "publishedIndex": {"replicas": 3}},
        {"publishedIndex": {"enabled": False}},
    ],
    ids=["defaults", "file-mode", "broker-secret", "two-replicas-index-3", "no-index"],
)
def test_rendered_objects_validate_strictly_and_args_are_real_flags(values: dict) -> None:
    docs = render(values)
    for doc in docs:
        kubernetes_validate.validate(doc, "1.33.0", strict=True)
    args = container(docs)["args"]
    assert args[0] == "run"
    manager = PluginRegistry.from_entry_points()
    parsed = parse_params(build_run_command(manager), args[1:], {})  # raises on unknown flags
    assert parsed["output"] == (values.get("output", "nats"),)
    assert parsed["log_format"] == "json"
    index = values.get("publishedIndex", {})
    assert parsed["published_index"] is index.get("enabled", True)
    if parsed["published_index"] and parsed["output"] == ("nats",):
        assert parsed["nats_index_bucket"] == "meshsync-index"
        assert parsed["nats_index_replicas"] == index.get("replicas", 1)
    if values.get("replicaCount", 1) > 1:
        assert parsed["leader_elect"] is True
    if "namespaces" in values:
        assert parsed["namespaces"] == ("shop,web",)
        assert parsed["cluster_scoped"] is False


def test_defaults_match_the_plain_manifests() -> None:
    plain = [
        doc
        for doc in yaml.safe_load_all(
            (CHART.parents[1] / "kubernetes" / "meshsync.yaml").read_text()
        )
        if doc and doc["kind"] != "Namespace"  # the chart installs into the release namespace
    ]
    docs = render()
    assert sorted(d["kind"] for d in docs) == sorted(d["kind"] for d in plain)
    chart_container, plain_container = container(docs), container(plain)
    for key in ("livenessProbe", "readinessProbe", "securityContext", "resources", "ports"):
        assert chart_container[key] == plain_container[key], key
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    plain_role = next(d for d in plain if d["kind"] == "ClusterRole")
    assert role["rules"] == plain_role["rules"]


def test_broker_url_from_a_secret_and_no_broker_in_file_mode() -> None:
    docs = render({"broker": {"existingSecret": "meshsync-broker", "key": "url"}})
    env = container(docs)["env"]
    assert env == [
        {
            "name": "BROKER_URL",
            "valueFrom": {"secretKeyRef": {"name": "meshsync-broker", "key": "url"}},
        }
    ]
    assert "ConfigMap" not in {d["kind"] for d in docs}
    file_mode = container(render({"output": "file"}))
    assert "env" not in file_mode and "envFrom" not in file_mode


def test_an_unknown_output_fails_with_a_clear_message() -> None:
    with pytest.raises(helm.HelmError, match="output must be nats or file"):
        render({"output": "carrier-pigeon"})


def test_rendered_chart_applies_to_the_fake_api_server(tmp_path: Path) -> None:
    from meshsync_testkit.fake_apiserver import FakeApiServer

    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(yaml.safe_dump_all(render()))
    kubectl = require_tool("kubectl")
    with FakeApiServer.in_thread() as server:
        server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "meshery"}})
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        result = subprocess.run(
            [kubectl, "--kubeconfig", str(kubeconfig), "apply", "-f", str(manifest)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert server.get(deployment(render())) is not None
