"""What the real API server serves, changing under a running source: CustomResourceDefinitions
with several versions, created, re-versioned and deleted at run time; the MeshSync custom
resource (meshsyncs.meshery.io) with its whitelist and blacklist, changed and deleted at run
time; and a cluster lacking a group (an apiserver started with ``--runtime-config``).

The watches use production's slow retry (a minute after a 404 or 403), so that a watch started
before its resource is served shows up as a minute's delay instead of being hidden by a fast
test retry.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from meshsync_k8s.source import KubernetesSource

from meshsync_core import ConfigError, Event, EventType, Options
from tests.k8s.conftest import FAST, Running, fold, start_source, wait_until
from tests.realkube.cluster import ControlPlane
from tests.realkube.fixtures import eventually
from tests.realkube.objects import crd
from tests.realkube.test_source import DEFAULT_SET

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
#: FAST, except for production's slow retry; watches resumed every 30-60 s by the server.
TUNING = replace(FAST, slow_retry=60.0, inactivity_timeout=90.0)
SYNC_TIMEOUT = 60.0
#: How long a change may take to come through (well under TUNING.slow_retry).
FLOW_TIMEOUT = 20.0
# -- helpers -------------------------------------------------------------------------------------


def condition(obj: dict[str, Any], kind: str) -> str | None:
    for item in (obj.get("status") or {}).get("conditions") or ():
        if item.get("type") == kind:
            return str(item.get("status"))
    return None


def wait_gone(plane: ControlPlane, path: str, timeout: float = 60.0) -> None:
    """Until ``path`` answers 404 (a deleted CRD or namespace lingers while it is emptied)."""
    eventually(lambda: plane.request("GET", path)[0] == 404, timeout, f"{path} to be gone")


def wait_established(plane: ControlPlane, name: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = plane.api("GET", f"{CRDS}/{name}")
        return obj if condition(obj, "Established") == "True" else None

    return eventually(check, 30, f"CRD {name} to be established")


@contextlib.contextmanager
def installed(plane: ControlPlane, definition: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A CRD created and established for the block; deleted (and waited for) afterwards."""
    path = f"{CRDS}/{definition['metadata']['name']}"
    wait_gone(plane, path)  # a CRD of the same name still being deleted by an earlier test
    plane.apply(definition)
    try:
        yield wait_established(plane, definition["metadata"]["name"])
    finally:
        plane.api("DELETE", path, ok=(200, 202, 404))
        wait_gone(plane, path)


