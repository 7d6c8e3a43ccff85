"""Writes over HTTP and through the programmatic API: status codes, conflicts, patches, cascades."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import kubernetes
import orjson
import pytest
from kubernetes.client.rest import ApiException
from meshsync_testkit.fake_apiserver import ApiError, FakeApiServer

from meshsync_core.testing import wait_until


def cm(name: str, namespace: str = "shop", **fields: Any) -> dict[str, Any]:
    meta = {"name": name, "namespace": namespace}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, **fields}


async def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """A bounded wait on a condition the server reaches asynchronously."""
    await wait_until(condition, timeout, "the server to get there")


async def test_create_needs_an_existing_namespace(http: aiohttp.ClientSession) -> None:
    async with http.post("/api/v1/namespaces/ghost/configmaps", json=cm("c", "ghost")) as resp:
        body = await resp.json()
    assert (resp.status, body["reason"], body["message"]) == (
        404,
        "NotFound",
        'namespaces "ghost" not found',
    )


def test_official_client_status_codes(
    threaded: FakeApiServer, core: kubernetes.client.CoreV1Api
) -> None:
    body = kubernetes.client.V1ConfigMap(metadata={"name": "c"}, data={"k": "v"})
    created = core.create_namespaced_config_map("shop", body)
    assert created.metadata.uid and created.metadata.creation_timestamp
    assert created.metadata.namespace == "shop"
    with pytest.raises(ApiException) as info:
        core.create_namespaced_config_map("shop", body)
    assert info.value.status == 409 and '"reason":"AlreadyExists"' in info.value.body
    with pytest.raises(ApiException) as info:
        core.read_namespaced_config_map("missing", "shop")
    assert info.value.status == 404 and '"reason":"NotFound"' in info.value.body

    created.data = {"k": "v2"}
    replaced = core.replace_namespaced_config_map("c", "shop", created)
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    assert replaced.metadata.uid == created.metadata.uid
    created.data = {"k": "stale"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as info:
        core.replace_namespaced_config_map("c", "shop", created)
    assert info.value.status == 409 and '"reason":"Conflict"' in info.value.body

    core.delete_namespaced_config_map("c", "shop")
    with pytest.raises(ApiException) as info:
        core.delete_namespaced_config_map("c", "shop")
    assert info.value.status == 404
    assert threaded.get(cm("c")) is None


async def test_create_assigns_metadata(server: FakeApiServer, http: aiohttp.ClientSession) -> None:
    deploy = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"generateName": "api-", "uid": "client-chosen", "resourceVersion": "7"},
        "spec": {"replicas": 1},
    }
    async with http.post("/apis/apps/v1/namespaces/shop/deployments", json=deploy) as resp:
        created = await resp.json()
    assert resp.status == 201
    meta = created["metadata"]
    assert meta["name"].startswith("api-") and len(meta["name"]) == len("api-") + 5
    assert meta["uid"] != "client-chosen" and meta["namespace"] == "shop"
    assert meta["generation"] == 1 and int(meta["resourceVersion"]) == server.resource_version
    created["spec"]["replicas"] = 2
    path = f"/apis/apps/v1/namespaces/shop/deployments/{meta['name']}"
    async with http.put(path, json=created) as resp:
        updated = await resp.json()
    assert updated["metadata"]["generation"] == 2
    updated["metadata"]["labels"] = {"only": "metadata"}
    async with http.put(path, json=updated) as resp:
        assert (await resp.json())["metadata"]["generation"] == 2  # spec unchanged


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "reason"),
    [
        ("POST", "/api/v1/namespaces/shop/configmaps", {"kind": "Secret", "apiVersion": "v1"},
         400, "BadRequest"),
        ("POST", "/api/v1/namespaces/shop/configmaps", cm("x", namespace="default"),
         400, "BadRequest"),
        ("POST", "/api/v1/namespaces/shop/configmaps", b"{not json", 400, "BadRequest"),
        ("POST", "/api/v1/namespaces/shop/configmaps", {"apiVersion": "v1", "kind": "ConfigMap"},
         422, "Invalid"),
        ("PUT", "/api/v1/namespaces/shop/configmaps/other", cm("web-config"), 400, "BadRequest"),
        ("PUT", "/api/v1/namespaces/shop/configmaps/nope", cm("nope"), 404, "NotFound"),
        ("POST", "/api/v1/namespaces/shop/configmaps/web-config", cm("web-config"),
         405, "MethodNotAllowed"),
        ("DELETE", "/api/v1/namespaces", None, 405, "MethodNotAllowed"),
    ],
)  # fmt: skip
async def test_bad_writes(
    http: aiohttp.ClientSession, method: str, path: str, body: Any, status: int, reason: str
) -> None:
    kwargs = {"data": body} if isinstance(body, bytes) else {"json": body}
    async with http.request(method, path, **kwargs) as resp:
        result = await resp.json()
    assert resp.status == status
    assert (result["kind"], result["status"], result["reason"], result["code"]) == (
        "Status",
        "Failure",
        reason,
        status,
    )
    assert result["message"]


async def test_patch_flavours(server: FakeApiServer, http: aiohttp.ClientSession) -> None:
    path = "/apis/apps/v1/namespaces/shop/deployments/web"
    server.update(
        {
            **server.get({"apiVersion": "apps/v1", "kind": "Deployment",
                          "metadata": {"name": "web", "namespace": "shop"}}),
            "spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "web:1", "ports": [{"containerPort": 8080}]},
                {"name": "sidecar", "image": "proxy:1"},
            ]}}},
        }
    )  # fmt: skip

    async def patch(ctype: str, body: Any) -> tuple[int, dict[str, Any]]:
        async with http.patch(path, json=body, headers={"Content-Type": ctype}) as resp:
            return resp.status, await resp.json()

    # Strategic merge: containers merge by name, directives are honoured, other fields stay.
    status, obj = await patch(
        "application/strategic-merge-patch+json",
        {"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
            "containers": [{"name": "sidecar", "image": "proxy:2"}]}}}},
    )  # fmt: skip
    containers = obj["spec"]["template"]["spec"]["containers"]
    assert status == 200
    assert containers == [
        {"name": "app", "image": "web:1", "ports": [{"containerPort": 8080}]},
        {"name": "sidecar", "image": "proxy:2"},
    ]
    # JSON merge patch: lists are replaced, null deletes.
    status, obj = await patch(
        "application/merge-patch+json",
        {"metadata": {"labels": {"tier": None, "x": "y"}},
         "spec": {"template": {"spec": {"containers": [{"name": "only"}]}}}},
    )  # fmt: skip
    assert obj["metadata"]["labels"] == {"app": "web", "x": "y"}
    assert obj["spec"]["template"]["spec"]["containers"] == [{"name": "only"}]
    # JSON patch (RFC 6902).
    status, obj = await patch(
        "application/json-patch+json",
        [{"op": "add", "path": "/spec/replicas", "value": 5},
         {"op": "replace", "path": "/spec/replicas", "value": 6},
         {"op": "add", "path": "/metadata/labels/added", "value": "1"},
         {"op": "remove", "path": "/metadata/labels/x"}],
    )  # fmt: skip
    assert status == 200 and obj["spec"]["replicas"] == 6
    assert obj["metadata"]["labels"] == {"app": "web", "added": "1"}
    # A resourceVersion in the patch is a precondition.
    status, obj = await patch(
        "application/merge-patch+json", {"metadata": {"resourceVersion": "1"}}
    )
    assert (status, obj["reason"]) == (409, "Conflict")
    status, obj = await patch("application/apply-patch+yaml", {})
    assert (status, obj["reason"]) == (415, "UnsupportedMediaType")
    async with http.patch(
        path.replace("web", "nope"),
        json={},
        headers={"Content-Type": "application/merge-patch+json"},
    ) as resp:
        assert resp.status == 404  # fmt: skip


async def test_delete_responses(server: FakeApiServer, http: aiohttp.ClientSession) -> None:
    async with http.delete("/api/v1/namespaces/shop/configmaps/web-config") as resp:
        status = await resp.json()
    assert (status["kind"], status["status"]) == ("Status", "Success")
    assert status["details"]["name"] == "web-config" and status["details"]["kind"] == "configmaps"
    async with http.delete("/api/v1/namespaces/shop/pods/web-7d9c6b8f5-x2k8p") as resp:
        pod = await resp.json()
    assert pod["kind"] == "Pod"  # pods come back as the deleted object
    uid = server.objects("services")[0]["metadata"]["uid"]
    body = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": "other"}}
    async with http.delete("/api/v1/namespaces/default/services/kubernetes", json=body) as resp:
        assert resp.status == 409
    body["preconditions"]["uid"] = uid
    async with http.delete("/api/v1/namespaces/default/services/kubernetes", json=body) as resp:
        assert resp.status == 200


async def test_deletecollection_and_namespace_cascade(
    server: FakeApiServer, http: aiohttp.ClientSession
) -> None:
    async with http.delete(
        "/api/v1/namespaces/shop/pods", params={"labelSelector": "app=web"}
    ) as resp:
        deleted = await resp.json()
    assert resp.status == 200 and deleted["kind"] == "PodList" and len(deleted["items"]) == 3
    assert server.objects("pods") == []
    async with http.delete("/api/v1/namespaces/shop") as resp:
        namespace = await resp.json()
    # Like kube: Terminating first (contents still there, nothing new allowed), then gone.
    assert namespace["kind"] == "Namespace" and namespace["status"]["phase"] == "Terminating"
    assert namespace["metadata"]["deletionTimestamp"]
    assert server.objects("configmaps", "")[-1]["metadata"]["namespace"] == "shop"
    async with http.post("/api/v1/namespaces/shop/configmaps", json=cm("late")) as resp:
        assert (resp.status, (await resp.json())["reason"]) == (403, "Forbidden")
    await wait_for(lambda: server.get({"apiVersion": "v1", "kind": "Namespace",
                                       "metadata": {"name": "shop"}}) is None)  # fmt: skip
    for plural, group in (("configmaps", ""), ("deployments", "apps"), ("widgets", "example.com")):
        left = [o["metadata"]["namespace"] for o in server.objects(plural, group)]
        assert "shop" not in left, plural
    assert [c["metadata"]["name"] for c in server.objects("configmaps")] == ["kube-root-ca.crt"]
    assert [s["metadata"]["name"] for s in server.objects("services")] == ["kubernetes"]
    assert [n["metadata"]["name"] for n in server.objects("nodes")] == ["node-1"]


def test_programmatic_api(threaded: FakeApiServer) -> None:
    created = threaded.create({**cm("p", data={"a": "1"}), "metadata": {"name": "p"}})
    assert created["metadata"]["namespace"] == "default"
    with pytest.raises(ApiError) as info:
        threaded.create(cm("p", namespace="default"))
    assert (info.value.code, info.value.reason) == (409, "AlreadyExists")
    stale = dict(created, data={"a": "2"})
    threaded.update(stale)
    with pytest.raises(ApiError) as info:
        threaded.update(stale)  # its resourceVersion is now stale
    assert (info.value.code, info.value.reason) == (409, "Conflict")
    applied = threaded.apply(cm("p", namespace="default", data={"a": "3"}))
    assert (
        applied["data"] == {"a": "3"} and applied["metadata"]["uid"] == created["metadata"]["uid"]
    )
    last = threaded.delete(cm("p", namespace="default"))
    assert int(last["metadata"]["resourceVersion"]) == threaded.resource_version
    assert last["data"] == {"a": "3"}
    assert threaded.get(cm("p", namespace="default")) is None
    with pytest.raises(ApiError) as info:
        threaded.delete(cm("p", namespace="default"))
    assert info.value.code == 404 and info.value.status()["reason"] == "NotFound"
    with pytest.raises(ApiError) as info:
        threaded.create({"apiVersion": "v9", "kind": "Nothing", "metadata": {"name": "n"}})
    assert info.value.code == 404
    # Callers' dicts are never mutated.
    mine = cm("mine")
    threaded.create(mine)
    assert mine == cm("mine")


async def test_status_and_scale_subresources(
    server: FakeApiServer, http: aiohttp.ClientSession
) -> None:
    base = "/apis/apps/v1/namespaces/shop/deployments/web"
    async with http.get(f"{base}/scale") as resp:
        scale = await resp.json()
    assert (scale["kind"], scale["apiVersion"]) == ("Scale", "autoscaling/v1")
    assert scale["spec"] == {"replicas": 3} and scale["status"]["selector"] == "app=web"
    scale["spec"]["replicas"] = 7
    async with http.put(f"{base}/scale", json=scale) as resp:
        assert (await resp.json())["spec"]["replicas"] == 7
    async with http.put(f"{base}/scale", json=scale) as resp:  # stale resourceVersion
        assert (resp.status, (await resp.json())["reason"]) == (409, "Conflict")
    headers = {"Content-Type": "application/merge-patch+json"}
    async with http.patch(f"{base}/scale", json={"spec": {"replicas": 2}}, headers=headers) as r:
        assert (await r.json())["spec"]["replicas"] == 2
    # A status write changes only .status, whatever else the body says.
    body = {"spec": {"replicas": 99}, "status": {"replicas": 2, "readyReplicas": 1}}
    async with http.patch(f"{base}/status", json=body, headers=headers) as resp:
        deploy = await resp.json()
    assert deploy["spec"]["replicas"] == 2
    assert deploy["status"] == {"replicas": 2, "readyReplicas": 1, "availableReplicas": 3}
    assert deploy["metadata"]["generation"] == 3  # two spec changes through scale
    managed = {
        (m["manager"], m.get("subresource", "")) for m in deploy["metadata"]["managedFields"]
    }
    assert {("Python", "scale"), ("Python", "status")} <= managed  # manager from User-Agent
    async with http.get("/api/v1/namespaces/shop/configmaps/web-config/scale") as resp:
        assert resp.status == 404  # not scalable
    async with http.get("/api/v1/namespaces/shop/pods/web-7d9c6b8f5-x2k8p/attach") as resp:
        assert resp.status == 404  # listed in discovery, not served (pods/log is: test_logs_exec)
    async with http.delete(f"{base}/status") as resp:
        assert resp.status == 405


async def test_protobuf_bodies_are_unsupported(http: aiohttp.ClientSession) -> None:
    headers = {"Content-Type": "application/vnd.kubernetes.protobuf"}
    async with http.post("/api/v1/namespaces", data=b"k8s\x00\n", headers=headers) as resp:
        body = await resp.json()
    assert (resp.status, body["reason"]) == (415, "UnsupportedMediaType")


async def test_yaml_bodies_are_accepted(server: FakeApiServer, http: aiohttp.ClientSession) -> None:
    manifest = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  a: b\n"
    headers = {"Content-Type": "application/yaml"}
    async with http.post("/api/v1/namespaces/shop/configmaps", data=manifest, headers=headers) as r:
        assert r.status == 201
    assert server.get(cm("from-yaml"))["data"] == {"a": "b"}


async def test_garbage_collection_follows_owner_references(
    server: FakeApiServer, http: aiohttp.ClientSession
) -> None:
    params = {"watch": "1", "resourceVersion": str(server.resource_version)}
    async with http.get("/api/v1/namespaces/shop/pods", params=params) as pods_watch:
        async with http.delete("/apis/apps/v1/namespaces/shop/deployments/web") as resp:
            assert resp.status == 200
        # Deployment -> ReplicaSet -> Pods, like kube's garbage collector (asynchronously).
        events = [await asyncio.wait_for(pods_watch.content.readline(), 5) for _ in range(3)]
    assert all(b'"type":"DELETED"' in e for e in events)
    assert server.objects("replicasets", "apps") == [] and server.objects("pods") == []
    assert len(server.objects("services")) == 2  # not owned: untouched


async def test_orphan_propagation_keeps_dependents(
    server: FakeApiServer, http: aiohttp.ClientSession
) -> None:
    owner = server.create(cm("owner"))
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
           "uid": owner["metadata"]["uid"]}  # fmt: skip
    server.create(
        {**cm("child"), "metadata": {**cm("child")["metadata"], "ownerReferences": [ref]}}
    )
    params = {"watch": "1", "resourceVersion": str(server.resource_version),
              "fieldSelector": "metadata.name=child"}  # fmt: skip
    async with http.get("/api/v1/namespaces/shop/configmaps", params=params) as watch:
        body = {"propagationPolicy": "Orphan"}
        async with http.delete("/apis/apps/v1/namespaces/shop/deployments/web", json=body) as r:
            assert r.status == 200
        async with http.delete("/api/v1/namespaces/shop/configmaps/owner") as r:
            assert r.status == 200
        # Collections run in order; once the later one is seen, the orphaning one is done too.
        event = orjson.loads(await asyncio.wait_for(watch.content.readline(), 5))
    assert event["type"] == "DELETED"
    assert len(server.objects("replicasets", "apps")) == 1 and len(server.objects("pods")) == 3


@pytest.mark.parametrize(
    ("method", "path", "body", "ctype", "status"),
    [
        ("PATCH", "/api/v1/namespaces/shop/configmaps/web-config", {"metadata": 5},
         "application/merge-patch+json", 422),
        ("PATCH", "/api/v1/namespaces/shop/configmaps/web-config",
         {"metadata": {"labels": {"a": 1}}}, "application/merge-patch+json", 422),
        ("PATCH", "/api/v1/namespaces/shop/configmaps/web-config", [{"op": "nope", "path": "/a"}],
         "application/json-patch+json", 400),
        ("PUT", "/api/v1/namespaces/shop/configmaps/web-config", {"metadata": []},
         "application/json", 400),
        ("DELETE", "/api/v1/namespaces/shop/configmaps/web-config", [1], "application/json", 400),
        ("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
         {"metadata": {"name": "xs.a.b"}, "spec": {"group": "a.b", "versions": [5],
                                                   "names": {"plural": "xs", "kind": "X"}}},
         "application/json", 422),
        ("POST", "/version", {}, "application/json", 405),
    ],
)  # fmt: skip
async def test_malformed_input_is_a_status_not_a_crash(
    server: FakeApiServer,
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    body: Any,
    ctype: str,
    status: int,
) -> None:
    before = server.get(cm("web-config"))
    async with http.request(method, path, json=body, headers={"Content-Type": ctype}) as resp:
        result = await resp.json()
    assert (resp.status, result["kind"], result["code"]) == (status, "Status", status)
    assert server.get(cm("web-config")) == before  # nothing was half-applied


def test_programmatic_namespace_delete_is_immediate(threaded: FakeApiServer) -> None:
    last = threaded.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    assert last["metadata"]["name"] == "shop"
    assert threaded.objects("pods") == []
    assert threaded.objects("widgets", "example.com") == []
    assert "shop" not in [n["metadata"]["name"] for n in threaded.objects("namespaces")]
