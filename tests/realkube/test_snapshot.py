"""`meshsync run --output file --once` as a subprocess against the real cluster, and its
snapshot applied with `kubectl apply --server-side` to a second, empty real API server.

The source namespace holds the objects people back up (workloads and what their controllers
make of them, Services with and without selectors, configuration, secrets of several types).
The plain snapshot describes the source cluster and the target refuses it (uids, resource
versions); the ``--for-apply`` snapshot applies with no error, twice, and a snapshot of the
target taken the same way reproduces it object for object.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from meshsync_file.manifest import REDACTED_BASE64

from meshsync_core.tools import require_tool
from tests.realkube.cluster import ControlPlane
from tests.realkube.fixtures import eventually

#: Only the default set: custom resources apply only where their CRDs are, and the default set
#: does not include CustomResourceDefinitions (other tests leave CRDs of their own behind for
#: a while: they are deleted asynchronously).
RUN = ["run", "--output", "file", "--once", "--no-watch-crds", "--file-progress", "off"]
KWOK = {
    "nodeSelector": {"type": "kwok"},
    "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists"}],
}
CONTAINERS = [{"name": "app", "image": "example.invalid/app:1"}]
#: What the --for-apply snapshot must hold of the namespace: no ReplicaSet, no controller's
#: Pods, no EndpointSlices, no Endpoints the endpoints controller wrote, no kube-root-ca.crt.
EXPECTED = {
    ("Deployment", "web"),
    ("Service", "web"),
    ("Service", "db"),
    ("StatefulSet", "db"),
    ("DaemonSet", "agent"),
    ("ReplicationController", "legacy"),
    ("CronJob", "nightly"),
    ("Ingress", "web"),
    ("PersistentVolumeClaim", "data"),
    ("Pod", "solo"),
    ("ConfigMap", "settings"),
    ("Secret", "creds"),
    ("Secret", "registry"),
    ("Secret", "robot-token"),
    ("Service", "external"),
    ("Endpoints", "external"),
}
SERVER_FIELDS = {"uid", "resourceVersion", "creationTimestamp", "generation", "managedFields"}
SYSTEM_NAMESPACES = {"kube-system", "kube-public", "kube-node-lease"}


def template(app: str) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": app}}, "spec": {"containers": CONTAINERS, **KWOK}}


def workloads(ns: str) -> list[dict[str, Any]]:
    def obj(api_version: str, kind: str, name: str, **body: Any) -> dict[str, Any]:
        return {
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"name": name, "namespace": ns},
            **body,
        }

    selector = {"matchLabels": {"app": "web"}}
    docker = json.dumps({"auths": {"registry.example.invalid": {"auth": "dXNlcjpwYXNz"}}})
    return [
        obj("v1", "ConfigMap", "settings", data={"mode": "fast", "limits.conf": "a=1\nb=2\n"}),
        obj("v1", "Secret", "creds", type="Opaque", stringData={"password": "hunter2"}),
        obj(
            "v1",
            "Secret",
            "registry",
            type="kubernetes.io/dockerconfigjson",
            stringData={".dockerconfigjson": docker},
        ),
        obj("v1", "ServiceAccount", "robot"),
        {
            **obj("v1", "Secret", "robot-token", type="kubernetes.io/service-account-token"),
            "metadata": {
                "name": "robot-token",
                "namespace": ns,
                "annotations": {"kubernetes.io/service-account.name": "robot"},
            },
        },
        obj(
            "apps/v1",
            "Deployment",
            "web",
            spec={"replicas": 2, "selector": selector, "template": template("web")},
        ),
        obj(
            "v1",
            "Service",
            "web",
            spec={"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        ),
        obj(
            "v1",
            "Service",
            "db",
            spec={"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]},
        ),
        obj(
            "apps/v1",
            "StatefulSet",
            "db",
            spec={
                "serviceName": "db",
                "replicas": 1,
                "selector": {"matchLabels": {"app": "db"}},
                "template": template("db"),
            },
        ),
        obj(
            "apps/v1",
            "DaemonSet",
            "agent",
            spec={"selector": {"matchLabels": {"app": "agent"}}, "template": template("agent")},
        ),
        obj(
            "v1",
            "ReplicationController",
            "legacy",
            spec={"replicas": 1, "selector": {"app": "legacy"}, "template": template("legacy")},
        ),
        obj(
            "batch/v1",
            "CronJob",
            "nightly",
            spec={
                "schedule": "0 3 * * *",
                "suspend": True,
                "jobTemplate": {
                    "spec": {
                        "template": {
                            "spec": {"containers": CONTAINERS, "restartPolicy": "OnFailure"}
                        }
                    }
                },
            },
        ),
        obj(
            "networking.k8s.io/v1",
            "Ingress",
            "web",
            spec={
                "rules": [
                    {
                        "host": "web.example.invalid",
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {"service": {"name": "web", "port": {"number": 80}}},
                                }
                            ]
                        },
                    }
                ]
            },
        ),
        obj(
            "v1",
            "PersistentVolumeClaim",
            "data",
            spec={"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        ),
        obj("v1", "Pod", "solo", spec={"containers": CONTAINERS, **KWOK}),
        # a Service without selector and the Endpoints someone wrote for it (kept, unlike the
        # Endpoints the controller derives from a selector)
        obj("v1", "Service", "external", spec={"ports": [{"port": 5432}]}),
        obj(
            "v1",
            "Endpoints",
            "external",
            subsets=[{"addresses": [{"ip": "10.0.0.5"}], "ports": [{"port": 5432}]}],
        ),
    ]


def controllers_done(plane: ControlPlane, ns: str) -> bool:
    """Every controller has made its objects (so that the snapshot has them to leave out)."""
    apps = f"/apis/apps/v1/namespaces/{ns}"
    status = {
        name: plane.api("GET", path).get("status") or {}
        for name, path in (
            ("web", f"{apps}/deployments/web"),
            ("db", f"{apps}/statefulsets/db"),
            ("agent", f"{apps}/daemonsets/agent"),
            ("legacy", f"/api/v1/namespaces/{ns}/replicationcontrollers/legacy"),
            ("solo", f"/api/v1/namespaces/{ns}/pods/solo"),
        )
    }
    agent = status["agent"]
    slices = plane.api("GET", f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices")
    token = plane.api("GET", f"/api/v1/namespaces/{ns}/secrets/robot-token")
    return (
        status["web"].get("readyReplicas") == 2
        and status["db"].get("readyReplicas") == 1
        and status["legacy"].get("readyReplicas") == 1
        # one Pod per kwok node
        and agent.get("desiredNumberScheduled", 0) >= 1
        and agent.get("numberReady") == agent.get("desiredNumberScheduled")
        and status["solo"].get("phase") == "Running"
        and {s["metadata"]["labels"].get("kubernetes.io/service-name") for s in slices["items"]}
        >= {"web", "db", "external"}
        and plane.request("GET", f"/api/v1/namespaces/{ns}/endpoints/web")[0] == 200
        and "token" in (token.get("data") or {})
        and plane.request("GET", f"/api/v1/namespaces/{ns}/configmaps/kube-root-ca.crt")[0] == 200
    )


def meshsync(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [require_tool("meshsync"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"meshsync {' '.join(args)}: {result.stderr[-2000:]}"
    return result


def kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("kubectl"), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def in_namespace(docs: list[dict[str, Any]], ns: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (doc["kind"], doc["metadata"]["name"]): doc
        for doc in docs
        if doc["metadata"].get("namespace") == ns
    }


def errors_of(result: subprocess.CompletedProcess[str]) -> list[str]:
    """stderr lines that are not kubectl's warnings (deprecated Endpoints...)."""
    return [line for line in result.stderr.splitlines() if not line.startswith("Warning:")]


