"""The Helm chart with several replicas: leader election switched on, its flags real, the
Lease RBAC in place, and the rendered objects accepted by a real kube-apiserver."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from meshsync_core.tools import require_tool
from tests.deploy.test_helm_chart import container, deployment, render
from tests.realkube.cluster import ControlPlane


def _kinds(docs: list[dict]) -> dict[str, dict]:
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in docs}


def test_one_replica_elects_no_leader() -> None:
    docs = render()
    assert deployment(docs)["spec"]["replicas"] == 1
    assert "--leader-elect" not in container(docs)["args"]
    assert not any(d["kind"] in ("Role", "RoleBinding") for d in docs)


@pytest.mark.parametrize(
    "values",
    [{"replicaCount": 2}, {"replicaCount": 1, "leaderElection": {"enabled": True}}],
    ids=["two-replicas", "forced"],
)
def test_several_replicas_elect_a_leader(values: dict) -> None:
    docs = render(values)
    args = container(docs)["args"]
    assert deployment(docs)["spec"]["replicas"] == values["replicaCount"]
    at = args.index("--leader-elect")
    assert args[at + 1 : at + 5] == [
        "--leader-elect-lease", "meshsync", "--leader-elect-namespace", "meshery",
    ]  # fmt: skip
    env = {e["name"]: e for e in container(docs)["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert container(docs)["envFrom"]  # the broker URL still comes from the ConfigMap
    objects = _kinds(docs)
    role = objects["Role/meshsync-leader-election"]
    assert role["metadata"]["namespace"] == "meshery"
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "verbs": ["get", "create", "update"]}
    ]  # fmt: skip
    binding = objects["RoleBinding/meshsync-leader-election"]
    assert binding["subjects"][0]["name"] == "meshsync"
    assert binding["roleRef"]["name"] == "meshsync-leader-election"


def test_forced_off_with_two_replicas() -> None:
    docs = render({"replicaCount": 2, "leaderElection": {"enabled": False}})
    assert "--leader-elect" not in container(docs)["args"]


def test_the_flags_are_meshsyncs(tmp_path: Path) -> None:
    """The chart's arguments parse as `meshsync run` arguments (what the container runs)."""
    args = container(render({"replicaCount": 2}))["args"]
    at = args.index("--leader-elect")
    result = subprocess.run(
        [require_tool("meshsync"), "run", *args[at : at + 5], "--help"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "--leader-elect-lease" in result.stdout


def test_rendered_ha_chart_is_accepted_by_a_real_apiserver(
    real_cluster: ControlPlane, tmp_path: Path
) -> None:
    docs = render({"replicaCount": 2})
    manifest = tmp_path / "chart.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    kubeconfig = real_cluster.kubeconfig(tmp_path / "kc")
    real_cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "meshery"}})
    result = subprocess.run(
        [require_tool("kubectl"), "--kubeconfig", str(kubeconfig), "apply", "--server-side",
         "--dry-run=server", "--validate=strict", "-f", str(manifest)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "role.rbac.authorization.k8s.io/meshsync-leader-election serverside-applied" in (
        result.stdout
    )
