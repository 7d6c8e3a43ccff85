"""The container image recipe and the Kubernetes manifests: linted and schema-validated."""

from __future__ import annotations

import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from meshsync_core.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes" / "meshsync.yaml"
K8S_VERSION = "1.33.0"


def documents() -> list[dict]:
    return [doc for doc in yaml.safe_load_all(MANIFESTS.read_text()) if doc]


def by_kind(kind: str) -> dict:
    return next(doc for doc in documents() if doc["kind"] == kind)


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [require_tool("hadolint"), "--failure-threshold", "warning", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_multi_stage_slim_non_root_with_runtime_plugins_only() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    froms = [line for line in instructions if line.startswith("FROM ")]
    assert len(froms) == 2 and all("-slim" in line for line in froms)
    user = [line for line in instructions if line.startswith("USER ")]
    assert user and user[-1] not in {"USER root", "USER 0"}
    text = "\n".join(instructions)
    assert "test" not in text.lower().replace("--no-cache", "")
    for plugin in ("meshsync_k8s", "meshsync_nats", "meshsync_file"):
        assert plugin in text
    assert "EXPOSE 11000" in text


@pytest.mark.parametrize("index", range(len(documents())))
def test_every_manifest_validates_strictly(index: int) -> None:
    doc = documents()[index]
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_rbac_is_read_only_and_covers_crds_and_the_meshsync_resource() -> None:
    role = by_kind("ClusterRole")
    verbs = {verb for rule in role["rules"] for verb in rule["verbs"]}
    assert verbs == {"get", "list", "watch"}
    groups = {group for rule in role["rules"] for group in rule["apiGroups"]}
    assert {"apiextensions.k8s.io", "meshery.io", "", "apps"} <= groups
    binding = by_kind("ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"][0]["name"] == by_kind("ServiceAccount")["metadata"]["name"]


def test_deployment_probes_security_and_broker_configuration() -> None:
    deployment = by_kind("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["ports"][0]["containerPort"] == 11000
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["resources"]["requests"] and container["resources"]["limits"]
    config_map = by_kind("ConfigMap")
    assert container["envFrom"][0]["configMapRef"]["name"] == config_map["metadata"]["name"]
    assert config_map["data"]["BROKER_URL"].startswith("nats://")
    assert pod["serviceAccountName"] == by_kind("ServiceAccount")["metadata"]["name"]


def test_manifests_apply_to_the_fake_api_server_with_kubectl(tmp_path: Path) -> None:
    from meshsync_testkit.fake_apiserver import FakeApiServer

    kubectl = require_tool("kubectl")
    with FakeApiServer.in_thread() as server:
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        result = subprocess.run(
            [kubectl, "--kubeconfig", str(kubeconfig), "apply", "-f", str(MANIFESTS)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        for doc in documents():
            kind, name = doc["kind"].lower(), doc["metadata"]["name"]
            assert f"{kind}/{name} created" in result.stdout or kind in result.stdout
            stored = server.get(doc)
            assert stored is not None, f"{kind}/{name} was not stored"
        deployment = server.get(by_kind("Deployment"))
        assert deployment is not None
        assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "meshsync"