@pytest.mark.timeout(300)
def test_snapshot_for_apply_applies_to_an_empty_real_apiserver(
    real_cluster: ControlPlane, real_kubeconfig: Path, real_namespace: str, tmp_path: Path
) -> None:
    ns = real_namespace
    for obj in workloads(ns):
        real_cluster.apply(obj)
    eventually(lambda: controllers_done(real_cluster, ns), 90, "the controllers' objects")

    # -- the plain snapshot, under its default name
    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    meshsync(*RUN, "--kubeconfig", str(real_kubeconfig), cwd=plain_dir)
    (snapshot,) = [p.name for p in plain_dir.iterdir() if not p.name.endswith("-extended.yaml")]
    assert re.fullmatch(r"meshery-cluster-snapshot-\d{8}-00\.yaml", snapshot)
    assert {p.name for p in plain_dir.iterdir()} == {
        snapshot,
        snapshot.replace(".yaml", "-extended.yaml"),
    }
    plain_path = plain_dir / snapshot
    plain = documents(plain_path)
    mine = in_namespace(plain, ns)
    # what another cluster's API server would refuse or must not get
    assert {kind for kind, _ in mine} >= {"ReplicaSet", "Pod", "EndpointSlice", "Endpoints"}
    assert ("ConfigMap", "kube-root-ca.crt") in mine
    assert all(
        doc["metadata"].get("uid") and doc["metadata"].get("resourceVersion") for doc in plain
    )
    assert any(doc["metadata"].get("ownerReferences") for doc in mine.values())
    assert "status" in mine[("Pod", "solo")] and mine[("Pod", "solo")]["spec"]["nodeName"]
    assert {"kube-system", "default"} <= {
        d["metadata"]["name"] for d in plain if d["kind"] == "Namespace"
    }

    # -- the --for-apply snapshot
    applied_path = tmp_path / "for-apply.yaml"
    meshsync(
        *RUN,
        "--for-apply",
        "--no-extended-log",
        "--kubeconfig",
        str(real_kubeconfig),
        "--output-file",
        str(applied_path),
        cwd=tmp_path,
    )
    assert not (tmp_path / "for-apply-extended.yaml").exists()
    header = applied_path.read_text().splitlines()[0]
    docs = documents(applied_path)
    assert header.startswith(f"# MeshSync snapshot: {len(docs)} objects prepared for kubectl apply")
    check_for_apply(docs, ns)

    # -- a second, empty API server
    target = ControlPlane(tmp_path / "target", with_controllers=False)
    try:
        target.start()
        target_kubeconfig = target.kubeconfig(tmp_path / "target.kubeconfig")

        refused = kubectl(
            target_kubeconfig, "apply", "--server-side", "--dry-run=server", "-f", str(plain_path)
        )
        assert refused.returncode != 0
        assert "uid mismatch" in refused.stderr  # the plain snapshot names this cluster's uids

        for attempt in ("first", "again"):
            result = kubectl(target_kubeconfig, "apply", "--server-side", "-f", str(applied_path))
            assert result.returncode == 0 and not errors_of(result), (attempt, result.stderr)
            lines = result.stdout.splitlines()
            assert len(lines) == len(docs) and all(
                line.endswith(" serverside-applied") for line in lines
            ), (attempt, result.stdout)
        check_target(target, ns)

        # The target, snapshotted the same way, gives back the namespace as it was applied.
        again_path = tmp_path / "target-for-apply.yaml"
        meshsync(
            *RUN,
            "--for-apply",
            "--no-extended-log",
            "--kubeconfig",
            str(target_kubeconfig),
            "--output-file",
            str(again_path),
            cwd=tmp_path,
        )
        again = documents(again_path)
        assert in_namespace(again, ns) == in_namespace(docs, ns)
        assert [d for d in again if d["metadata"]["name"] == ns] == [
            d for d in docs if d["metadata"]["name"] == ns and d["kind"] == "Namespace"
        ]
    finally:
        target.stop()


