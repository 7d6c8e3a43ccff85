"""The fake API server held to the real one: every behaviour the Kubernetes source relies on,
asserted identically against both. A difference found here is fixed in the fake, or written
down as a deliberate simplification in its README (and excluded here by name, with the reason).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest
from meshsync_testkit.fake_apiserver import FakeApiServer

from tests.realkube.cluster import ControlPlane
from tests.realkube.endpoints import Endpoint
from tests.realkube.fixtures import eventually
from tests.realkube.objects import crd

AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
_names = itertools.count()


def _compaction_mark() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "compaction-mark", "namespace": "default"},
            "data": {"at": str(time.time())}}  # fmt: skip


def _real_compact(plane: ControlPlane) -> None:
    """History before now is gone: etcd compacted past it (the apiserver compacts every 5 s),
    and the apiserver restarted so that its watch cache, which outlives compaction by design,
    starts after it too."""
    rv = plane.api("GET", "/api/v1/namespaces/default/configmaps?limit=1")["metadata"][
        "resourceVersion"
    ]
    plane.apply(_compaction_mark())  # a write after the mark, to compact it under
    eventually(
        lambda: plane.request(
            "GET", f"/api/v1/namespaces/default/configmaps?resourceVersion={rv}"
            "&resourceVersionMatch=Exact&limit=1")[0] == 410,
        60, f"etcd compaction past resourceVersion {rv}",
    )  # fmt: skip
    plane.stop_apiserver()
    plane.start_apiserver()


def _fake_compact(fake: FakeApiServer) -> None:
    """The same procedure as on the real server: a write after the mark, then compaction."""
    fake.apply(_compaction_mark())
    fake.faults.compact()


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeApiServer]:
    with FakeApiServer.in_thread(bookmark_interval=0.5) as server:
        yield server


@pytest.fixture(params=["fake", "real"])
def endpoint(request: pytest.FixtureRequest) -> Endpoint:
    if request.param == "fake":
        fake: FakeApiServer = request.getfixturevalue("fake_server")
        return Endpoint("fake", fake.url, None, {}, lambda: _fake_compact(fake))
    plane: ControlPlane = request.getfixturevalue("real_cluster")
    return Endpoint("real", plane.url, plane._ssl(), {}, lambda: _real_compact(plane))


@pytest.fixture
def namespace(endpoint: Endpoint) -> Iterator[str]:
    name = f"diff{next(_names)}-{int(time.time() * 1000) % 10**8}"
    endpoint.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    yield name
    endpoint.request("DELETE", f"/api/v1/namespaces/{name}")


def configmap(name: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels or {}},
        "data": data,
    }


# -- discovery ----------------------------------------------------------------------------------


def test_core_discovery(endpoint: Endpoint) -> None:
    versions = endpoint.get("/api")
    assert versions["kind"] == "APIVersions" and versions["versions"] == ["v1"]
    resources = endpoint.get("/api/v1")
    assert resources["kind"] == "APIResourceList" and resources["groupVersion"] == "v1"
    by_name = {r["name"]: r for r in resources["resources"]}
    pods = by_name["pods"]
    assert pods["namespaced"] is True and pods["kind"] == "Pod"
    assert {"list", "watch", "get"} <= set(pods["verbs"])
    assert pods["shortNames"] == ["po"] and pods["singularName"] == "pod"
    assert by_name["namespaces"]["namespaced"] is False
    assert "pods/log" in by_name and "pods/status" in by_name


def test_group_discovery_and_preferred_versions(endpoint: Endpoint) -> None:
    groups = {g["name"]: g for g in endpoint.get("/apis")["groups"]}
    assert groups["apps"]["preferredVersion"]["groupVersion"] == "apps/v1"
    for name in (
        "batch",
        "networking.k8s.io",
        "discovery.k8s.io",
        "storage.k8s.io",
        "rbac.authorization.k8s.io",
        "apiextensions.k8s.io",
        "apiregistration.k8s.io",
        "coordination.k8s.io",
    ):
        assert name in groups, name
    apps = endpoint.get("/apis/apps/v1")
    assert {"deployments", "replicasets", "statefulsets", "daemonsets"} <= {
        r["name"] for r in apps["resources"]
    }


def test_aggregated_discovery(endpoint: Endpoint) -> None:
    answer = endpoint.request("GET", "/apis", accept=AGGREGATED)
    assert answer.status == 200
    assert "as=APIGroupDiscoveryList" in answer.headers["content-type"]
    document = answer.json()
    assert document["kind"] == "APIGroupDiscoveryList"
    assert document["apiVersion"] == "apidiscovery.k8s.io/v2"
    apps = next(g for g in document["items"] if g["metadata"]["name"] == "apps")
    v1 = next(v for v in apps["versions"] if v["version"] == "v1")
    deployments = next(r for r in v1["resources"] if r["resource"] == "deployments")
    assert deployments["scope"] == "Namespaced"
    assert deployments["responseKind"]["kind"] == "Deployment"


# -- errors -------------------------------------------------------------------------------------


def status_shape(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body.get(k) for k in ("kind", "apiVersion", "status", "reason", "code")}


def test_not_found_status(endpoint: Endpoint, namespace: str) -> None:
    answer = endpoint.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/absent")
    assert answer.status == 404
    body = answer.json()
    assert status_shape(body) == {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": "NotFound",
        "code": 404,
    }
    assert body["details"] == {"name": "absent", "kind": "configmaps"}
    assert body["message"] == 'configmaps "absent" not found'


def test_already_exists_status(endpoint: Endpoint, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    endpoint.create(path, configmap("twice"))
    answer = endpoint.request("POST", path, configmap("twice"))
    assert answer.status == 409
    body = answer.json()
    assert status_shape(body)["reason"] == "AlreadyExists"
    assert body["details"] == {"name": "twice", "kind": "configmaps"}
    assert body["message"] == 'configmaps "twice" already exists'


def test_unknown_resource_is_404(endpoint: Endpoint) -> None:
    answer = endpoint.request("GET", "/api/v1/frobnicators")
    assert answer.status == 404
    answer = endpoint.request("GET", "/apis/nosuch.example.com/v1")
    assert answer.status == 404


def test_bad_label_selector_is_400(endpoint: Endpoint, namespace: str) -> None:
    answer = endpoint.request(
        "GET", f"/api/v1/namespaces/{namespace}/configmaps?labelSelector=a%3D%3D%3Db"
    )
    assert answer.status == 400
    assert status_shape(answer.json())["reason"] == "BadRequest"


# -- lists, pagination, selectors -----------------------------------------------------------------


def test_list_shape(endpoint: Endpoint, namespace: str) -> None:
    endpoint.create(f"/api/v1/namespaces/{namespace}/configmaps", configmap("one", a="1"))
    listing = endpoint.get(f"/api/v1/namespaces/{namespace}/configmaps")
    assert listing["kind"] == "ConfigMapList" and listing["apiVersion"] == "v1"
    assert isinstance(listing["metadata"]["resourceVersion"], str)
    mine = [i for i in listing["items"] if i["metadata"]["name"] == "one"]
    assert len(mine) == 1
    assert "kind" not in mine[0] and "apiVersion" not in mine[0]  # list items come bare
    meta = mine[0]["metadata"]
    assert {"uid", "resourceVersion", "creationTimestamp", "namespace"} <= set(meta)


def test_pagination(endpoint: Endpoint, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    for i in range(5):
        endpoint.create(path, configmap(f"page-{i}"))
    names: list[str] = []
    first = endpoint.get(f"{path}?limit=2")
    assert first["metadata"]["continue"] and first["metadata"]["remainingItemCount"] >= 3
    page, pages = first, 1
    names += [i["metadata"]["name"] for i in page["items"]]
    while page["metadata"].get("continue"):
        page = endpoint.get(f"{path}?limit=2&continue={page['metadata']['continue']}")
        names += [i["metadata"]["name"] for i in page["items"]]
        pages += 1
    assert "remainingItemCount" not in page["metadata"]
    assert [n for n in names if n.startswith("page-")] == [f"page-{i}" for i in range(5)]
    assert pages == -(-len(names) // 2)


def test_selectors(endpoint: Endpoint, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    endpoint.create(path, configmap("a", {"tier": "web"}))
    endpoint.create(path, configmap("b", {"tier": "db"}))
    endpoint.create(path, configmap("c"))

    def names(query: str) -> list[str]:
        return sorted(i["metadata"]["name"] for i in endpoint.get(f"{path}?{query}")["items"])

    assert names("labelSelector=tier%3Dweb") == ["a"]
    assert names("labelSelector=tier%21%3Dweb") == ["b", "c"] or names(
        "labelSelector=tier%21%3Dweb"
    ) == sorted(n for n in names("") if n != "a")
    assert names("labelSelector=tier") == ["a", "b"]
    assert names("labelSelector=%21tier") == [n for n in names("") if n not in ("a", "b")]
    assert names("labelSelector=tier+in+%28db%2Cweb%29") == ["a", "b"]
    assert names("fieldSelector=metadata.name%3Db") == ["b"]


def test_expired_continue_token(endpoint: Endpoint, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    for i in range(3):
        endpoint.create(path, configmap(f"x-{i}"))
    token = endpoint.get(f"{path}?limit=1")["metadata"]["continue"]
    endpoint.compact()
    answer = endpoint.request("GET", f"{path}?limit=1&continue={token}")
    assert answer.status == 410
    body = answer.json()
    assert status_shape(body)["reason"] == "Expired"
    assert body["metadata"].get("continue")  # a fresh token to list on inconsistently


# -- watches -------------------------------------------------------------------------------------


def test_watch_events(endpoint: Endpoint, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    rv = endpoint.get(path)["metadata"]["resourceVersion"]
    with endpoint.watch(f"{path}?watch=1&resourceVersion={rv}&timeoutSeconds=20") as events:
        created = endpoint.create(path, configmap("w", a="1"))
        updated = endpoint.request("PUT", f"{path}/w", {**created, "data": {"a": "2"}}).json()
        endpoint.request("DELETE", f"{path}/w")
        seen = [next(events) for _ in range(3)]
    assert [e["type"] for e in seen] == ["ADDED", "MODIFIED", "DELETED"]
    for event in seen:
        assert event["object"]["kind"] == "ConfigMap" and event["object"]["apiVersion"] == "v1"
    assert (
        seen[0]["object"]["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    )
    assert seen[1]["object"]["data"] == {"a": "2"}
    assert (
        seen[1]["object"]["metadata"]["resourceVersion"] == updated["metadata"]["resourceVersion"]
    )
    # DELETED carries the last state, at a resourceVersion newer than the last update
    assert int(seen[2]["object"]["metadata"]["resourceVersion"]) > int(
        updated["metadata"]["resourceVersion"]
    )


def test_watch_from_compacted_version_is_gone(endpoint: Endpoint, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    endpoint.create(path, configmap("old"))
    rv = endpoint.get(path)["metadata"]["resourceVersion"]
    endpoint.create(path, configmap("newer"))
    endpoint.compact()
    with endpoint.watch(f"{path}?watch=1&resourceVersion={rv}&timeoutSeconds=10") as events:
        first = next(events)
    # kube answers 200 and one ERROR event holding a 410 Status (HTTP 410 is allowed too)
    assert first["type"] in ("ERROR", "HTTP")
    assert first["object"]["kind"] == "Status" and first["object"]["code"] == 410
    assert first["object"]["reason"] in ("Expired", "Gone")


def test_streaming_list_initial_events_end_bookmark(endpoint: Endpoint, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    for i in range(3):
        endpoint.create(path, configmap(f"s-{i}"))
    query = (
        "watch=1&sendInitialEvents=true&allowWatchBookmarks=true"
        "&resourceVersionMatch=NotOlderThan&resourceVersion=&timeoutSeconds=20"
    )
    with endpoint.watch(f"{path}?{query}") as events:
        seen = []
        for event in events:
            seen.append(event)
            if event["type"] == "BOOKMARK":
                break
    added = [e["object"]["metadata"]["name"] for e in seen if e["type"] == "ADDED"]
    # a real cluster also publishes kube-root-ca.crt into every namespace (the fake does not)
    assert sorted(n for n in added if n.startswith("s-")) == ["s-0", "s-1", "s-2"]
    bookmark = seen[-1]["object"]
    assert bookmark["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert bookmark["kind"] == "ConfigMap" and bookmark["metadata"]["resourceVersion"]


# -- custom resources ------------------------------------------------------------------------------


def test_crd_registration_and_removal(endpoint: Endpoint, namespace: str) -> None:
    group = f"{namespace}.example.com"
    endpoint.create(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        crd(group, "widgets", "Widget", [("v1beta1", True, False), ("v1", True, True)], ("wd",)),
    )

    def served() -> Any:
        # discovery converges: a first answer may list the versions one sync at a time
        answer = endpoint.request("GET", f"/apis/{group}")
        document = answer.json() if answer.status == 200 else {}
        return document if len(document.get("versions", [])) == 2 else None

    document = eventually(served, 30, f"discovery of {group}")
    assert document["kind"] == "APIGroup"
    assert document["preferredVersion"]["version"] == "v1"
    assert [v["version"] for v in document["versions"]] == ["v1", "v1beta1"]
    # the group's document and each version's resource list are separate handlers on a real
    # server: the version can still answer 404 right after the group lists it
    version = f"/apis/{group}/v1"
    eventually(lambda: endpoint.request("GET", version).status == 200, 30, f"{version}")
    resources = endpoint.get(version)["resources"]
    widgets = next(r for r in resources if r["name"] == "widgets")
    assert widgets["kind"] == "Widget" and widgets["namespaced"] is True
    assert widgets["shortNames"] == ["wd"]
    path = f"/apis/{group}/v1/namespaces/{namespace}/widgets"
    eventually(lambda: endpoint.request("GET", path).status == 200, 30, "the widgets endpoint")
    endpoint.create(
        path,
        {
            "apiVersion": f"{group}/v1",
            "kind": "Widget",
            "metadata": {"name": "w1"},
            "spec": {"size": 3},
        },
    )
    assert endpoint.get(f"/apis/{group}/v1beta1/namespaces/{namespace}/widgets/w1")["spec"] == {
        "size": 3
    }
    # custom resources are unstructured: their list items keep apiVersion (as read) and kind
    (item,) = endpoint.get(f"/apis/{group}/v1beta1/namespaces/{namespace}/widgets")["items"]
    assert (item["apiVersion"], item["kind"]) == (f"{group}/v1beta1", "Widget")
    endpoint.request(
        "DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.{group}"
    )
    eventually(
        lambda: endpoint.request("GET", f"/apis/{group}").status == 404,
        30,
        f"{group} to leave discovery",
    )
