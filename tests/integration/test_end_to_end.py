"""End to end: fake API server -> k8s source -> the real sinks, with changes while running.

Components are looked up by name through the installed plugins, as ``meshsync run`` does, and
wired into an engine next to a ``CaptureSink`` that tells the test when events have arrived.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import nats
import orjson
import pytest
import yaml
from meshsync_k8s.redaction import redact_secret
from meshsync_nats import wire as wire_shape
from meshsync_testkit.fake_apiserver import KUBE_SYSTEM_UID, FakeApiServer, demo_cluster
from meshsync_testkit.nats_server import NatsServer

from meshsync_core import Engine, Options
from meshsync_core.api import resolve_options
from meshsync_core.plugin_manager import PluginRegistry
from meshsync_core.testing import CaptureSink
from meshsync_core.tools import require_tool
from tests.nats.helpers import as_json

#: (plural, group) of the upstream default set that the demo cluster has objects of, plus the
#: demo CRD's resource.
WATCHED = [
    ("namespaces", ""), ("configmaps", ""), ("nodes", ""), ("secrets", ""),
    ("persistentvolumes", ""), ("persistentvolumeclaims", ""), ("pods", ""), ("services", ""),
    ("replicasets", "apps"), ("deployments", "apps"), ("storageclasses", "storage.k8s.io"),
    ("widgets", "example.com"),
]  # fmt: skip


def config_map(name: str, value: str = "1") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"value": value},
    }


def cluster_state(server: FakeApiServer) -> dict[str, str]:
    """uid -> resourceVersion of every object MeshSync watches, as the server has them now."""
    return {
        obj["metadata"]["uid"]: obj["metadata"]["resourceVersion"]
        for plural, group in WATCHED
        for obj in server.objects(plural, group)
    }


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[FakeApiServer, Path]]:
    server = FakeApiServer()
    await server.start()
    server.load(demo_cluster())
    try:
        yield server, server.write_kubeconfig(tmp_path / "kubeconfig")
    finally:
        await server.stop()


def wire(values: dict[str, Any], *sink_names: str) -> tuple[Engine, CaptureSink]:
    """An engine with the installed k8s source, transforms and the named sinks, plus a capture."""
    manager = PluginRegistry.from_entry_points()
    options: Options = resolve_options(manager, {**values, "output": list(sink_names)})
    sinks = [manager.sinks[name](options) for name in sink_names]
    capture = CaptureSink()
    transforms = [cls(options) for cls in manager.transforms.values() if cls.enabled(options)]
    engine = Engine([manager.sources["k8s"](options)], [*sinks, capture], transforms)
    return engine, capture


async def test_nats_subscriber_view_converges_to_the_cluster_across_a_nats_restart(
    cluster: tuple[FakeApiServer, Path], tmp_path: Path
) -> None:
    server, kubeconfig = cluster
    with NatsServer(tmp_path / "nats") as broker:
        view: dict[str, str] = {}
        changed = asyncio.Condition()

        async def on_message(msg: Any) -> None:
            data = orjson.loads(msg.data)
            meta = data["Object"]["metadata"]
            if data["EventType"] == "DELETED":
                view.pop(meta["uid"], None)
            else:
                view[meta["uid"]] = meta["resourceVersion"]
            async with changed:
                changed.notify_all()

        subscriber = await nats.connect(
            broker.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1
        )
        await subscriber.subscribe("meshery.meshsync.core", cb=on_message)
        engine, capture = wire(
            {
                "kubeconfig": str(kubeconfig),
                "broker_url": broker.url,
                "nats_reconnect_wait": 0.1,
                "nats_resend_delay": 1.0,
            },
            "nats",
        )
        run = asyncio.create_task(engine.run())
        try:
            await capture.synced.wait()
            for i in range(10):
                server.create(config_map(f"before-{i}"))
            await capture.wait_for(len(cluster_state(server)))

            broker.stop()
            for i in range(5):
                server.update({**server.get(config_map(f"before-{i}")), "data": {"v": "2"}})
            for i in range(5, 8):
                server.delete(config_map(f"before-{i}"))
            server.create(config_map("while-down"))
            broker.start()

            async def converged() -> None:
                async with changed:
                    await changed.wait_for(lambda: view == cluster_state(server))

            await asyncio.wait_for(converged(), 30)
        finally:
            engine.stop()
            result = await run
            await subscriber.close()
    assert result.exit_code == 0, result.reason
    added = [e.uid for e in capture.events if e.type.value == "ADDED"]
    assert len(added) == len(set(added)), "an object was ADDED twice"


async def test_file_snapshot_equals_the_cluster_and_is_valid_kubernetes(
    cluster: tuple[FakeApiServer, Path], tmp_path: Path
) -> None:
    server, kubeconfig = cluster
    snapshot = tmp_path / "snapshot.yaml"
    engine, capture = wire({"kubeconfig": str(kubeconfig), "output_file": str(snapshot)}, "file")
    run = asyncio.create_task(engine.run())
    try:
        await capture.synced.wait()
        initial = len(capture.events)
        server.create(config_map("new"))
        server.update({**server.get(config_map("new")), "data": {"value": "2"}})
        pod = server.objects("pods")[0]
        server.delete(pod)
        await capture.wait_for(initial + 3)
    finally:
        engine.stop()
        result = await run
    assert result.exit_code == 0, result.reason

    docs = [doc for doc in yaml.safe_load_all(snapshot.read_text()) if doc]
    assert {d["metadata"]["uid"]: d["metadata"]["resourceVersion"] for d in docs} == (
        cluster_state(server)
    )
    assert pod["metadata"]["uid"] not in {d["metadata"]["uid"] for d in docs}
    new = next(d for d in docs if d["metadata"]["name"] == "new")
    assert new["data"] == {"value": "2"}
    for doc in docs:
        assert "managedFields" not in doc["metadata"]
        if doc["kind"] == "Secret":
            assert set(doc["data"].values()) == {"[REDACTED]"}
        if doc["apiVersion"] != "example.com/v1":
            kubernetes_validate.validate(doc, "1.33.0", strict=True)

    decoded = subprocess.run(
        [require_tool("kubectl"), "annotate", "--local", "-f", str(snapshot), "x-", "-o", "name"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert decoded.returncode == 0, decoded.stderr
    assert len(decoded.stdout.splitlines()) == len(docs)


async def test_source_metrics_count_watch_restarts_and_410s(
    cluster: tuple[FakeApiServer, Path],
) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from meshsync_core.health import EngineCollector

    server, kubeconfig = cluster
    engine, capture = wire({"kubeconfig": str(kubeconfig), "resources": ["configmaps"]})
    registry = CollectorRegistry()
    registry.register(EngineCollector(engine))
    run = asyncio.create_task(engine.run())
    try:
        await capture.synced.wait()
        source = engine.sources[0]
        starts = 'meshsync_k8s_watch_starts_total{plugin="k8s",resource="configmaps.v1."}'

        def sample(name: str) -> float:
            for line in generate_latest(registry).decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.rsplit(" ", 1)[1])
            return 0.0

        async def until(condition) -> None:  # type: ignore[no-untyped-def]
            while not condition():
                await asyncio.sleep(0.02)  # the watcher reconnects on its own schedule

        await asyncio.wait_for(until(lambda: sample(starts) >= 1), 10)
        # counted when the watch starts; expire it only once the server holds it
        await asyncio.wait_for(
            until(lambda: any(w.rt.plural == "configmaps" for w in server.store.watchers())), 10
        )
        server.faults.expire_watches()
        await asyncio.wait_for(until(lambda: sample(starts) >= 2), 10)
        expired = (
            'meshsync_k8s_watch_errors_total{code="410",plugin="k8s",resource="configmaps.v1."}'
        )
        assert sample(expired) == 1
        tracked = sample('meshsync_k8s_objects_tracked{plugin="k8s"}')
        assert tracked == len(server.objects("configmaps")) == source.tracked
    finally:
        engine.stop()
        await run


async def test_nats_messages_and_informer_store_carry_the_clusters_objects(
    cluster: tuple[FakeApiServer, Path], tmp_path: Path
) -> None:
    """Objects travel undecoded from the API to the wire; what Meshery receives - the change
    stream and the informer-store answer - is each object re-shaped from its decoded form."""
    server, kubeconfig = cluster
    with NatsServer(tmp_path / "nats") as broker:
        stream: dict[str, dict[str, Any]] = {}
        store: list[dict[str, Any]] = []
        batches: list[int] = []
        arrived = asyncio.Condition()

        async def on_change(msg: Any) -> None:
            obj = orjson.loads(msg.data)["Object"]
            stream[obj["metadata"]["uid"]] = obj
            async with arrived:
                arrived.notify_all()

        async def on_store(msg: Any) -> None:
            objects = orjson.loads(msg.data)["Object"]
            batches.append(len(objects))
            store.extend(objects)
            async with arrived:
                arrived.notify_all()

        client = await nats.connect(broker.url)
        await client.subscribe("meshery.meshsync.core", cb=on_change)
        await client.subscribe("meshery-server.meshsync.store", cb=on_store)
        engine, capture = wire({"kubeconfig": str(kubeconfig), "broker_url": broker.url}, "nats")
        run = asyncio.create_task(engine.run())
        try:
            await capture.synced.wait()
            expected = cluster_state(server)

            async def received(count: Callable[[], int]) -> None:
                async with arrived:
                    await arrived.wait_for(lambda: count() >= len(expected))

            await asyncio.wait_for(received(lambda: len(stream)), 30)
            request = {
                "Request": {
                    "Entity": "informer-store",
                    "Payload": {"Reply": "meshery-server.meshsync.store"},
                }
            }
            await client.publish("meshery.meshsync.request", orjson.dumps(request))
            await asyncio.wait_for(received(lambda: len(store)), 30)
        finally:
            engine.stop()
            result = await run
            await client.close()
    assert result.exit_code == 0, result.reason
    # Undecoded all the way, except redacted Secrets, whose clear JSON text is dropped.
    changes = [e for e in capture.events if e.type.value != "SYNCED"]
    assert all((e.raw_json is None) == (e.resource.kind == "Secret") for e in changes)

    live = {
        obj["metadata"]["uid"]: obj
        for plural, group in WATCHED
        for obj in server.objects(plural, group)
    }
    assert set(stream) == set(live) == {o["metadata"]["uid"] for o in store}
    assert max(batches) <= 5
    by_uid = {o["metadata"]["uid"]: o for o in store}
    for uid, obj in live.items():
        if obj["kind"] == "Secret":
            obj = redact_secret(obj)
        shape = wire_shape.as_builtins(wire_shape.to_meshery(obj, KUBE_SYSTEM_UID))
        message = as_json({"Object": shape})
        assert as_json({"Object": stream[uid]}) == message, obj["kind"]
        assert as_json({"Object": by_uid[uid]}) == message, obj["kind"]
    secrets = [o for o in stream.values() if o["kind"] == "Secret"]
    assert secrets and all(
        set(orjson.loads(s["data"]).values()) == {"[REDACTED]"} for s in secrets if "data" in s
    )
