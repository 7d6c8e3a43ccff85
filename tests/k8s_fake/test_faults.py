"""Fault injection: every failure mode a MeshSync source has to survive, plus bearer tokens."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import kubernetes
import orjson
import pytest
from kubernetes.client.rest import ApiException
from meshsync_testkit.fake_apiserver import FakeApiServer


def cm(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "shop"},
    }


async def next_event(resp: aiohttp.ClientResponse, timeout: float = 5.0) -> dict[str, Any]:
    line = await asyncio.wait_for(resp.content.readline(), timeout)
    assert line, "watch stream ended"
    return orjson.loads(line)


def watch_params(server: FakeApiServer, **extra: str) -> dict[str, str]:
    return {"watch": "1", "resourceVersion": str(server.resource_version), **extra}


async def test_expire_watches(server: FakeApiServer, http: aiohttp.ClientSession) -> None:
    async with (
        http.get("/api/v1/configmaps", params=watch_params(server)) as a,
        http.get("/api/v1/namespaces/shop/pods", params=watch_params(server)) as b,
    ):
        server.create(cm("before"))
        assert (await next_event(a))["type"] == "ADDED"
        assert server.faults.expire_watches() == 2
        for resp in (a, b):
            event = await next_event(resp)
            assert event["type"] == "ERROR"
            status = event["object"]
            assert {k: status[k] for k in ("kind", "apiVersion", "status", "reason", "code")} == {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "reason": "Expired",
                "code": 410,
            }
            assert status["message"]
            assert await asyncio.wait_for(resp.content.read(), 5) == b""  # then it closes
    assert server.store.watchers() == []


async def test_compact_makes_old_resource_versions_expire(
    server: FakeApiServer, http: aiohttp.ClientSession
) -> None:
    old = str(server.resource_version)
    server.create(cm("a"))
    async with http.get("/api/v1/configmaps", params={"watch": "1", "resourceVersion": old}) as r:
        event = await next_event(r)  # history is still there: replayed
    assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "a")
    server.faults.compact()
    async with http.get("/api/v1/configmaps", params={"watch": "1", "resourceVersion": old}) as r:
        assert r.status == 200  # like kube-apiserver: the 410 comes inside the stream
        event = await next_event(r)
        assert (event["type"], event["object"]["code"]) == ("ERROR", 410)
        assert event["object"]["reason"] == "Expired"
        assert await asyncio.wait_for(r.content.read(), 5) == b""
    async with http.get("/api/v1/configmaps", params=watch_params(server)) as r:
        server.create(cm("b"))  # the current rv is still fine
        assert (await next_event(r))["object"]["metadata"]["name"] == "b"


async def test_history_is_bounded() -> None:
    srv = FakeApiServer(history_limit=5)
    await srv.start()
    try:
        old = str(srv.resource_version)
        for i in range(10):
            srv.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}"}})
        async with aiohttp.ClientSession(base_url=srv.url) as http:
            params = {"watch": "1", "resourceVersion": old}
            async with http.get("/api/v1/configmaps", params=params) as r:
                assert (await next_event(r))["object"]["code"] == 410
            params["resourceVersion"] = str(srv.resource_version - 5)
            async with http.get("/api/v1/configmaps", params=params) as r:
                names = [(await next_event(r))["object"]["metadata"]["name"] for _ in range(5)]
        assert names == ["c5", "c6", "c7", "c8", "c9"]
    finally:
        await srv.stop()


async def test_drop_connections_cuts_streams_abruptly(
    server: FakeApiServer, http: aiohttp.ClientSession
) -> None:
    async with http.get("/api/v1/configmaps", params=watch_params(server)) as resp:
        server.create(cm("x"))
        assert (await next_event(resp))["type"] == "ADDED"
        assert server.faults.drop_connections() == 1
        with pytest.raises(aiohttp.ClientPayloadError):
            # No ERROR event and no clean end of the chunked body: the payload is incomplete.
            await asyncio.wait_for(resp.content.read(), 5)
    async with http.get("/api/v1/namespaces/shop/configmaps") as resp:
        assert resp.status == 200  # the server itself is fine


async def test_forbid_and_allow(server: FakeApiServer, http: aiohttp.ClientSession) -> None:
    server.faults.forbid("secrets")
    server.faults.forbid("deployments", "apps")
    for path, params in (
        ("/api/v1/secrets", {}),
        ("/api/v1/namespaces/shop/secrets", {"watch": "1"}),
        ("/api/v1/namespaces/shop/secrets/web-db", {}),
        ("/apis/apps/v1/deployments", {}),
    ):
        async with http.get(path, params=params) as resp:
            body = await resp.json()
        assert resp.status == 403, path
        assert (body["kind"], body["reason"], body["code"]) == ("Status", "Forbidden", 403)
        assert "forbidden" in body["message"]
    async with http.get("/api/v1/configmaps") as resp:
        assert resp.status == 200
    async with http.get("/apis/apps/v1") as resp:  # still discoverable, like RBAC denials
        assert "deployments" in {r["name"] for r in (await resp.json())["resources"]}
    server.faults.allow("secrets")
    async with http.get("/api/v1/secrets") as resp:
        assert resp.status == 200


def test_forbidden_through_official_client(
    threaded: FakeApiServer, core: kubernetes.client.CoreV1Api
) -> None:
    threaded.faults.forbid("pods")
    with pytest.raises(ApiException) as info:
        core.list_pod_for_all_namespaces()
    assert info.value.status == 403
    with pytest.raises(ApiException) as info:
        core.read_namespaced_pod("web-7d9c6b8f5-x2k8p", "shop")
    assert info.value.status == 403
    threaded.faults.allow("pods")
    assert len(core.list_pod_for_all_namespaces().items) == 3


@pytest.mark.parametrize(
    ("status", "reason"),
    [(500, "InternalError"), (503, "ServiceUnavailable"), (429, "TooManyRequests")],
)
async def test_fail_next(
    server: FakeApiServer, http: aiohttp.ClientSession, status: int, reason: str
) -> None:
    server.faults.fail_next(2, status=status)
    for path in ("/api/v1", "/api/v1/pods"):
        async with http.get(path) as resp:
            body = await resp.json()
        assert resp.status == status
        assert (body["kind"], body["code"], body["reason"]) == ("Status", status, reason)
    async with http.get("/api/v1/pods") as resp:
        assert resp.status == 200


async def test_hang_and_resume_watches(server: FakeApiServer, http: aiohttp.ClientSession) -> None:
    params = watch_params(server, allowWatchBookmarks="true")
    async with http.get("/api/v1/configmaps", params=params) as resp:
        assert (await next_event(resp))["type"] == "BOOKMARK"  # alive: bookmarks every 0.2 s
        server.faults.hang_watches()
        # Drain anything already in flight, then expect silence despite new events.
        server.create(cm("during-hang"))
        with pytest.raises(asyncio.TimeoutError):
            while True:
                event = await next_event(resp, timeout=0.8)
                assert event["type"] == "BOOKMARK"  # at most one that raced the hang
        server.faults.resume_watches()
        event = await next_event(resp)
        assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "during-hang")


async def test_bearer_token() -> None:
    srv = FakeApiServer(token="s3cret")
    await srv.start()
    try:
        async with aiohttp.ClientSession(base_url=srv.url) as http:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
                async with http.get("/api/v1/pods", headers=headers) as resp:
                    body = await resp.json()
                assert resp.status == 401
                assert (body["kind"], body["reason"], body["code"]) == (
                    "Status",
                    "Unauthorized",
                    401,
                )
            good = {"Authorization": "Bearer s3cret"}
            async with http.get("/api/v1/namespaces", headers=good) as resp:
                assert resp.status == 200
            async with http.get("/healthz") as resp:
                assert resp.status == 200
    finally:
        await srv.stop()


def test_token_in_kubeconfig_works_for_official_client(tmp_path) -> None:
    with FakeApiServer.in_thread(token="abc") as srv:
        path = srv.write_kubeconfig(tmp_path / "kc", context="ctx", namespace="kube-system")
        client = kubernetes.config.new_client_from_config(config_file=str(path))
        try:
            names = [
                n.metadata.name for n in kubernetes.client.CoreV1Api(client).list_namespace().items
            ]
        finally:
            client.close()
        assert names == ["default", "kube-system"]
        assert srv.request_log[-1] == ("GET", "/api/v1/namespaces")
        _, active = kubernetes.config.list_kube_config_contexts(config_file=str(path))
        assert active["name"] == "ctx" and active["context"]["namespace"] == "kube-system"


async def test_request_log_is_bounded() -> None:
    srv = FakeApiServer(request_log_limit=3)
    await srv.start()
    try:
        async with aiohttp.ClientSession(base_url=srv.url) as http:
            for i in range(10):
                async with http.get(f"/api/v1/namespaces?limit={i + 1}") as resp:
                    assert resp.status == 200
        assert 3 <= len(srv.request_log) <= 6
        assert srv.request_log[-1] == ("GET", "/api/v1/namespaces?limit=10")
    finally:
        await srv.stop()


def test_tls_with_official_client(tmp_path) -> None:
    with FakeApiServer.in_thread(token="abc", tls=True) as srv:
        assert srv.url.startswith("https://127.0.0.1:") and srv.ca_pem
        path = srv.write_kubeconfig(tmp_path / "kc")
        client = kubernetes.config.new_client_from_config(config_file=str(path))
        try:
            nodes = kubernetes.client.CoreV1Api(client).list_namespace().items
        finally:
            client.close()
        assert [n.metadata.name for n in nodes] == ["default", "kube-system"]
