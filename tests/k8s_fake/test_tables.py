"""meta.k8s.io/v1 Table responses (what kubectl get asks for) and their age strings."""

from __future__ import annotations

import datetime as dt

import aiohttp
import pytest
from meshsync_testkit.fake_apiserver import FakeApiServer
from meshsync_testkit.fake_apiserver.tables import human_age

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


async def test_list_as_table(server: FakeApiServer, http: aiohttp.ClientSession) -> None:
    async with http.get("/api/v1/namespaces/shop/pods", headers={"Accept": TABLE}) as resp:
        table = await resp.json()
    assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age"]
    assert table["metadata"]["resourceVersion"] == str(server.resource_version)
    names = [row["cells"][0] for row in table["rows"]]
    assert names == [p["metadata"]["name"] for p in server.objects("pods")]
    partial = table["rows"][0]["object"]
    assert partial["kind"] == "PartialObjectMetadata"
    assert partial["metadata"]["namespace"] == "shop" and "spec" not in partial


@pytest.mark.parametrize(("include", "expected"), [("Object", "Pod"), ("None", None)])
async def test_table_include_object(
    http: aiohttp.ClientSession, include: str, expected: str | None
) -> None:
    params = {"includeObject": include, "limit": "1"}
    async with http.get("/api/v1/pods", headers={"Accept": TABLE}, params=params) as resp:
        table = await resp.json()
    assert len(table["rows"]) == 1 and table["metadata"]["continue"]
    row = table["rows"][0]
    assert (row["object"]["kind"] if "object" in row else None) == expected


async def test_get_one_as_table(http: aiohttp.ClientSession) -> None:
    async with http.get("/api/v1/nodes/node-1", headers={"Accept": TABLE}) as resp:
        table = await resp.json()
    assert [r["cells"][0] for r in table["rows"]] == ["node-1"]


async def test_plain_json_without_table_accept(http: aiohttp.ClientSession) -> None:
    async with http.get("/api/v1/nodes", headers={"Accept": "application/json"}) as resp:
        assert (await resp.json())["kind"] == "NodeList"


@pytest.mark.parametrize(
    ("seconds", "age"),
    [(5, "5s"), (119, "119s"), (150, "2m30s"), (600, "10m"), (3 * 3600 + 120, "3h2m"),
     (9 * 3600, "9h"), (3 * 86400 + 3600, "3d1h"), (40 * 86400, "40d"),
     (800 * 86400, "2y70d")],
)  # fmt: skip
def test_human_age(seconds: int, age: str) -> None:
    now = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)
    created = (now - dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert human_age(created, now) == age
    assert human_age(None, now) == "<unknown>"
