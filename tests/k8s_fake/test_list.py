"""Lists: paging, selectors and resourceVersions, mostly through the official client."""

from __future__ import annotations

import aiohttp
import kubernetes
import pytest
from kubernetes.client.rest import ApiException
from meshsync_testkit.fake_apiserver import FakeApiServer, bulk_objects


def _names(items: list) -> list[str]:
    return [f"{i.metadata.namespace}/{i.metadata.name}" for i in items]


def test_paging_visits_every_object_once(
    threaded: FakeApiServer, core: kubernetes.client.CoreV1Api
) -> None:
    threaded.load(bulk_objects(1001))
    expected = [
        f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in threaded.objects("pods")
    ]
    assert len(expected) == 501 + 3
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = core.list_pod_for_all_namespaces(limit=100, _continue=token)
        pages += 1
        seen += _names(page.items)
        token = page.metadata._continue
        if not token:
            assert page.metadata.remaining_item_count is None
            break
        assert page.metadata.remaining_item_count == len(expected) - len(seen)
    assert seen == expected  # same order, nothing skipped or repeated
    assert pages == 6


def test_list_metadata_and_resource_version(
    threaded: FakeApiServer, core: kubernetes.client.CoreV1Api
) -> None:
    page = core.list_namespaced_config_map("shop")
    assert page.kind == "ConfigMapList" and page.api_version == "v1"
    assert page.metadata.resource_version == str(threaded.resource_version)
    created = threaded.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "n", "namespace": "shop"}}
    )
    after = core.list_namespaced_config_map("shop")
    assert int(after.metadata.resource_version) == int(created["metadata"]["resourceVersion"])
    assert int(after.metadata.resource_version) > int(page.metadata.resource_version)
    assert _names(after.items) == ["shop/n", "shop/web-config"]


