"""Watches: the official client's Watch, raw streams for bookmarks, timeouts and selectors."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import kubernetes
import orjson
import pytest
from kubernetes.client.rest import ApiException
from meshsync_testkit.fake_apiserver import FakeApiServer

CM = {"apiVersion": "v1", "kind": "ConfigMap"}


def cm(name: str, namespace: str = "shop", **fields: Any) -> dict[str, Any]:
    return {**CM, "metadata": {"name": name, "namespace": namespace}, **fields}


async def next_event(resp: aiohttp.ClientResponse, timeout: float = 5.0) -> dict[str, Any]:
    line = await asyncio.wait_for(resp.content.readline(), timeout)
    assert line, "watch stream ended"
    return orjson.loads(line)


def test_official_watch_sees_added_modified_deleted(
    threaded: FakeApiServer, core: kubernetes.client.CoreV1Api
) -> None:
    rv = core.list_namespaced_config_map("shop").metadata.resource_version
    threaded.create(cm("w", data={"a": "1"}))  # after rv: replayed from history
    seen: list[tuple[str, str, int]] = []
    watch = kubernetes.watch.Watch()
    for event in watch.stream(
        core.list_namespaced_config_map, "shop", resource_version=rv, timeout_seconds=10
    ):
        obj = event["object"]
        seen.append((event["type"], obj.metadata.name, int(obj.metadata.resource_version)))
        if event["type"] == "ADDED":
            threaded.update(cm("w", data={"a": "2"}))
        elif event["type"] == "MODIFIED":
            assert obj.data == {"a": "2"}
            threaded.delete(cm("w"))
        else:
            watch.stop()
    assert [(t, n) for t, n, _ in seen] == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]
    rvs = [r for _, _, r in seen]
    assert rvs == sorted(rvs) and len(set(rvs)) == 3  # DELETED carries a new resourceVersion


def test_official_watch_gets_410_after_compaction(
    threaded: FakeApiServer, core: kubernetes.client.CoreV1Api
) -> None:
    rv = core.list_namespaced_config_map("shop").metadata.resource_version
    threaded.create(cm("later"))
    threaded.faults.compact()
    watch = kubernetes.watch.Watch()
    with pytest.raises(ApiException) as info:
        for _ in watch.stream(
            core.list_namespaced_config_map, "shop", resource_version=rv, timeout_seconds=5
        ):
            pass
    assert info.value.status == 410
    assert "Expired" in info.value.reason


def test_official_watch_without_rv_starts_with_current_state(
    threaded: FakeApiServer, core: kubernetes.client.CoreV1Api
) -> None:
    names = []
    watch = kubernetes.watch.Watch()
    for event in watch.stream(core.list_pod_for_all_namespaces, timeout_seconds=10):
        assert event["type"] == "ADDED"
        names.append(event["object"].metadata.name)
        if len(names) == 3:
            watch.stop()
    assert names == [p["metadata"]["name"] for p in threaded.objects("pods")]


async def test_watch_from_zero_lists_then_follows(
    server: FakeApiServer, http: aiohttp.ClientSession
) -> None:
    params = {"watch": "1", "resourceVersion": "0"}
    async with http.get("/api/v1/namespaces/shop/configmaps", params=params) as resp:
        assert resp.status == 200 and resp.content_type == "application/json"
        first = await next_event(resp)
        assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "web-config")
        server.create(cm("fresh"))
        ev = await next_event(resp)
        assert (ev["type"], ev["object"]["metadata"]["name"]) == ("ADDED", "fresh")
        assert ev["object"]["kind"] == "ConfigMap" and ev["object"]["apiVersion"] == "v1"


async def test_bookmarks(server: FakeApiServer, http: aiohttp.ClientSession) -> None:
    rv = str(server.resource_version)
    params = {"watch": "true", "resourceVersion": rv, "allowWatchBookmarks": "true"}
    async with http.get("/api/v1/pods", params=params) as resp:
        bookmark = await next_event(resp)
        assert bookmark == {
            "type": "BOOKMARK",
            "object": {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": rv}},
        }
        server.create(cm("not-a-pod"))  # advances the global rv without a pod event
        bookmark = await next_event(resp)
        assert bookmark["type"] == "BOOKMARK"
        assert bookmark["object"]["metadata"]["resourceVersion"] == str(server.resource_version)
    # Without allowWatchBookmarks there are none: the stream just times out silently.
    params = {"watch": "true", "resourceVersion": rv, "timeoutSeconds": "1"}
    async with http.get("/api/v1/pods", params=params) as resp:
        assert await asyncio.wait_for(resp.read(), 5) == b""


async def test_bookmark_interval_is_configurable() -> None:
    srv = FakeApiServer(bookmark_interval=0.05)
    await srv.start()
    try:
        async with aiohttp.ClientSession(base_url=srv.url) as http:
            params = {"watch": "1", "allowWatchBookmarks": "true", "resourceVersion": "1"}
            async with http.get("/api/v1/configmaps", params=params) as resp:
                events = [await next_event(resp, timeout=1.0) for _ in range(5)]
        assert {e["type"] for e in events} == {"BOOKMARK"}
    finally:
        await srv.stop()


async def test_timeout_seconds_closes_cleanly(
    server: FakeApiServer, http: aiohttp.ClientSession
) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    params = {"watch": "1", "timeoutSeconds": "1", "resourceVersion": str(server.resource_version)}
    async with http.get("/api/v1/namespaces/shop/pods", params=params) as resp:
        server.create(cm("x"))  # other resources do not extend or end the stream
        body = await asyncio.wait_for(resp.read(), 10)  # raises if the stream ends uncleanly
    assert body == b""
    assert 0.9 <= loop.time() - start < 5


async def test_selector_watch_turns_modifications_into_added_and_deleted(
    server: FakeApiServer, http: aiohttp.ClientSession
) -> None:
    server.create(cm("s", labels=None))
    params = {
        "watch": "1",
        "labelSelector": "team=blue",
        "resourceVersion": str(server.resource_version),
    }
    async with http.get("/api/v1/namespaces/shop/configmaps", params=params) as resp:
        labelled = cm("s")
        labelled["metadata"]["labels"] = {"team": "blue"}
        server.update(labelled)  # enters the selection -> ADDED
        labelled["data"] = {"k": "v"}
        server.update(labelled)  # stays in -> MODIFIED
        server.update(cm("s"))  # leaves the selection -> DELETED
        server.create(cm("other"))  # never selected -> nothing
        labelled["metadata"]["name"] = "last"
        server.create(labelled)
        types = [
            (e["type"], e["object"]["metadata"]["name"])
            for e in [await next_event(resp) for _ in range(4)]
        ]
    assert types == [("ADDED", "s"), ("MODIFIED", "s"), ("DELETED", "s"), ("ADDED", "last")]


async def test_field_selector_watch_by_name(
    server: FakeApiServer, http: aiohttp.ClientSession
) -> None:
    params = {"watch": "1", "fieldSelector": "metadata.name=target"}
    async with http.get("/api/v1/configmaps", params=params) as resp:
        server.create(cm("decoy"))
        server.create(cm("target", namespace="default"))
        event = await next_event(resp)
    assert event["type"] == "ADDED"
    assert event["object"]["metadata"]["namespace"] == "default"
    assert event["object"]["metadata"]["name"] == "target"


async def test_send_initial_events_ends_with_marked_bookmark(
    server: FakeApiServer, http: aiohttp.ClientSession
) -> None:
    params = {
        "watch": "1",
        "sendInitialEvents": "true",
        "resourceVersionMatch": "NotOlderThan",
        "allowWatchBookmarks": "true",
    }
    async with http.get("/api/v1/namespaces/shop/pods", params=params) as resp:
        events = [await next_event(resp) for _ in range(4)]
    assert [e["type"] for e in events] == ["ADDED", "ADDED", "ADDED", "BOOKMARK"]
    marker = events[-1]["object"]["metadata"]
    assert marker["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert marker["resourceVersion"] == str(server.resource_version)


async def test_deleting_a_crd_ends_watches_on_its_objects(
    server: FakeApiServer, http: aiohttp.ClientSession
) -> None:
    params = {"watch": "1", "resourceVersion": str(server.resource_version)}
    async with http.get("/apis/example.com/v1/widgets", params=params) as resp:
        server.delete(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": "widgets.example.com"},
            }
        )
        body = await asyncio.wait_for(resp.read(), 5)
    events = [orjson.loads(line) for line in body.splitlines()]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("DELETED", "blue"),
        ("DELETED", "red"),
    ]


def test_dynamic_client_crd_objects(
    threaded: FakeApiServer, api_client: kubernetes.client.ApiClient
) -> None:
    dyn = kubernetes.dynamic.DynamicClient(api_client)
    widgets = dyn.resources.get(api_version="example.com/v1", kind="Widget")
    listed = widgets.get(namespace="shop")
    assert [w.metadata.name for w in listed.items] == ["blue", "red"]
    created = widgets.create(
        body={
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "green"},
            "spec": {"size": "m"},
        },
        namespace="shop",
    )
    assert created.metadata.generation == 1
    threaded.update({**threaded.get(created.to_dict()), "spec": {"size": "l"}})
    seen = []
    for event in widgets.watch(
        namespace="shop", resource_version=created.metadata.resourceVersion, timeout=10
    ):
        seen.append((event["type"], event["object"].metadata.name, event["object"].spec.size))
        break
    assert seen == [("MODIFIED", "green", "l")]
    assert threaded.get(created.to_dict())["metadata"]["generation"] == 2
    meshsyncs = dyn.resources.get(api_version="meshery.io/v1alpha1", kind="MeshSync")
    assert meshsyncs.get().items == []


async def test_watch_single_object_and_future_resource_version(
    server: FakeApiServer, http: aiohttp.ClientSession
) -> None:
    future = str(server.resource_version + 2)
    # The item path form (/watch/namespaces/<ns>/configmaps/<name>) watches one object.
    async with http.get(
        "/api/v1/watch/namespaces/shop/configmaps/web-config", params={"resourceVersion": future}
    ) as resp:
        server.create(cm("other"))  # rv+1: another object
        server.update(cm("web-config", data={"v": "1"}))  # rv+2: not after the start rv
        server.update(cm("web-config", data={"v": "2"}))  # rv+3: delivered
        event = await next_event(resp)
    assert event["type"] == "MODIFIED" and event["object"]["data"] == {"v": "2"}
    async with http.get(
        "/api/v1/namespaces/shop/configmaps", params={"watch": "1", "resourceVersion": "abc"}
    ) as resp:
        assert (resp.status, (await resp.json())["reason"]) == (400, "BadRequest")
