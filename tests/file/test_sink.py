"""The file sink with the real engine: snapshot content, the extended log, --once, redaction."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from meshsync_file.manifest import REDACTED, REDACTED_BASE64, clean
from meshsync_file.sink import FileSink
from meshsync_k8s.redaction import redact_secret

from meshsync_core import EventType

from .conftest import GatedFileSink, file_options, load_all, run_file_sink
from .k8s_objects import RESOURCES, build_cluster, event, modified


def by_kind(cluster: list[tuple[Any, dict[str, Any]]], kind: str) -> dict[str, Any]:
    return next(obj for _, obj in cluster if obj["kind"] == kind)


def scenario() -> tuple[list, list, dict[str, dict[str, Any]]]:
    """Creates, updates and deletes before and after the initial sync, and the expected state."""
    cluster = build_cluster()
    before = [event(resource, obj) for resource, obj in cluster]
    cm = by_kind(cluster, "ConfigMap")
    cm2 = modified(cm, data={**cm["data"], "mode": "off"})
    before.append(event(RESOURCES["configmaps"], cm2, EventType.MODIFIED))
    pod = by_kind(cluster, "Pod")
    secret = by_kind(cluster, "Secret")
    deployment = by_kind(cluster, "Deployment")
    dep2 = modified(deployment, spec={**deployment["spec"], "replicas": 5})
    dep3 = modified(dep2, status={**deployment["status"], "replicas": 5})
    late = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {**cm["metadata"], "name": "late", "uid": "late-uid", "resourceVersion": "9"},
        "data": {"created": "after the initial sync"},
    }
    after = [
        event(RESOURCES["deployments"], dep2, EventType.MODIFIED),
        event(RESOURCES["pods"], pod, EventType.DELETED),
        event(RESOURCES["configmaps"], late),
        event(RESOURCES["deployments"], dep3, EventType.MODIFIED),
        event(RESOURCES["secrets"], secret, EventType.DELETED),
    ]
    state: dict[str, dict[str, Any]] = {}
    for ev in before + after:
        if ev.type is EventType.DELETED:
            state.pop(ev.uid, None)
        else:
            state[ev.uid] = ev.object
    return before, after, state


def expected_docs(state: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for obj in state.values():
        obj = redact_secret(obj) if obj["kind"] == "Secret" else obj
        out.append(clean(obj, RESOURCES["pods"]))
    return out


async def test_snapshot_is_the_latest_state_of_every_live_object(tmp_path: Path) -> None:
    before, after, state = scenario()
    path = tmp_path / "snap.yaml"
    sink, result = await run_file_sink(before, after, path=path)
    assert result.exit_code == 0, result.reason
    docs = load_all(path)
    assert docs == expected_docs(state)
    kinds = {doc["kind"] for doc in docs}
    assert "Pod" not in kinds and "Secret" not in kinds  # deleted during the run
    deployment = next(doc for doc in docs if doc["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 5 and deployment["status"]["replicas"] == 5
    config = next(doc for doc in docs if doc["metadata"]["name"] == "shop-config")
    assert config["data"]["mode"] == "off"
    assert all("managedFields" not in doc["metadata"] for doc in docs)
    assert path.read_text().startswith(f"# MeshSync snapshot: {len(docs)} objects")
    assert sink.snapshots_written == 2  # after the initial sync, then the final state


async def test_documents_are_kubernetes_manifests(tmp_path: Path) -> None:
    cluster = build_cluster()
    path = tmp_path / "snap.yaml"
    await run_file_sink([event(r, o) for r, o in cluster], path=path)
    for doc, (_, obj) in zip(load_all(path), cluster, strict=True):
        obj = redact_secret(obj) if obj["kind"] == "Secret" else obj
        assert list(doc)[:3] == ["apiVersion", "kind", "metadata"]
        assert doc["metadata"] == {k: v for k, v in obj["metadata"].items() if k != "managedFields"}
        assert isinstance(doc["metadata"].get("labels", {}), dict)
        for field in ("spec", "status", "data"):
            if field in obj:
                assert doc[field] == obj[field]


async def test_apiversion_and_kind_come_from_the_resource_when_missing(tmp_path: Path) -> None:
    obj = {"metadata": {"name": "bare", "uid": "u1", "namespace": "a"}, "data": {"k": "v"}}
    path = tmp_path / "snap.yaml"
    await run_file_sink([event(RESOURCES["configmaps"], obj)], path=path)
    assert load_all(path) == [{"apiVersion": "v1", "kind": "ConfigMap", **obj}]


async def test_extended_log_has_every_event_in_order(tmp_path: Path) -> None:
    before, after, _ = scenario()
    path = tmp_path / "snap.yaml"
    sink, _ = await run_file_sink(before, after, path=path)
    log = load_all(tmp_path / "snap-extended.yaml")
    assert sink.extended_path == tmp_path / "snap-extended.yaml"
    types = [doc["type"] for doc in log]
    assert types.index("SYNCED") == len(before) and types.count("SYNCED") == 1
    changes = [doc for doc in log if doc["type"] != "SYNCED"]
    assert len(changes) == len(before) + len(after)
    for doc, ev in zip(changes, before + after, strict=True):
        assert list(doc) == ["type", "time", "resource", "cluster", "object"]
        assert doc["type"] == ev.type.value
        assert doc["resource"] == ev.resource.key
        assert doc["cluster"] == ev.cluster_id
        assert doc["object"]["metadata"]["uid"] == ev.uid
        assert doc["object"]["metadata"]["resourceVersion"] == ev.resource_version
        assert "managedFields" not in doc["object"]["metadata"]
        expected = redact_secret(ev.object) if ev.object["kind"] == "Secret" else ev.object
        assert doc["object"] == clean(expected, ev.resource)
        when = dt.datetime.fromisoformat(doc["time"].replace("Z", "+00:00"))
        assert when.tzinfo is not None
    assert sink.events_logged == len(changes)


async def test_once_writes_one_snapshot_and_stops_after_the_initial_sync(tmp_path: Path) -> None:
    cluster = build_cluster()
    path = tmp_path / "snap.yaml"
    sink, result = await run_file_sink(
        [event(r, o) for r, o in cluster], path=path, keep_running=True, once=True
    )
    assert result.exit_code == 0
    assert result.reason == "initial sync complete (--once)"
    assert len(load_all(path)) == len(cluster)
    assert sink.snapshots_written == 1  # not once at sync and again at close


async def test_stop_after_ends_the_run_with_a_snapshot(tmp_path: Path) -> None:
    cluster = build_cluster()
    path = tmp_path / "snap.yaml"
    _sink, result = await run_file_sink(
        [event(r, o) for r, o in cluster],
        path=path,
        keep_running=True,
        engine_kwargs={"stop_after": 0.2},
    )
    assert result.exit_code == 0 and "stop-after" in result.reason
    assert len(load_all(path)) == len(cluster)


async def test_first_snapshot_is_written_at_initial_sync(tmp_path: Path) -> None:
    """Without --once a long run has a complete snapshot as soon as the initial list is done."""
    seen: list[list[Any]] = []
    path = tmp_path / "snap.yaml"

    class Recording(GatedFileSink):
        async def on_synced(self) -> None:
            await super().on_synced()
            seen.append(load_all(path))

    before, after, state = scenario()
    await run_file_sink(before, after, path=path, sink=Recording(file_options(path)))
    assert len(seen[0]) == len(before) - 1  # the ConfigMap was added then modified
    assert load_all(path) == expected_docs(state)


async def test_secrets_are_redacted_by_default(tmp_path: Path) -> None:
    cluster = build_cluster()
    path = tmp_path / "snap.yaml"
    await run_file_sink([event(r, o) for r, o in cluster], path=path)
    secret = next(doc for doc in load_all(path) if doc["kind"] == "Secret")
    assert secret["data"] == {"username": REDACTED, "password": REDACTED}
    last_applied = secret["metadata"]["annotations"][
        "kubectl.kubernetes.io/last-applied-configuration"
    ]
    assert last_applied == REDACTED
    log_text = (tmp_path / "snap-extended.yaml").read_text()
    assert "c2VjcmV0" not in log_text and "czNjcjN0IQ==" not in log_text
    assert stat.S_IMODE(path.stat().st_mode) & 0o044  # redacted: readable like any file


async def test_no_redact_secrets_keeps_values_and_makes_files_private(tmp_path: Path) -> None:
    cluster = build_cluster()
    original = by_kind(cluster, "Secret")
    path = tmp_path / "snap.yaml"
    await run_file_sink([event(r, o) for r, o in cluster], path=path, redact=False)
    secret = next(doc for doc in load_all(path) if doc["kind"] == "Secret")
    assert secret["data"] == original["data"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "snap-extended.yaml").stat().st_mode) == 0o600


async def test_for_apply_strips_server_fields_and_controlled_objects(tmp_path: Path) -> None:
    cluster = build_cluster()
    orphan_owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "gone", "uid": "gone"}
    orphan = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "orphan",
            "namespace": "shop",
            "uid": "orphan-uid",
            "ownerReferences": [{**orphan_owner, "controller": True}],
        },
        "spec": {"containers": [{"name": "c", "image": "busybox"}], "nodeName": "node-a"},
    }
    events = [event(r, o) for r, o in cluster] + [event(RESOURCES["pods"], orphan)]
    path = tmp_path / "snap.yaml"
    await run_file_sink(events, path=path, for_apply=True)
    docs = load_all(path)
    names = {(doc["kind"], doc["metadata"]["name"]) for doc in docs}
    # Recreated by their controllers, which are in the file:
    assert ("ReplicaSet", "web-7d4b9c8f6d") not in names
    assert ("Pod", "web-7d4b9c8f6d-x2x9q") not in names
    assert ("EndpointSlice", "web-abcde") not in names
    assert ("Pod", "orphan") in names and ("Deployment", "web") in names
    server = {"uid", "resourceVersion", "creationTimestamp", "generation", "managedFields"}
    for doc in docs:
        assert not server & set(doc["metadata"]), doc["metadata"]
        assert "ownerReferences" not in doc["metadata"]
        assert "status" not in doc
        annotations = doc["metadata"].get("annotations", {})
        assert "kubectl.kubernetes.io/last-applied-configuration" not in annotations
        assert "deployment.kubernetes.io/revision" not in annotations
    service = next(doc for doc in docs if doc["kind"] == "Service")
    assert "clusterIP" not in service["spec"] and "clusterIPs" not in service["spec"]
    assert service["spec"]["ports"][0]["port"] == 80
    pv = next(doc for doc in docs if doc["kind"] == "PersistentVolume")
    assert pv["spec"]["claimRef"] == {
        "kind": "PersistentVolumeClaim",
        "namespace": "shop",
        "name": "data-db-0",
        "apiVersion": "v1",
    }
    assert "nodeName" not in next(d for d in docs if d["metadata"]["name"] == "orphan")["spec"]
    secret = next(doc for doc in docs if doc["kind"] == "Secret")
    assert set(secret["data"].values()) == {REDACTED_BASE64}
    assert "prepared for kubectl apply" in path.read_text().splitlines()[0]
    # The event log keeps what happened, server fields included.
    log = [d for d in load_all(tmp_path / "snap-extended.yaml") if d["type"] != "SYNCED"]
    assert all("uid" in d["object"]["metadata"] for d in log)


async def test_headless_service_keeps_cluster_ip_none(tmp_path: Path) -> None:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "db", "namespace": "shop", "uid": "svc-db"},
        "spec": {"clusterIP": "None", "clusterIPs": ["None"], "selector": {"app": "db"}},
    }
    path = tmp_path / "snap.yaml"
    await run_file_sink([event(RESOURCES["services"], svc)], path=path, for_apply=True)
    assert load_all(path)[0]["spec"]["clusterIP"] == "None"


async def test_existing_files_are_replaced_never_appended(tmp_path: Path) -> None:
    path = tmp_path / "snap.yaml"
    path.write_text("old: snapshot\n")
    (tmp_path / "snap-extended.yaml").write_text("old: log\n")
    cluster = build_cluster()
    await run_file_sink([event(r, o) for r, o in cluster], path=path)
    assert "old" not in {k for doc in load_all(path) for k in doc}
    assert len(load_all(path)) == len(cluster)
    log = load_all(tmp_path / "snap-extended.yaml")
    assert all("type" in doc for doc in log) and len(log) == len(cluster) + 1


async def test_no_extended_log_writes_only_the_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "snap.yaml"
    cluster = build_cluster()
    await run_file_sink([event(r, o) for r, o in cluster], path=path, extended_log=False)
    assert sorted(os.listdir(tmp_path)) == ["snap.yaml"]


async def test_empty_cluster_still_gives_an_empty_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "snap.yaml"
    _sink, result = await run_file_sink([], path=path, once=True)
    assert result.exit_code == 0
    assert load_all(path) == [] and path.read_text().startswith("# MeshSync snapshot: 0 objects")


async def test_objects_without_uid_are_keyed_by_name(tmp_path: Path) -> None:
    a = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "x"}}
    a2 = {**a, "data": {"v": "2"}}
    b = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "x"}}
    cms = RESOURCES["configmaps"]
    events = [event(cms, a), event(cms, b), event(cms, a2, EventType.MODIFIED)]
    events.append(event(cms, b, EventType.DELETED))
    path = tmp_path / "snap.yaml"
    await run_file_sink(events, path=path)
    assert load_all(path) == [a2]


def test_bad_progress_mode_is_a_config_error() -> None:
    from meshsync_core import ConfigError

    with pytest.raises(ConfigError, match="file-progress"):
        FileSink(file_options(None, file_progress="loud"))


async def test_progress_summary_is_logged_at_initial_sync(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    cluster = build_cluster()
    with caplog.at_level(logging.INFO, logger="meshsync.file"):
        await run_file_sink(
            [event(r, o) for r, o in cluster],
            path=tmp_path / "snap.yaml",
            once=True,
            file_progress="log",
        )
    assert f"initial sync complete: {len(cluster)} objects (" in caplog.text
    assert f"wrote {len(cluster)} objects to {tmp_path / 'snap.yaml'}" in caplog.text


async def test_snapshot_interval_rewrites_while_watching(tmp_path: Path) -> None:
    before, after, state = scenario()
    path = tmp_path / "snap.yaml"
    sink, _ = await run_file_sink(
        before,
        after,
        path=path,
        snapshot_interval=0.0,
        engine_kwargs={"batch_size": 1},
    )
    # At the initial sync, after each later event (interval 0), none at close (nothing new).
    assert sink.snapshots_written == 1 + len(after)
    assert load_all(path) == expected_docs(state)


def test_bad_snapshot_interval_is_a_config_error() -> None:
    from meshsync_core import ConfigError

    with pytest.raises(ConfigError, match="snapshot-interval"):
        FileSink(file_options(None, snapshot_interval="often"))
