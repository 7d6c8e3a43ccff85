"""The Meshery wire shape, pinned by golden files per kind, directly and through real NATS."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import orjson
import pytest
from meshsync_k8s.redaction import SecretRedaction
from meshsync_nats import wire
from meshsync_nats.sink import NatsSink
from meshsync_nats.testing import NatsServer

from meshsync_core import Engine, Event, EventType, Resource
from meshsync_core.testing import MemorySource
from tests.nats.helpers import CLUSTER_ID, Running, Subscriber, nats_options

GOLDEN = Path(__file__).parent / "golden"
KINDS = ["pod", "deployment", "service", "configmap", "secret", "node", "customresource"]
RESOURCES = {
    "Pod": Resource("", "v1", "pods", "Pod"),
    "Deployment": Resource("apps", "v1", "deployments", "Deployment"),
    "Service": Resource("", "v1", "services", "Service"),
    "ConfigMap": Resource("", "v1", "configmaps", "ConfigMap"),
    "Secret": Resource("", "v1", "secrets", "Secret"),
    "Node": Resource("", "v1", "nodes", "Node", namespaced=False),
    "Widget": Resource("example.com", "v1alpha1", "widgets", "Widget"),
}


def load(kind: str) -> tuple[dict, dict]:
    source = json.loads((GOLDEN / f"{kind}.input.json").read_text())
    golden = json.loads((GOLDEN / f"{kind}.golden.json").read_text())
    return source, golden


def event_for(obj: dict, event_type: EventType = EventType.ADDED) -> Event:
    return Event(event_type, obj, RESOURCES[obj["kind"]], "test", CLUSTER_ID)


@pytest.mark.parametrize("kind", KINDS)
def test_golden_shape(kind: str) -> None:
    """to_meshery + envelope, after the default transforms, equal the golden file."""
    source, golden = load(kind)
    event = SecretRedaction({})(event_for(source))
    assert event is not None
    message = wire.envelope(event.type.value, event.object, event.cluster_id)
    assert orjson.loads(message) == golden
    assert b"managedFields" not in message
    assert list(orjson.loads(message)) == ["ObjectType", "EventType", "Request", "Object"]


async def test_golden_shape_over_nats(nats_server: NatsServer) -> None:
    """Every kind, published by the sink through the engine, arrives exactly as the golden."""
    inputs = [load(kind) for kind in KINDS]
    subscriber = Subscriber()
    await subscriber.connect(nats_server.url)
    source = MemorySource([event_for(obj) for obj, _ in inputs], keep_running=True)
    sink = NatsSink(nats_options(nats_server.url))
    async with Running(Engine([source], [sink], [SecretRedaction({})])):
        messages = await subscriber.wait_count(len(KINDS))
    await subscriber.close()
    assert messages == [golden for _, golden in inputs]


def test_omit_empty_and_always_present() -> None:
    minimal = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bare"}}
    out = wire.to_meshery(minimal, "cid")
    assert out == {
        "id": "",
        "apiVersion": "v1",
        "kind": "Namespace",
        "model": "",
        "metadata": {"id": "", "name": "bare", "uid": "", "cluster_id": ""},
        "cluster_id": "cid",
        "pattern_resource": None,
        "component_metadata": None,
    }
    # Present-but-empty values follow Go: an empty spec object is still sent, empty labels not.
    out = wire.to_meshery(
        {**minimal, "metadata": {"name": "x", "labels": {}, "generation": 0}, "spec": {}}, "c"
    )
    assert out["spec"] == {"id": "", "attribute": "{}"}
    assert "labels" not in out["metadata"] and "generation" not in out["metadata"]


def test_meshery_ids_flag() -> None:
    source, _ = load("deployment")
    out = wire.to_meshery(source, CLUSTER_ID, meshery_ids=True)
    expected = base64.b64encode(f"{CLUSTER_ID}.Deployment.apps/v1.shop.web".encode()).decode()
    assert out["id"] == out["metadata"]["id"] == expected
    assert out["spec"]["id"] == out["status"]["id"] == expected
    labels = out["metadata"]["labels"]
    assert all(label["id"] == expected for label in labels)
    assert len({label["unique_id"] for label in labels}) == len(labels)
    assert all(label["unique_id"] for label in labels)
    # Off by default: Go sends "".
    assert wire.to_meshery(source, CLUSTER_ID)["id"] == ""


def test_service_urls_variants() -> None:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s"},
        "spec": {
            "clusterIP": "None",
            "externalIPs": ["198.51.100.1"],
            "ports": [{"port": 443}, {"port": 80}],
        },
        "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]}},
    }
    urls = wire.to_meshery(svc, "c")["component_metadata"]["capabilities"]["urls"]
    assert urls == [
        "https://lb.example.com:443",
        "http://lb.example.com:80",
        "https://198.51.100.1:443",
        "http://198.51.100.1:80",
    ]
    headless = {**svc, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}, "status": {}}
    assert wire.to_meshery(headless, "c")["component_metadata"] == {
        "capabilities": {"connection": True, "urls": []}
    }


def test_input_is_not_modified() -> None:
    source, _ = load("pod")
    before = json.dumps(source, sort_keys=True)
    wire.to_meshery(source, "c", meshery_ids=True)
    assert json.dumps(source, sort_keys=True) == before
