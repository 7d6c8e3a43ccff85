"""The MeshSync Deployment that Meshery Operator renders, with our image, on a real control plane.

tests/deploy/operator_meshsync_deployment.yaml is the Operator's Deployment field for field (see
its header for the meshery-operator source it reflects). It is applied the way the Operator does
(server-side apply, here by the real kubectl with strict field validation) into a namespace of
the test's own, next to what the Operator has in place by then: the ``meshery-operator``
ServiceAccount and the broker's ``meshery-nats-auth`` Secret. The real ReplicaSet controller
makes the Pod, the real scheduler places it on a kwok node, kwok marks it Running and Ready, so
the Deployment counts one ready replica — what the Operator's CheckHealth waits for — and Meshery
Server's "Running" check (a Pod labelled ``component=meshsync`` is Running) holds.

kwok runs no container: that the image behind the name starts, takes ``-h`` and serves the
probes is tests/deploy/test_operator_image.py's part; that the probes' paths answer as they
expect is also tests/integration/test_meshery_server_checks.py's.
"""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import yaml

from meshsync_core.tools import require_tool
from tests.realkube.cluster import ControlPlane
from tests.realkube.fixtures import eventually

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "deploy" / "operator_meshsync_deployment.yaml"
OUR_IMAGE = "meshery/meshsync-python"
SELECTOR = "app=meshery,component=meshsync"


def rendered() -> dict[str, Any]:
    return yaml.safe_load(FIXTURE.read_text())


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [require_tool("kubectl"), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
    )


def apply(kubeconfig: Path, namespace: str, manifest: str, *extra: str):  # type: ignore[no-untyped-def]
    """As the Operator applies: server-side, its own field manager, forced ownership."""
    return kubectl(
        kubeconfig, "apply", "--server-side", "--force-conflicts",
        "--field-manager=meshery-operator", "--validate=strict", "-n", namespace,
        *extra, "-f", "-", stdin=manifest,
    )  # fmt: skip


def operator_prerequisites(cluster: ControlPlane, namespace: str) -> None:
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "meshery-operator", "namespace": namespace},
        }
    )
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "meshery-nats-auth", "namespace": namespace},
            "type": "Opaque",
            "stringData": {"token": "t" + "0123456789abcdef" * 4},
        }
    )


def test_the_operators_deployment_runs_our_image_on_a_real_cluster(
    real_cluster: ControlPlane, real_namespace: str, tmp_path: Path
) -> None:
    kubeconfig = real_cluster.kubeconfig(tmp_path / "kubeconfig")
    operator_prerequisites(real_cluster, real_namespace)
    result = apply(kubeconfig, real_namespace, FIXTURE.read_text())
    assert result.returncode == 0, result.stderr
    assert "deployment.apps/meshery-meshsync serverside-applied" in result.stdout

    base = f"/api/v1/namespaces/{real_namespace}"
    apps = f"/apis/apps/v1/namespaces/{real_namespace}"

    def running_pod() -> dict[str, Any] | None:
        pods = real_cluster.api("GET", f"{base}/pods?labelSelector={SELECTOR}")["items"]
        for pod in pods:
            if pod["status"].get("phase") == "Running" and pod["spec"].get("nodeName"):
                return pod
        return None

    pod = eventually(running_pod, 60, "the Operator's MeshSync Pod to be scheduled and Running")
    # made by the real controllers: Deployment -> ReplicaSet -> Pod
    (owner,) = pod["metadata"]["ownerReferences"]
    assert owner["kind"] == "ReplicaSet" and owner["controller"] is True
    replica_set = real_cluster.api("GET", f"{apps}/replicasets/{owner['name']}")
    deployment = real_cluster.api("GET", f"{apps}/deployments/meshery-meshsync")
    assert replica_set["metadata"]["ownerReferences"][0]["uid"] == deployment["metadata"]["uid"]
    assert pod["spec"]["nodeName"].startswith("kwok-node-")

    spec = pod["spec"]
    assert spec["serviceAccountName"] == "meshery-operator"
    assert spec["shareProcessNamespace"] is True
    assert "securityContext" not in spec or not spec["securityContext"]
    (container,) = spec["containers"]
    assert container["name"] == "meshsync"
    assert container["image"] == rendered()["spec"]["template"]["spec"]["containers"][0]["image"]
    assert container["image"].split(":")[0] == OUR_IMAGE
    # no workingDir, no args: the image's WORKDIR and the Go binary's defaults apply
    assert container["command"] == ["./meshery-meshsync"]
    assert "args" not in container and "workingDir" not in container
    assert container["ports"] == [{"name": "client", "containerPort": 11000, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "client"
    names = [item["name"] for item in container["env"]]
    assert names == ["NATS_TOKEN", "BROKER_URL"]  # $(NATS_TOKEN) expands only if defined first
    broker_url = container["env"][1]["value"]
    assert broker_url.startswith("nats://$(NATS_TOKEN)@") and broker_url.endswith(":4222")

    # Meshery Server's "Running": a Pod labelled component=meshsync is Running; the Operator's
    # CheckHealth: the Deployment has its one ready replica.
    pods = real_cluster.api("GET", f"{base}/pods?labelSelector=component%3Dmeshsync")["items"]
    assert any(p["status"].get("phase") == "Running" for p in pods)
    eventually(
        lambda: (
            real_cluster.api("GET", f"{apps}/deployments/meshery-meshsync")["status"].get(
                "readyReplicas"
            )
            == 1
        ),
        60,
        "the Deployment's ready replica",
    )


def test_the_exec_probe_variant_for_older_versions_is_accepted(
    real_cluster: ControlPlane, real_namespace: str, tmp_path: Path
) -> None:
    """For a version it cannot prove to serve /healthz the Operator keeps the template's exec
    liveness probe, ``./meshery-meshsync -h``, and attaches no readiness probe."""
    kubeconfig = real_cluster.kubeconfig(tmp_path / "kubeconfig")
    deployment = rendered()
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container.pop("readinessProbe")
    container["livenessProbe"] = {
        "exec": {"command": ["./meshery-meshsync", "-h"]},
        "initialDelaySeconds": 60,
        "periodSeconds": 30,
        "timeoutSeconds": 30,
        "failureThreshold": 5,
    }
    result = apply(kubeconfig, real_namespace, yaml.safe_dump(deployment), "--dry-run=server")
    assert result.returncode == 0, result.stderr
    assert "serverside-applied (server dry run)" in result.stdout


def test_strict_validation_would_have_refused_a_field_the_api_does_not_know(
    real_cluster: ControlPlane, real_namespace: str, tmp_path: Path
) -> None:
    """The control for the tests above: the real API refuses what its schema does not declare
    (a misspelt workingDir), so "accepted" there means every field of the fixture is real."""
    kubeconfig = real_cluster.kubeconfig(tmp_path / "kubeconfig")
    deployment = copy.deepcopy(rendered())
    deployment["spec"]["template"]["spec"]["containers"][0]["workDir"] = "/"
    result = apply(kubeconfig, real_namespace, yaml.safe_dump(deployment), "--dry-run=server")
    assert result.returncode != 0
    assert '.containers[name="meshsync"].workDir: field not declared in schema' in result.stderr
