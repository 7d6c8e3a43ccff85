"""Discovery documents, checked with raw HTTP, the official client and CRD registration."""

from __future__ import annotations

import aiohttp
import kubernetes
from meshsync_testkit.fake_apiserver import KUBE_SYSTEM_UID, FakeApiServer

CORE = {
    "namespaces",
    "configmaps",
    "nodes",
    "secrets",
    "persistentvolumes",
    "persistentvolumeclaims",
    "pods",
    "services",
    "endpoints",
    "replicationcontrollers",
    "serviceaccounts",
    "events",
}
GROUPS = {
    "apps/v1": {"replicasets", "deployments", "statefulsets", "daemonsets"},
    "networking.k8s.io/v1": {"ingresses"},
    "discovery.k8s.io/v1": {"endpointslices"},
    "batch/v1": {"cronjobs", "jobs"},
    "storage.k8s.io/v1": {"storageclasses", "volumeattachments"},
    "rbac.authorization.k8s.io/v1": {
        "clusterroles",
        "clusterrolebindings",
        "roles",
        "rolebindings",
    },
    "apiextensions.k8s.io/v1": {"customresourcedefinitions"},
    "apiregistration.k8s.io/v1": {"apiservices"},
}


async def test_version_and_core_discovery(http: aiohttp.ClientSession) -> None:
    async with http.get("/version") as resp:
        version = await resp.json()
    assert version["major"] == "1" and version["gitVersion"].startswith("v1.")
    async with http.get("/api") as resp:
        api = await resp.json()
    assert api["kind"] == "APIVersions" and api["versions"] == ["v1"]
    async with http.get("/api/v1") as resp:
        assert resp.content_type == "application/json"
        doc = await resp.json()
    assert doc["kind"] == "APIResourceList" and doc["groupVersion"] == "v1"
    by_name = {r["name"]: r for r in doc["resources"]}
    assert set(by_name) >= CORE
    pods = by_name["pods"]
    assert pods["namespaced"] is True and pods["kind"] == "Pod" and pods["singularName"] == "pod"
    assert pods["shortNames"] == ["po"] and {"list", "watch", "get"} <= set(pods["verbs"])
    assert by_name["nodes"]["namespaced"] is False
    assert "deletecollection" not in by_name["namespaces"]["verbs"]


async def test_group_discovery(http: aiohttp.ClientSession) -> None:
    async with http.get("/apis") as resp:
        groups = await resp.json()
    assert groups["kind"] == "APIGroupList"
    served = {g["name"]: g for g in groups["groups"]}
    for gv, plurals in GROUPS.items():
        group, version = gv.split("/")
        assert served[group]["preferredVersion"] == {"groupVersion": gv, "version": version}
        async with http.get(f"/apis/{gv}") as resp:
            doc = await resp.json()
        assert {r["name"] for r in doc["resources"]} >= plurals
        async with http.get(f"/apis/{group}") as resp:
            assert (await resp.json())["kind"] == "APIGroup"
    async with http.get("/apis/nope.example.com/v1") as resp:
        assert resp.status == 404
        assert (await resp.json())["reason"] == "NotFound"


async def test_apiregistration_can_be_disabled() -> None:
    srv = FakeApiServer(disabled_groups={"apiregistration.k8s.io"})
    await srv.start()
    try:
        async with aiohttp.ClientSession(base_url=srv.url) as http:
            async with http.get("/apis") as resp:
                names = {g["name"] for g in (await resp.json())["groups"]}
            assert "apiregistration.k8s.io" not in names and "apps" in names
            async with http.get("/apis/apiregistration.k8s.io/v1/apiservices") as resp:
                assert resp.status == 404
    finally:
        await srv.stop()


async def test_fresh_server_has_cluster_id_namespaces() -> None:
    srv = FakeApiServer()
    await srv.start()
    try:
        async with aiohttp.ClientSession(base_url=srv.url) as http:
            async with http.get("/api/v1/namespaces/kube-system") as resp:
                kube_system = await resp.json()
            async with http.get("/api/v1/namespaces") as resp:
                names = [n["metadata"]["name"] for n in (await resp.json())["items"]]
        assert kube_system["metadata"]["uid"] == KUBE_SYSTEM_UID
        assert names == ["default", "kube-system"]
        assert (
            FakeApiServer().get(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}}
            )["metadata"]["uid"]
            == KUBE_SYSTEM_UID
        )
    finally:
        await srv.stop()