def check_for_apply(docs: list[dict[str, Any]], ns: str) -> None:
    kinds = [doc["kind"] for doc in docs]
    first_other = next(i for i, kind in enumerate(kinds) if kind != "Namespace")
    assert "Namespace" not in kinds[first_other:], "a Namespace after objects that need it"
    mine = in_namespace(docs, ns)
    assert set(mine) == EXPECTED, set(mine) ^ EXPECTED
    for doc in docs:
        meta = doc["metadata"]
        assert not SERVER_FIELDS & set(meta), meta
        assert "ownerReferences" not in meta and "finalizers" not in meta, meta
        assert "status" not in doc, doc["kind"]
        # the target cluster's own control plane makes these
        assert meta.get("namespace") not in SYSTEM_NAMESPACES, meta
        assert not (doc["kind"] == "Namespace" and meta["name"] in SYSTEM_NAMESPACES)
        assert (doc["kind"], meta["name"]) != ("ConfigMap", "kube-root-ca.crt")
        assert (doc["kind"], meta.get("namespace"), meta["name"]) != (
            "Service",
            "default",
            "kubernetes",
        )
        labels = meta.get("labels") or {}
        assert "kubernetes.io/bootstrapping" not in labels, meta["name"]
        assert "kube-aggregator.kubernetes.io/automanaged" not in labels, meta["name"]
    assert "clusterIP" not in mine[("Service", "web")]["spec"]
    assert mine[("Service", "db")]["spec"]["clusterIP"] == "None"
    assert "nodeName" not in mine[("Pod", "solo")]["spec"]
    assert mine[("Secret", "creds")]["data"] == {"password": REDACTED_BASE64}
    registry = mine[("Secret", "registry")]["data"][".dockerconfigjson"]
    assert isinstance(json.loads(base64.b64decode(registry)), dict)  # the server parses it
    assert "data" not in mine[("Secret", "robot-token")]  # the target mints its own token
    assert mine[("Endpoints", "external")]["subsets"][0]["addresses"] == [{"ip": "10.0.0.5"}]


