"""The file sink's answers to what a real API server refused or mishandled when a snapshot was
applied to another cluster (found by tests/realkube/test_snapshot.py, pinned here without a
cluster): document order, the control plane's own objects, finalizers, and Secrets whose
redacted values the API server parses or whose token the other cluster mints itself."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from meshsync_file.manifest import REDACTED_BASE64, made_by_control_plane

from meshsync_core import EventType

from .conftest import load_all, run_file_sink
from .k8s_objects import RESOURCES, event


def obj(kind: str, name: str, namespace: str | None = None, **extra: Any) -> dict[str, Any]:
    plural = {"Endpoints": "endpoints"}.get(kind, kind.lower() + "s")
    resource = next(r for r in RESOURCES.values() if r.plural == plural)
    meta: dict[str, Any] = {"name": name, "uid": f"uid-{kind}-{namespace}-{name}"}
    meta["resourceVersion"] = "1"
    if namespace:
        meta["namespace"] = namespace
    meta.update(extra.pop("metadata", {}))
    return {"apiVersion": resource.api_version, "kind": kind, "metadata": meta, **extra}


def ev(manifest: dict[str, Any], etype: EventType = EventType.ADDED) -> Any:
    plural = {"Endpoints": "endpoints"}.get(manifest["kind"], manifest["kind"].lower() + "s")
    return event(RESOURCES[plural], manifest, etype)


@pytest.mark.parametrize("for_apply", [False, True], ids=["snapshot", "for-apply"])
async def test_namespaces_come_before_what_is_in_them(tmp_path: Path, for_apply: bool) -> None:
    """Watches run concurrently: a Secret is often seen before its Namespace, and kubectl
    applies documents in file order ("namespaces "shop" not found")."""
    events = [
        ev(obj("Secret", "creds", "shop", data={"k": "dg=="})),
        ev(obj("ConfigMap", "settings", "shop")),
        ev(obj("Namespace", "shop")),
        ev(obj("Service", "web", "shop")),
        ev(obj("Namespace", "other")),
    ]
    path = tmp_path / "snap.yaml"
    await run_file_sink(events, path=path, for_apply=for_apply)
    assert [(d["kind"], d["metadata"]["name"]) for d in load_all(path)] == [
        ("Namespace", "shop"),
        ("Namespace", "other"),
        ("Secret", "creds"),
        ("ConfigMap", "settings"),
        ("Service", "web"),
    ]


async def test_a_deleted_namespace_leaves_the_first_group(tmp_path: Path) -> None:
    shop = obj("Namespace", "shop")
    events = [ev(obj("ConfigMap", "settings", "shop")), ev(shop), ev(shop, EventType.DELETED)]
    path = tmp_path / "snap.yaml"
    sink, _ = await run_file_sink(events, path=path)
    assert [d["kind"] for d in load_all(path)] == ["ConfigMap"]
    assert not sink.store.first


CONTROL_PLANE = [
    obj("Namespace", "kube-system"),
    obj("Namespace", "kube-node-lease"),
    obj("ConfigMap", "extension-apiserver-authentication", "kube-system"),
    obj("Secret", "bootstrap-token-abcdef", "kube-system"),
    obj("ConfigMap", "cluster-info", "kube-public"),
    obj("ConfigMap", "kube-root-ca.crt", "shop"),
    obj("Service", "kubernetes", "default"),
    obj("Endpoints", "kubernetes", "default"),
    obj(
        "ClusterRole",
        "system:discovery",
        metadata={"labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
    ),
    obj(
        "APIService",
        "v1.apps",
        metadata={"labels": {"kube-aggregator.kubernetes.io/automanaged": "onstart"}},
    ),
    obj(
        "Endpoints",
        "web",
        "shop",
        metadata={"labels": {"endpoints.kubernetes.io/managed-by": "endpoint-controller"}},
    ),
    obj(
        "EndpointSlice",
        "external-x1",
        "shop",
        metadata={
            "labels": {
                "endpointslice.kubernetes.io/managed-by": "endpointslicemirroring-controller.k8s.io"
            }
        },
    ),
]
USERS = [
    obj("Namespace", "default"),
    obj("Namespace", "shop"),
    obj("Service", "kubernetes", "shop"),
    obj("ConfigMap", "kube-root-ca", "shop"),
    obj("Endpoints", "external", "shop"),
    obj("ClusterRole", "shop-reader", metadata={"labels": {"app": "shop"}}),
]


@pytest.mark.parametrize("manifest", CONTROL_PLANE, ids=lambda m: m["metadata"]["name"])
def test_objects_of_the_control_plane(manifest: dict[str, Any]) -> None:
    assert made_by_control_plane(manifest)


@pytest.mark.parametrize("manifest", USERS, ids=lambda m: m["metadata"]["name"])
def test_objects_of_users(manifest: dict[str, Any]) -> None:
    assert not made_by_control_plane(manifest)


async def test_for_apply_leaves_out_the_control_plane_and_keeps_the_plain_snapshot_whole(
    tmp_path: Path,
) -> None:
    events = [ev(m) for m in CONTROL_PLANE + USERS]
    plain, applied = tmp_path / "plain.yaml", tmp_path / "applied.yaml"
    await run_file_sink(events, path=plain)
    await run_file_sink(events, path=applied, for_apply=True)
    assert len(load_all(plain)) == len(events)
    names = {
        (d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"])
        for d in load_all(applied)
    }
    assert names == {
        (m["kind"], m["metadata"].get("namespace"), m["metadata"]["name"]) for m in USERS
    }


async def test_an_object_labelled_later_leaves_the_for_apply_file(tmp_path: Path) -> None:
    endpoints = obj("Endpoints", "web", "shop")
    labelled = {
        **endpoints,
        "metadata": {
            **endpoints["metadata"],
            "resourceVersion": "2",
            "labels": {"endpoints.kubernetes.io/managed-by": "endpoint-controller"},
        },
    }
    path = tmp_path / "snap.yaml"
    await run_file_sink(
        [ev(endpoints)], [ev(labelled, EventType.MODIFIED)], path=path, for_apply=True
    )
    assert load_all(path) == []  # the header comment only


async def test_for_apply_secrets_and_finalizers(tmp_path: Path) -> None:
    docker = {".dockerconfigjson": base64.b64encode(b'{"auths":{}}').decode()}
    legacy = {".dockercfg": base64.b64encode(b"{}").decode()}
    token = {"token": "dG9rZW4=", "ca.crt": "Y2E=", "namespace": "c2hvcA=="}
    events = [
        ev(obj("Secret", "registry", "shop", type="kubernetes.io/dockerconfigjson", data=docker)),
        ev(obj("Secret", "old-registry", "shop", type="kubernetes.io/dockercfg", data=legacy)),
        ev(
            obj(
                "Secret",
                "robot-token",
                "shop",
                type="kubernetes.io/service-account-token",
                data=token,
            )
        ),
        ev(
            obj(
                "Secret",
                "tls",
                "shop",
                type="kubernetes.io/tls",
                data={"tls.crt": "eA==", "tls.key": "eQ=="},
            )
        ),
        ev(
            obj(
                "PersistentVolumeClaim",
                "data",
                "shop",
                metadata={"finalizers": ["kubernetes.io/pvc-protection"]},
            )
        ),
    ]
    path = tmp_path / "snap.yaml"
    await run_file_sink(events, path=path, for_apply=True)
    docs = {d["metadata"]["name"]: d for d in load_all(path)}
    # the API server parses these two as JSON objects: "[REDACTED]" would be refused
    for name, key in (("registry", ".dockerconfigjson"), ("old-registry", ".dockercfg")):
        value = json.loads(base64.b64decode(docs[name]["data"][key]))
        assert isinstance(value, dict) and "[REDACTED]" in json.dumps(value)
    assert "data" not in docs["robot-token"]  # signed by this cluster; the other mints its own
    assert docs["tls"]["data"] == {"tls.crt": REDACTED_BASE64, "tls.key": REDACTED_BASE64}
    assert "finalizers" not in docs["data"]["metadata"]
    # unredacted, real values stay (only the token Secret loses its data)
    unredacted = tmp_path / "clear.yaml"
    await run_file_sink(events, path=unredacted, for_apply=True, redact=False)
    clear = {d["metadata"]["name"]: d for d in load_all(unredacted)}
    assert clear["registry"]["data"] == docker and clear["old-registry"]["data"] == legacy
    assert "data" not in clear["robot-token"]