async def test_crd_versions_register_and_unregister(
    server: FakeApiServer, http: aiohttp.ClientSession
) -> None:
    async with http.get("/apis/example.com") as resp:
        group = await resp.json()
    # v1 beats v1alpha1 as preferred version, like kube-apiserver's version priority.
    assert group["preferredVersion"]["version"] == "v1"
    assert [v["version"] for v in group["versions"]] == ["v1", "v1alpha1"]
    for version in ("v1", "v1alpha1"):
        async with http.get(f"/apis/example.com/{version}/widgets") as resp:
            widgets = await resp.json()
        assert widgets["kind"] == "WidgetList"
        assert {w["apiVersion"] for w in widgets["items"]} == {f"example.com/{version}"}
        assert [w["metadata"]["name"] for w in widgets["items"]] == ["blue", "red"]

    crd = server.get(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
        }
    )
    assert crd is not None
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    server.delete(crd)
    async with http.get("/apis") as resp:
        assert "example.com" not in {g["name"] for g in (await resp.json())["groups"]}
    async with http.get("/apis/example.com/v1/widgets") as resp:
        assert resp.status == 404
    # Re-creating the CRD serves an empty resource: its objects were deleted with it.
    server.create({k: v for k, v in crd.items() if k != "status"})
    assert server.objects("widgets", "example.com") == []


def test_official_client_discovery(api_client: kubernetes.client.ApiClient) -> None:
    core = kubernetes.client.CoreV1Api(api_client)
    names = {r.name for r in core.get_api_resources().resources}
    assert names >= CORE
    groups = kubernetes.client.ApisApi(api_client).get_api_versions()
    assert {"apps", "example.com", "meshery.io"} <= {g.name for g in groups.groups}
    version = kubernetes.client.VersionApi(api_client).get_code()
    assert version.major == "1"


async def test_subresources_are_listed_like_kube(http: aiohttp.ClientSession) -> None:
    async with http.get("/api/v1") as resp:
        by_name = {r["name"]: r for r in (await resp.json())["resources"]}
    assert by_name["pods/status"]["verbs"] == ["get", "patch", "update"]
    assert by_name["pods/log"]["kind"] == "Pod" and "pods/exec" in by_name
    assert (by_name["pods/eviction"]["group"], by_name["pods/eviction"]["version"]) == (
        "policy",
        "v1",
    )
    async with http.get("/apis/apps/v1") as resp:
        by_name = {r["name"]: r for r in (await resp.json())["resources"]}
    scale = by_name["deployments/scale"]
    assert (scale["kind"], scale["group"], scale["version"]) == ("Scale", "autoscaling", "v1")
    assert "configmaps/status" not in by_name


AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


async def test_aggregated_discovery_v2(http: aiohttp.ClientSession) -> None:
    accept = {"Accept": f"{AGGREGATED},application/json"}
    async with http.get("/apis", headers=accept) as resp:
        assert resp.headers["Content-Type"] == AGGREGATED
        doc = await resp.json(content_type=None)
    assert (doc["kind"], doc["apiVersion"]) == ("APIGroupDiscoveryList", "apidiscovery.k8s.io/v2")
    groups = {item["metadata"]["name"]: item for item in doc["items"]}
    widgets = groups["example.com"]
    assert [v["version"] for v in widgets["versions"]] == ["v1", "v1alpha1"]  # preferred first
    (resource,) = widgets["versions"][0]["resources"]
    assert resource["resource"] == "widgets" and resource["scope"] == "Namespaced"
    assert resource["responseKind"] == {"group": "example.com", "version": "v1", "kind": "Widget"}
    deployments = next(
        r for r in groups["apps"]["versions"][0]["resources"] if r["resource"] == "deployments"
    )
    assert {s["subresource"] for s in deployments["subresources"]} == {"scale", "status"}
    async with http.get("/api", headers=accept) as resp:
        core = await resp.json(content_type=None)
    (item,) = core["items"]
    assert [v["version"] for v in item["versions"]] == ["v1"]
    assert "pods" in {r["resource"] for r in item["versions"][0]["resources"]}
    # Without the v2 media type the legacy documents are served.
    async with http.get("/apis", headers={"Accept": "application/json"}) as resp:
        assert (await resp.json())["kind"] == "APIGroupList"


async def test_updating_a_crd_changes_its_served_versions(
    server: FakeApiServer, http: aiohttp.ClientSession
) -> None:
    ref = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
    }
    crd = server.get(ref)
    assert crd is not None
    crd["spec"]["versions"].append({"name": "v2", "served": True, "storage": False})
    crd["spec"]["versions"][0]["served"] = False  # stop serving v1alpha1
    server.update(crd)
    async with http.get("/apis/example.com") as resp:
        group = await resp.json()
    assert [v["version"] for v in group["versions"]] == ["v2", "v1"]
    async with http.get("/apis/example.com/v2/namespaces/shop/widgets/blue") as resp:
        assert (await resp.json())["apiVersion"] == "example.com/v2"
    async with http.get("/apis/example.com/v1alpha1/widgets") as resp:
        assert resp.status == 404
