"""The data the fake server ships with: demo_cluster, bulk_objects and the load path."""

from __future__ import annotations

import asyncio
import base64
import statistics

import aiohttp
import orjson
from meshsync_testkit.fake_apiserver import (
    KUBE_SYSTEM_UID,
    FakeApiServer,
    bulk_objects,
    demo_cluster,
)


def test_demo_cluster_is_realistic_and_consistent() -> None:
    srv = FakeApiServer()
    srv.load(demo_cluster())
    namespaces = [n["metadata"]["name"] for n in srv.objects("namespaces")]
    assert namespaces == ["default", "kube-public", "kube-system", "shop"]
    assert srv.objects("namespaces")[2]["metadata"]["uid"] == KUBE_SYSTEM_UID

    (deploy,) = srv.objects("deployments", "apps")
    (rs,) = srv.objects("replicasets", "apps")
    pods = srv.objects("pods")
    assert rs["metadata"]["ownerReferences"][0]["uid"] == deploy["metadata"]["uid"]
    assert len(pods) == 3
    for pod in pods:
        owner = pod["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["uid"]) == ("ReplicaSet", rs["metadata"]["uid"])
        assert pod["metadata"]["labels"]["app"] == "web"
        assert pod["status"]["phase"] == "Running" and pod["spec"]["nodeName"] == "node-1"
    services = {s["metadata"]["name"]: s for s in srv.objects("services")}
    assert services["web"]["spec"]["type"] == "ClusterIP"
    assert 443 in [p["port"] for p in services["web"]["spec"]["ports"]]
    (secret,) = srv.objects("secrets")
    assert secret["type"] == "Opaque"
    assert base64.b64decode(secret["data"]["password"]) == b"s3cr3t-passw0rd"
    (pv,) = srv.objects("persistentvolumes")
    (pvc,) = srv.objects("persistentvolumeclaims")
    assert pv["spec"]["claimRef"]["uid"] == pvc["metadata"]["uid"]
    assert pvc["spec"]["volumeName"] == pv["metadata"]["name"]
    assert [s["metadata"]["name"] for s in srv.objects("storageclasses", "storage.k8s.io")] == [
        "standard"
    ]
    assert len(srv.objects("nodes")) == 1 and len(srv.objects("configmaps")) == 2
    crds = {c["metadata"]["name"]: c for c in
            srv.objects("customresourcedefinitions", "apiextensions.k8s.io")}  # fmt: skip
    assert set(crds) == {"widgets.example.com", "meshsyncs.meshery.io"}
    versions = crds["widgets.example.com"]["spec"]["versions"]
    assert [(v["name"], v["storage"]) for v in versions] == [("v1alpha1", False), ("v1", True)]
    assert crds["widgets.example.com"]["status"]["storedVersions"] == ["v1"]
    assert [v["name"] for v in crds["meshsyncs.meshery.io"]["spec"]["versions"]] == ["v1alpha1"]
    assert [w["metadata"]["name"] for w in srv.objects("widgets", "example.com")] == ["blue", "red"]
    # Deterministic: the same uids every time.
    assert demo_cluster() == demo_cluster()


def test_bulk_objects_shape() -> None:
    objs = list(bulk_objects(1000, namespaces=4))
    kinds = [o["kind"] for o in objs]
    assert kinds.count("Pod") == 500 and kinds.count("ConfigMap") == 500
    assert {o["metadata"]["namespace"] for o in objs} == {"bulk-0", "bulk-1", "bulk-2", "bulk-3"}
    assert len({(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objs}) == 1000
    sizes = [len(orjson.dumps(o)) for o in objs]
    assert 2000 <= statistics.mean(sizes) <= 4000 and max(sizes) < 5000
    pod = objs[0]
    assert pod["metadata"]["managedFields"] and pod["metadata"]["labels"]
    assert pod["spec"]["containers"] and pod["status"]["containerStatuses"]


def test_load_is_an_upsert_that_keeps_uids() -> None:
    srv = FakeApiServer()
    assert srv.load(bulk_objects(200)) == 200
    before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in srv.objects("pods")}
    rv = srv.resource_version
    assert srv.load(bulk_objects(200)) == 200
    after = {p["metadata"]["name"]: p["metadata"]["uid"] for p in srv.objects("pods")}
    assert after == before and len(after) == 100
    assert srv.resource_version == rv + 200
    # load() of the demo cluster onto a fresh server keeps the built-in namespaces' uids.
    srv.load(demo_cluster())
    system = srv.get({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}})
    assert system is not None and system["metadata"]["uid"] == KUBE_SYSTEM_UID


async def test_load_notifies_open_watches_from_another_thread() -> None:
    srv = FakeApiServer()
    await srv.start()
    try:
        async with aiohttp.ClientSession(base_url=srv.url) as http:
            params = {"watch": "1", "resourceVersion": str(srv.resource_version)}
            async with http.get("/api/v1/namespaces/bulk-3/configmaps", params=params) as resp:
                # Mutations are thread-safe: load from a worker thread while the loop serves.
                await asyncio.to_thread(srv.load, bulk_objects(40, namespaces=4))
                events = [orjson.loads(await asyncio.wait_for(resp.content.readline(), 5))
                          for _ in range(5)]  # fmt: skip
        assert [e["type"] for e in events] == ["ADDED"] * 5
        assert all(e["object"]["metadata"]["namespace"] == "bulk-3" for e in events)
    finally:
        await srv.stop()


async def test_pages_through_many_objects_quickly() -> None:
    srv = FakeApiServer()
    srv.load(bulk_objects(10_000))
    await srv.start()
    try:
        async with aiohttp.ClientSession(base_url=srv.url) as http:
            start = asyncio.get_running_loop().time()
            count, token = 0, ""
            while True:
                params = {"limit": "500", **({"continue": token} if token else {})}
                async with http.get("/api/v1/configmaps", params=params) as resp:
                    page = orjson.loads(await resp.read())
                count += len(page["items"])
                token = page["metadata"].get("continue", "")
                if not token:
                    break
            elapsed = asyncio.get_running_loop().time() - start
        assert count == 5000
        assert elapsed < 5  # ~0.3 s on a quiet 2-core machine; generous for loaded CI
    finally:
        await srv.stop()