async def test_paging_edge_cases(server: FakeApiServer, http: aiohttp.ClientSession) -> None:
    server.load(bulk_objects(40, namespaces=2))
    url = "/api/v1/namespaces/bulk-1/configmaps"

    async def get(**params: str) -> dict:
        async with http.get(url, params=params) as resp:
            assert resp.status == 200
            return await resp.json()

    everything = await get()
    assert len(everything["items"]) == 20 and "continue" not in everything["metadata"]
    exact = await get(limit="20")  # limit == count: no continue, no empty extra page
    assert len(exact["items"]) == 20 and "continue" not in exact["metadata"]
    big = await get(limit="1000")
    assert len(big["items"]) == 20 and "continue" not in big["metadata"]
    names, token = [], ""
    while True:
        page = await get(limit="1", **({"continue": token} if token else {}))
        names += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue", "")
        if not token:
            break
    assert names == [i["metadata"]["name"] for i in everything["items"]]
    # An object created behind the cursor is not seen; one ahead of it is, exactly once.
    first = await get(limit="10")
    server.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "config-0000000", "namespace": "bulk-1"},
        }
    )
    server.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "zzz", "namespace": "bulk-1"},
        }
    )
    rest = await get(limit="100", **{"continue": first["metadata"]["continue"]})
    tail = [i["metadata"]["name"] for i in rest["items"]]
    assert tail[-1] == "zzz" and "config-0000000" not in tail and len(tail) == 11
    assert rest["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    # Garbage continue tokens and limits are a 400, like kube-apiserver.
    for bad in ({"limit": "5", "continue": "not-a-token"}, {"limit": "many"}):
        async with http.get(url, params=bad) as resp:
            assert resp.status == 400
            assert (await resp.json())["reason"] == "BadRequest"


async def test_continue_after_compaction_is_expired(
    server: FakeApiServer, http: aiohttp.ClientSession
) -> None:
    async with http.get("/api/v1/pods", params={"limit": "1"}) as resp:
        token = (await resp.json())["metadata"]["continue"]
    server.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bump"}})
    server.faults.compact()
    async with http.get("/api/v1/pods", params={"limit": "1", "continue": token}) as resp:
        body = await resp.json()
    assert resp.status == 410
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "Expired", 410)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=frontend", ["a", "b", "c"]),
        ("tier==frontend,env=prod", ["a"]),
        ("env!=prod", ["b", "c", "d"]),
        ("env in (prod, staging)", ["a", "b"]),
        ("env notin (prod)", ["b", "c", "d"]),
        ("env", ["a", "b"]),
        ("!env", ["c", "d"]),
        ("tier=frontend,!env", ["c"]),
        ("version>2", ["d"]),
    ],
)
def test_label_selectors(
    threaded: FakeApiServer, core: kubernetes.client.CoreV1Api, selector: str, expected: list
) -> None:
    labels = {
        "a": {"tier": "frontend", "env": "prod"},
        "b": {"tier": "frontend", "env": "staging"},
        "c": {"tier": "frontend"},
        "d": {"tier": "backend", "version": "3"},
    }
    threaded.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sel"}})
    for name, lab in labels.items():
        threaded.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": "sel", "labels": lab},
            }
        )
    found = core.list_namespaced_pod("sel", label_selector=selector)
    assert [p.metadata.name for p in found.items] == expected
    paged, token = [], None
    while True:  # selectors and paging combine without loss
        page = core.list_namespaced_pod("sel", label_selector=selector, limit=1, _continue=token)
        paged += [p.metadata.name for p in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert paged == expected


def test_field_selectors(threaded: FakeApiServer, core: kubernetes.client.CoreV1Api) -> None:
    pods = threaded.objects("pods")
    pending = dict(pods[0], status={"phase": "Pending"})
    pending["spec"] = dict(pending["spec"], nodeName="node-2")
    threaded.update(pending)
    name = pending["metadata"]["name"]

    def names(selector: str) -> list[str]:
        found = core.list_pod_for_all_namespaces(field_selector=selector)
        return [p.metadata.name for p in found.items]

    assert names(f"metadata.name={name}") == [name]
    assert len(names("metadata.namespace=shop")) == 3
    assert names("metadata.namespace=default") == []
    assert names("status.phase=Pending") == [name]
    assert name not in names("status.phase!=Pending") and len(names("status.phase!=Pending")) == 2
    assert names("spec.nodeName==node-2,metadata.namespace=shop") == [name]
    namespaces = core.list_namespace(field_selector="metadata.name=shop").items
    assert [n.metadata.name for n in namespaces] == ["shop"]


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("labelSelector", "app in (web"),
        ("labelSelector", "a=b=c"),
        ("labelSelector", "bad key=x"),
        ("fieldSelector", "status.phase"),
        ("fieldSelector", "status..phase=x"),
    ],
)
def test_bad_list_parameters_are_400(
    core: kubernetes.client.CoreV1Api, param: str, value: str
) -> None:
    kwargs = {"labelSelector": "label_selector", "fieldSelector": "field_selector"}
    with pytest.raises(ApiException) as info:
        core.list_pod_for_all_namespaces(**{kwargs[param]: value})
    assert info.value.status == 400
    assert '"reason":"BadRequest"' in info.value.body


async def test_cluster_scope_and_bad_paths(http: aiohttp.ClientSession) -> None:
    async with http.get("/api/v1/nodes") as resp:
        nodes = await resp.json()
    assert [n["metadata"]["name"] for n in nodes["items"]] == ["node-1"]
    assert "namespace" not in nodes["items"][0]["metadata"]
    for path in (
        "/api/v1/namespaces/shop/nodes",
        "/api/v1/pods/web",
        "/api/v2/pods",
        "/api/v1/namespaces/shop/pods/x/log",
        "/nope",
    ):
        async with http.get(path) as resp:
            body = await resp.json()
        assert resp.status == 404, path
        assert body["kind"] == "Status" and body["reason"] == "NotFound"