def check_target(target: ControlPlane, ns: str) -> None:
    """The objects exist in the target as the file described them."""
    base = f"/api/v1/namespaces/{ns}"
    apps = f"/apis/apps/v1/namespaces/{ns}"
    web = target.api("GET", f"{apps}/deployments/web")
    assert web["spec"]["replicas"] == 2
    assert web["spec"]["template"]["spec"]["containers"][0]["image"] == CONTAINERS[0]["image"]
    assert target.api("GET", f"{apps}/statefulsets/db")["spec"]["serviceName"] == "db"
    target.api("GET", f"{apps}/daemonsets/agent")
    target.api("GET", f"{base}/replicationcontrollers/legacy")
    assert target.api("GET", f"/apis/batch/v1/namespaces/{ns}/cronjobs/nightly")["spec"]["suspend"]
    target.api("GET", f"/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses/web")
    target.api("GET", f"{base}/persistentvolumeclaims/data")
    assert "nodeName" not in target.api("GET", f"{base}/pods/solo")["spec"]
    service = target.api("GET", f"{base}/services/web")
    assert service["spec"]["clusterIP"] not in ("", "None")  # allocated by the target
    assert target.api("GET", f"{base}/services/db")["spec"]["clusterIP"] == "None"
    settings = target.api("GET", f"{base}/configmaps/settings")
    assert settings["data"] == {"mode": "fast", "limits.conf": "a=1\nb=2\n"}
    assert target.api("GET", f"{base}/secrets/creds")["data"] == {"password": REDACTED_BASE64}
    token = target.api("GET", f"{base}/secrets/robot-token")
    assert token["type"] == "kubernetes.io/service-account-token" and not token.get("data")
    endpoints = target.api("GET", f"{base}/endpoints/external")
    assert endpoints["subsets"][0]["addresses"] == [{"ip": "10.0.0.5"}]
    # nothing controller-made came along (the target runs no controllers to make it)
    assert not target.api("GET", f"{apps}/replicasets")["items"]
    assert [p["metadata"]["name"] for p in target.api("GET", f"{base}/pods")["items"]] == ["solo"]
    assert target.request("GET", f"{base}/configmaps/kube-root-ca.crt")[0] == 404