def custom(group: str, version: str, kind: str, namespace: str, name: str, **spec: Any) -> Any:
    return {
        "apiVersion": f"{group}/{version}",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def of(running: Running, group: str, plural: str) -> list[Event]:
    return [
        e
        for e in running.sink.events
        if e.resource.group == group and e.resource.plural == plural and e.uid
    ]


def log_lines(caplog: pytest.LogCaptureFixture, *parts: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if all(p in r.getMessage() for p in parts)]


async def stop_all(running: Running) -> None:
    if not running.task.done():
        await running.stop()


# -- CustomResourceDefinitions -------------------------------------------------------------------


async def test_crd_present_before_start_is_watched_at_its_storage_version(
    real_cluster: ControlPlane,
    real_kubeconfig: Path,
    real_namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """v1 is listed first and preferred by discovery; v1beta1 is the storage version."""
    caplog.set_level(logging.INFO, logger="meshsync")
    group = f"{real_namespace}.before.example.com"
    definition = crd(
        group,
        "widgets",
        "Widget",
        [("v1", True, False), ("v1beta1", True, True), ("v2alpha1", False, False)],
    )
    with installed(real_cluster, definition):
        base = f"/apis/{group}/v1/namespaces/{real_namespace}/widgets"
        eventually(lambda: real_cluster.request("GET", base)[0] == 200, 30, "widgets served")
        for name in ("w1", "w2"):
            real_cluster.apply(custom(group, "v1", "Widget", real_namespace, name, size=1))
        preferred = real_cluster.api("GET", f"/apis/{group}")["preferredVersion"]["version"]
        assert preferred == "v1"  # so that "storage" and "preferred" are told apart
        # Twice: with the default set, and named on the command line (kubectl's plural.group),
        # which resolves through discovery's preferred version until the CRD list is in.
        for options in ({}, {"resources": [f"widgets.{group}"]}):
            running = start_source(real_kubeconfig, TUNING, namespaces=[real_namespace], **options)
            try:
                await running.synced(SYNC_TIMEOUT)
                assert f"widgets.v1beta1.{group}" in running.source.watched()
                events = of(running, group, "widgets")
                assert sorted(e.name for e in events) == ["w1", "w2"], options
                assert {e.type for e in events} == {EventType.ADDED}
                assert {e.resource.version for e in events} == {"v1beta1"}, options
                assert {e.object["apiVersion"] for e in events} == {f"{group}/v1beta1"}, options
            finally:
                await stop_all(running)
        assert not log_lines(caplog, "widgets", "not found"), caplog.text


async def test_crd_created_reversioned_and_deleted_at_run_time(
    real_cluster: ControlPlane,
    real_kubeconfig: Path,
    real_namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="meshsync")
    group = f"{real_namespace}.runtime.example.com"
    key = (group, "gadgets")
    running = start_source(real_kubeconfig, TUNING, namespaces=[real_namespace])
    try:
        await running.synced(SYNC_TIMEOUT)
        assert not of(running, group, "gadgets")
        # storage on the second listed version, the first one served too
        definition = crd(
            group, "gadgets", "Gadget", [("v1alpha1", True, False), ("v1", True, True)]
        )
        with installed(real_cluster, definition):
            collection = f"/apis/{group}/v1alpha1/namespaces/{real_namespace}/gadgets"
            eventually(lambda: real_cluster.request("GET", collection)[0] == 200, 30, "served")
            for name in ("g1", "g2"):
                real_cluster.apply(custom(group, "v1alpha1", "Gadget", real_namespace, name, n=1))
            await wait_until(
                lambda: len(of(running, group, "gadgets")) == 2, FLOW_TIMEOUT, "both gadgets ADDED"
            )
            events = of(running, group, "gadgets")
            assert [e.type for e in events] == [EventType.ADDED, EventType.ADDED]
            assert {e.object["apiVersion"] for e in events} == {f"{group}/v1"}
            assert running.source.watched().count(f"gadgets.v1.{group}") == 1

            # A change comes through at the storage version.
            real_cluster.apply(custom(group, "v1", "Gadget", real_namespace, "g1", n=2))
            await wait_until(
                lambda: len(of(running, group, "gadgets")) == 3, FLOW_TIMEOUT, "g1 MODIFIED"
            )
            modified = of(running, group, "gadgets")[-1]
            assert (modified.type, modified.name) == (EventType.MODIFIED, "g1")
            assert modified.object["apiVersion"] == f"{group}/v1"
            assert modified.object["spec"] == {"n": 2}

            # The storage version moves to v1alpha1: the watch follows, re-emitting nothing.
            moved = crd(group, "gadgets", "Gadget", [("v1alpha1", True, True), ("v1", True, False)])
            real_cluster.apply(moved)

            def relisted() -> bool:
                watchers = running.source.watchers.get(key) or []
                return bool(watchers) and all(
                    w.api.version == "v1alpha1" and w.listed and w.lists for w in watchers
                )

            await wait_until(relisted, FLOW_TIMEOUT, "the gadgets watch at v1alpha1, listed")
            # Nothing re-emitted that did not change: an event after the move would need a new
            # resourceVersion (nothing rewrites the objects here; a storage migration would).
            emitted = {e.uid: e.object["metadata"]["resourceVersion"] for e in events}
            emitted[modified.uid] = modified.object["metadata"]["resourceVersion"]
            for event in of(running, group, "gadgets")[3:]:
                assert event.type is EventType.MODIFIED, event.describe()
                assert event.object["metadata"]["resourceVersion"] != emitted[event.uid]
                emitted[event.uid] = event.object["metadata"]["resourceVersion"]
            listed = real_cluster.api("GET", collection)["items"]
            server = {i["metadata"]["uid"]: i["metadata"]["resourceVersion"] for i in listed}
            assert server == emitted
            assert f"gadgets.v1alpha1.{group}" in running.source.watched()
            assert f"gadgets.v1.{group}" not in running.source.watched()
            real_cluster.apply(custom(group, "v1alpha1", "Gadget", real_namespace, "g2", n=3))

            def g2_changed() -> Event | None:
                return next(
                    (
                        e
                        for e in reversed(of(running, group, "gadgets"))
                        if e.name == "g2" and e.object.get("spec") == {"n": 3}
                    ),
                    None,
                )

            await wait_until(lambda: g2_changed() is not None, FLOW_TIMEOUT, "g2 MODIFIED")
            last = g2_changed()
            assert last is not None and last.type is EventType.MODIFIED
            assert last.object["apiVersion"] == f"{group}/v1alpha1"
            uids = {e.uid for e in of(running, group, "gadgets")}
            # never a 404 for a resource not served yet (and never the minute's wait after one)
            assert not log_lines(caplog, "gadgets", "not found"), caplog.text
        # Deleted (the block waited until the server had removed it): DELETED for each object.
        # (the source logs this once the watch has stopped and its DELETED events are out)
        await wait_until(
            lambda: log_lines(caplog, "stopped watching gadgets (CRD deleted)"),
            FLOW_TIMEOUT,
            "the gadgets watch to stop",
        )
        assert key not in running.source.watchers
        view = fold(running.sink.events)  # no duplicate ADDED, no DELETED of unknown objects
        assert not uids & set(view)
        deleted = [e for e in of(running, group, "gadgets") if e.type is EventType.DELETED]
        assert sorted(e.name for e in deleted) == ["g1", "g2"]
    finally:
        await stop_all(running)


async def test_crd_not_established_is_not_watched_until_it_is(
    real_cluster: ControlPlane,
    real_kubeconfig: Path,
    real_namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A CRD whose names conflict with another CRD's is never Established, and its resource is
    not served (404). It is watched the moment the conflict is gone, not a slow retry later."""
    caplog.set_level(logging.INFO, logger="meshsync")
    group = f"{real_namespace}.conflict.example.com"
    first = crd(group, "alphas", "Alpha", [("v1", True, True)])
    second = crd(group, "betas", "Alpha", [("v1", True, True)])  # the same kind: names refused
    second_path = f"{CRDS}/betas.{group}"
    betas = f"/apis/{group}/v1/namespaces/{real_namespace}/betas"
    running = start_source(real_kubeconfig, TUNING, namespaces=[real_namespace])
    try:
        await running.synced(SYNC_TIMEOUT)
        with installed(real_cluster, first):
            wait_gone(real_cluster, second_path)
            real_cluster.apply(second)

            def refused() -> dict[str, Any] | None:
                obj = real_cluster.api("GET", second_path)
                return obj if condition(obj, "NamesAccepted") == "False" else None

            assert condition(eventually(refused, 30, "names refused"), "Established") != "True"
            assert real_cluster.request("GET", betas)[0] == 404
            await wait_until(
                lambda: f"alphas.v1.{group}" in running.source.watched(),
                FLOW_TIMEOUT,
                "the established CRD watched",
            )
            assert f"betas.v1.{group}" not in running.source.watched()
        # The first CRD is gone: the second one's names are accepted, it is established.
        wait_established(real_cluster, f"betas.{group}")
        eventually(lambda: real_cluster.request("GET", betas)[0] == 200, 30, "betas served")
        # (kind Alpha, resource betas: apply() would derive the path from the kind)
        real_cluster.api("POST", betas, custom(group, "v1", "Alpha", real_namespace, "b1"))
        await wait_until(
            lambda: [e.name for e in of(running, group, "betas")] == ["b1"],
            FLOW_TIMEOUT,
            "b1 ADDED (well before a slow retry)",
        )
        assert not log_lines(caplog, "betas", "not found"), caplog.text
        fold(running.sink.events)
    finally:
        await stop_all(running)
        real_cluster.api("DELETE", second_path, ok=(200, 202, 404))
        wait_gone(real_cluster, second_path)


# -- the MeshSync custom resource ----------------------------------------------------------------

MESHSYNC_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "meshsyncs.meshery.io"},
    "spec": {
        "group": "meshery.io",
        "scope": "Namespaced",
        "names": {
            "plural": "meshsyncs",
            "singular": "meshsync",
            "kind": "MeshSync",
            "listKind": "MeshSyncList",
        },
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                # the operator's shape: spec["watch-list"] is ConfigMap-like, its data strings
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "broker": {
                                        "type": "object",
                                        "x-kubernetes-preserve-unknown-fields": True,
                                    },
                                    "size": {"type": "integer", "format": "int32"},
                                    "version": {"type": "string"},
                                    "watch-list": {
                                        "type": "object",
                                        "properties": {
                                            "data": {
                                                "type": "object",
                                                "additionalProperties": {"type": "string"},
                                            },
                                        },
                                        "x-kubernetes-preserve-unknown-fields": True,
                                    },
                                },
                            },
                            "status": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                        },
                    }
                },
            }
        ],
    },
}
MESHSYNC_CR = "/apis/meshery.io/v1alpha1/namespaces/meshery/meshsyncs/meshery-meshsync"


def meshsync_cr(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "meshery.io/v1alpha1",
        "kind": "MeshSync",
        "metadata": {"name": "meshery-meshsync", "namespace": "meshery"},
        "spec": {"watch-list": {"data": data}},
    }


@pytest.fixture
def meshsync_crd(real_cluster: ControlPlane) -> Iterator[ControlPlane]:
    """The MeshSync CRD and the meshery namespace, removed afterwards: while they exist, every
    source in the session would obey the custom resource."""
    plane = real_cluster
    namespace = "/api/v1/namespaces/meshery"
    if _terminating(plane, namespace):
        wait_gone(plane, namespace)
    created = plane.request("GET", namespace)[0] == 404
    plane.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "meshery"}})
    with installed(plane, MESHSYNC_CRD):
        collection = "/apis/meshery.io/v1alpha1/namespaces/meshery/meshsyncs"
        eventually(lambda: plane.request("GET", collection)[0] == 200, 30, "meshsyncs served")
        try:
            yield plane
        finally:
            plane.api("DELETE", MESHSYNC_CR, ok=(200, 202, 404))
    if created:
        plane.api("DELETE", namespace, ok=(200, 202, 404))


def _terminating(plane: ControlPlane, path: str) -> bool:
    status, body = plane.request("GET", path)
    return status == 200 and bool(json.loads(body)["metadata"].get("deletionTimestamp"))


def state_rv(running: Running, key: tuple[str, str], uid: str) -> str | None:
    """The resourceVersion the source tracks for ``uid`` (also for events it filters out)."""
    for watcher in running.source.watchers.get(key, ()):
        packed = watcher.state.get(uid)
        if packed is not None:
            return packed.split("\0", 1)[0]
    return None


async def test_meshsync_custom_resource_whitelist_blacklist_and_hot_reload(
    meshsync_crd: ControlPlane,
    real_kubeconfig: Path,
    real_namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="meshsync")
    plane, ns = meshsync_crd, real_namespace
    whitelist = [
        {"Resource": "configmaps.v1.", "Events": ["ADDED", "DELETED"]},
        {"Resource": "deployments.v1.apps", "Events": ["ADDED", "MODIFIED", "DELETED"]},
    ]
    plane.apply(meshsync_cr({"whitelist": json.dumps(whitelist)}))
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": ns}}
    made = {}
    for name in ("c1", "c3"):
        made[name] = plane.apply({**configmap, "metadata": {"name": name, "namespace": ns}})
    secret = plane.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s1", "namespace": ns},
            "stringData": {"k": "v"},
        }
    )
    plane.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "svc", "namespace": ns},
            "spec": {"ports": [{"port": 80}]},
        }
    )
    plane.apply(deployment(ns, "d1", 0))
    root_ca = f"/api/v1/namespaces/{ns}/configmaps/kube-root-ca.crt"
    eventually(lambda: plane.request("GET", root_ca)[0] == 200, 30, "kube-root-ca.crt published")
    running = start_source(real_kubeconfig, TUNING, namespaces=[ns])
    try:
        await running.synced(SYNC_TIMEOUT)
        # -- whitelist: only these two resources, configmaps without MODIFIED
        assert set(running.source.watched()) == {"configmaps.v1.", "deployments.v1.apps"}
        assert {e.resource.plural for e in running.sink.events if e.uid} == {
            "configmaps",
            "deployments",
        }
        names = {e.name for e in running.sink.events if e.uid}
        assert {"c1", "c3", "d1", "kube-root-ca.crt"} <= names and "s1" not in names
        assert log_lines(caplog, "MeshSync custom resource: whitelist configmaps.v1.")

        changed = plane.apply(
            {**configmap, "metadata": {"name": "c1", "namespace": ns}, "data": {"a": "1"}}
        )
        c1 = made["c1"]["metadata"]["uid"]
        new_rv = changed["metadata"]["resourceVersion"]
        await wait_until(
            lambda: state_rv(running, ("", "configmaps"), c1) == new_rv,
            FLOW_TIMEOUT,
            "the change of c1 seen (and filtered)",
        )
        assert [e.type for e in running.sink.events if e.uid == c1] == [EventType.ADDED]
        plane.api("DELETE", f"/api/v1/namespaces/{ns}/configmaps/c1")
        await wait_until(
            lambda: (
                [e.type for e in running.sink.events if e.uid == c1]
                == [EventType.ADDED, EventType.DELETED]
            ),
            FLOW_TIMEOUT,
            "c1 DELETED",
        )
        plane.apply(deployment(ns, "d1", 0, labels={"tier": "web"}))
        await wait_until(
            lambda: any(
                e.type is EventType.MODIFIED and e.name == "d1" for e in running.sink.events
            ),
            FLOW_TIMEOUT,
            "d1 MODIFIED",
        )

        # -- both lists at run time: refused, the whitelist stays
        plane.apply(meshsync_cr({"whitelist": json.dumps(whitelist), "blacklist": '["pods"]'}))
        await wait_until(
            lambda: log_lines(caplog, "ignoring the changed MeshSync custom resource"),
            FLOW_TIMEOUT,
            "the warning about both lists",
        )
        assert set(running.source.watched()) == {"configmaps.v1.", "deployments.v1.apps"}

        # -- blacklist: the default set minus configmaps and secrets
        plane.apply(meshsync_cr({"blacklist": json.dumps(["configmaps.v1.", "secrets"])}))
        await wait_until(
            lambda: "pods.v1." in running.source.watched(), FLOW_TIMEOUT, "the default set"
        )
        watched = {name.split(".", 1)[0] for name in running.source.watched()}
        assert watched >= DEFAULT_SET - {"configmaps", "secrets"}
        assert not watched & {"configmaps", "secrets"}
        await wait_until(
            lambda: any(e.name == "svc" for e in running.sink.events),
            FLOW_TIMEOUT,
            "the Service ADDED",
        )
        # changes while configmaps are not watched: nobody hears of them now
        c3 = made["c3"]["metadata"]["uid"]
        plane.api("DELETE", f"/api/v1/namespaces/{ns}/configmaps/c3")
        c2 = plane.apply({**configmap, "metadata": {"name": "c2", "namespace": ns}})
        c2_uid = c2["metadata"]["uid"]

        # -- the custom resource deleted: no restriction; configmaps re-listed as a diff
        plane.api("DELETE", MESHSYNC_CR)
        await wait_until(
            lambda: {"configmaps.v1.", "secrets.v1."} <= set(running.source.watched()),
            FLOW_TIMEOUT,
            "configmaps and secrets watched again",
        )
        await wait_until(
            lambda: (
                {c2_uid, secret["metadata"]["uid"]} <= set(fold(running.sink.events))
                and c3 not in fold(running.sink.events)
            ),
            FLOW_TIMEOUT,
            "c2 and s1 ADDED, c3 DELETED",
        )
        assert log_lines(caplog, "MeshSync custom resource deleted: no restriction")
        # kube-root-ca.crt and the others known from before were not ADDED a second time
        fold(running.sink.events)
        assert [e.type for e in running.sink.events if e.uid == c3] == [
            EventType.ADDED,
            EventType.DELETED,
        ]
    finally:
        await stop_all(running)


def deployment(
    namespace: str, name: str, replicas: int, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    match = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": match},
            "template": {
                "metadata": {"labels": match},
                "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]},
            },
        },
    }


# -- a cluster lacking a group -------------------------------------------------------------------

#: The whole batch group (cronjobs) and one resource of a group that stays (ingresses).
#: networking.k8s.io as a whole cannot go: the apiserver's own Service IP allocator needs it.
UNSERVED = ("cronjobs.v1.batch", "ingresses.v1.networking.k8s.io")


@pytest.fixture(scope="module")
def lacking_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A second, small control plane (etcd + apiserver) without batch/v1 and ingresses."""
    plane = ControlPlane(
        tmp_path_factory.mktemp("lacking"),
        with_controllers=False,
        extra_apiserver_flags=[
            "--runtime-config=batch/v1=false,networking.k8s.io/v1/ingresses=false"
        ],
    )
    try:
        yield plane.start()
    finally:
        plane.stop()


async def test_a_cluster_lacking_a_group(
    lacking_cluster: ControlPlane, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="meshsync")
    plane = lacking_cluster
    groups = {g["name"] for g in plane.api("GET", "/apis")["groups"]}
    assert "batch" not in groups and "networking.k8s.io" in groups
    networking = {r["name"] for r in plane.api("GET", "/apis/networking.k8s.io/v1")["resources"]}
    assert "ingresses" not in networking and "networkpolicies" in networking
    plane.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    plane.apply(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "shop"}}
    )
    plane.apply(deployment("shop", "web", 1))
    kubeconfig = plane.kubeconfig(tmp_path / "kubeconfig")
    running = start_source(kubeconfig, TUNING)
    try:
        await running.synced(SYNC_TIMEOUT)
        watched = {name.split(".", 1)[0] for name in running.source.watched()}
        assert watched == DEFAULT_SET - {"cronjobs", "ingresses"}, watched ^ DEFAULT_SET
        for resource in UNSERVED:
            lines = log_lines(caplog, f"not watching {resource}")
            assert lines == [f"not watching {resource}: not served by this cluster"], lines
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
        names = {(e.resource.plural, e.name) for e in running.sink.events if e.uid}
        assert {("namespaces", "shop"), ("configmaps", "cfg"), ("deployments", "web")} <= names
        view = fold(running.sink.events)
        server = {
            item["metadata"]["uid"]
            for watchers in running.source.watchers.values()
            for watcher in watchers
            for item in plane.api("GET", watcher.path)["items"]
        }
        assert set(view) == server
    finally:
        await stop_all(running)
    # Named on the command line, an unserved resource is a start-up error; fully qualified, it
    # is accepted (a CRD could define it later) with a warning.
    source = KubernetesSource(Options({"kubeconfig": str(kubeconfig), "resources": ["cronjobs"]}))
    try:
        with pytest.raises(ConfigError, match="unknown resource 'cronjobs'"):
            await source.open()
    finally:
        await source.close()
    source = KubernetesSource(
        Options({"kubeconfig": str(kubeconfig), "resources": ["cronjobs.v1.batch"]})
    )
    try:
        await source.open()
    finally:
        await source.close()
    assert log_lines(caplog, "resource cronjobs.v1.batch is not served (yet)")
