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
from meshsync_testkit.nats_server import NatsServer

from meshsync_core import Engine, Event, EventType, Resource
from meshsync_core.testing import MemorySource
from tests.nats.helpers import CLUSTER_ID, Running, Subscriber, as_json, envelope, nats_options

GOLDEN = Path(__file__).parent / "golden"
DESIGN_LABEL = wire.DESIGN_ID_LABEL
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


def lazy_event_for(obj: dict, event_type: EventType = EventType.ADDED) -> Event:
    """The event a Kubernetes list would produce: raw JSON without apiVersion/kind, undecoded."""
    item = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    resource = RESOURCES[obj["kind"]]

    def decode(raw: bytes) -> dict:
        return {**json.loads(raw), "apiVersion": resource.api_version, "kind": resource.kind}

    meta = obj["metadata"]
    return Event(
        event_type,
        None,
        resource,
        "test",
        CLUSTER_ID,
        raw=orjson.dumps(item),
        decode=decode,
        identity=(meta["uid"], meta["name"], meta.get("namespace", ""), meta["resourceVersion"]),
    )


@pytest.mark.parametrize("kind", KINDS)
def test_golden_shape(kind: str) -> None:
    """to_meshery + envelope, after the default transforms, equal the golden file."""
    source, golden = load(kind)
    event = SecretRedaction({})(event_for(source))
    assert event is not None
    message = envelope(event.type.value, event.object, event.cluster_id)
    assert as_json(orjson.loads(message)) == as_json(golden)
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
    assert [as_json(m) for m in messages] == [as_json(golden) for _, golden in inputs]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("meshery_ids", [False, True])
def test_raw_fast_path_equals_dict_path(kind: str, meshery_ids: bool) -> None:
    """An undecoded event is published byte for byte as its decoded object would be."""
    source, _ = load(kind)
    for event_type in EventType.ADDED, EventType.DELETED:
        lazy = lazy_event_for(source, event_type)
        expected = envelope(event_type.value, lazy.object, CLUSTER_ID)
        fast = lazy_event_for(source, event_type)
        if meshery_ids:  # unique_id is random per label: compare everything else
            a = wire.as_builtins(wire.event_to_meshery(fast, meshery_ids=True))
            b = wire.as_builtins(wire.to_meshery(lazy.object, CLUSTER_ID, meshery_ids=True))
            for out in a, b:
                for entry in out["metadata"].get("labels", []):
                    entry.pop("unique_id")
                for entry in out["metadata"].get("annotations", []):
                    entry.pop("unique_id")
            assert a == b
        else:
            assert wire.event_envelope(fast) == expected
        assert fast.raw_json is not None


ODD_OBJECTS = [
    {"metadata": {"name": "n", "uid": "u", "resourceVersion": "1", "generation": "two"}},
    {"metadata": {"name": "n", "uid": "u", "resourceVersion": "1", "namespace": None}},
    {"metadata": {"name": "n", "uid": "u", "resourceVersion": "1", "ownerReferences": None}},
    {"metadata": {"name": "n", "uid": "u", "resourceVersion": "1", "finalizers": []}},
    {"metadata": {"name": "n", "uid": "u", "resourceVersion": "1"}, "spec": None},
    {"metadata": {"name": "n", "uid": "u", "resourceVersion": "1"}, "spec": {}, "type": 3},
    {"metadata": {"name": "n", "uid": "u", "resourceVersion": "1"}, "immutable": False},
    {"metadata": {"name": "n", "uid": "u", "resourceVersion": "1"}, "data": {"big": 2**70}},
    {
        "metadata": {
            "name": "n",
            "uid": "u",
            "resourceVersion": "1",
            "labels": {"b": "2", "a": "1", DESIGN_LABEL: "8a3c7a3e-2a52-4a2a-9c1e-2b0c9f7d1e11"},
            "annotations": {"n": {"not": "a string"}},
            "deletionGracePeriodSeconds": 0,
        },
        "status": {"z": 1, "a": [1, 2]},
    },
    {"kind": "Pod", "metadata": {"name": "n", "uid": "u", "resourceVersion": "1"}},
    {"kind": "Service", "apiVersion": "v1", "metadata": {"name": "s", "uid": "u"}, "spec": {}},
]


@pytest.mark.parametrize("obj", ODD_OBJECTS)
def test_raw_fast_path_equals_dict_path_for_odd_objects(obj: dict) -> None:
    """Odd types, nulls, empty values, big integers: both paths give the same bytes."""
    resource = RESOURCES["Widget"]

    def decode(raw: bytes) -> dict:
        out = json.loads(raw)
        if "kind" not in out:
            out.update(apiVersion=resource.api_version, kind=resource.kind)
        return out

    def event() -> Event:
        return Event(
            EventType.MODIFIED,
            None,
            resource,
            "test",
            CLUSTER_ID,
            raw=json.dumps(obj, separators=(",", ":")).encode(),
            decode=decode,
            identity=("u", "n", "", "1"),
        )

    decoded = event().object
    assert wire.event_envelope(event()) == envelope("MODIFIED", decoded, CLUSTER_ID)


def test_omit_empty_and_always_present() -> None:
    minimal = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bare"}}
    out = wire.as_builtins(wire.to_meshery(minimal, "cid"))
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
    out = wire.as_builtins(
        wire.to_meshery(
            {**minimal, "metadata": {"name": "x", "labels": {}, "generation": 0}, "spec": {}}, "c"
        )
    )
    assert out["spec"] == {"id": "", "attribute": "{}"}
    assert "labels" not in out["metadata"] and "generation" not in out["metadata"]
    # Go's omitempty also covers metadata.name and a label's empty value
    out = wire.as_builtins(
        wire.to_meshery({"kind": "X", "metadata": {"labels": {"flag": "", "a": "1"}}}, "c")
    )
    assert "name" not in out["metadata"] and out["metadata"]["uid"] == ""
    assert out["metadata"]["labels"] == [
        {"id": "", "unique_id": "", "kind": "label", "key": "a", "value": "1"},
        {"id": "", "unique_id": "", "kind": "label", "key": "flag"},
    ]


def test_meshery_ids_flag() -> None:
    source, _ = load("deployment")
    out = wire.as_builtins(wire.to_meshery(source, CLUSTER_ID, meshery_ids=True))
    expected = base64.b64encode(f"{CLUSTER_ID}.Deployment.apps/v1.shop.web".encode()).decode()
    assert out["id"] == out["metadata"]["id"] == expected
    assert out["spec"]["id"] == out["status"]["id"] == expected
    labels = out["metadata"]["labels"]
    assert all(label["id"] == expected for label in labels)
    assert len({label["unique_id"] for label in labels}) == len(labels)
    assert all(label["unique_id"] for label in labels)
    # Off by default: Go sends "".
    assert wire.to_meshery(source, CLUSTER_ID).id == ""


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
    urls = wire.to_meshery(svc, "c").component_metadata["capabilities"]["urls"]
    assert urls == [
        "https://lb.example.com:443",
        "http://lb.example.com:80",
        "https://198.51.100.1:443",
        "http://198.51.100.1:80",
    ]
    headless = {**svc, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}, "status": {}}
    assert wire.to_meshery(headless, "c").component_metadata == {
        "capabilities": {"connection": True, "urls": []}
    }
    # NodePort, no load balancer: Go's localhost:<nodePort> first, then the cluster IP
    node_port = {
        **svc,
        "spec": {
            "type": "NodePort",
            "clusterIP": "10.0.0.7",
            "ports": [{"port": 80, "nodePort": 30080}, {"port": 9090, "nodePort": 30090}],
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "<pending>"}]}},
    }
    assert wire.service_urls(node_port) == [
        "http://localhost:30080",
        "http://localhost:30090",
        "http://10.0.0.7:80",
        "http://10.0.0.7:9090",
    ]
    # a load balancer replaces the node ports, as in Go; IPv6 addresses are bracketed
    balanced = {
        **node_port,
        "spec": {**node_port["spec"], "clusterIPs": ["fd00::7"], "ports": [{"port": 80}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.9"}]}},
    }
    assert wire.service_urls(balanced) == ["http://198.51.100.9:80", "http://[fd00::7]:80"]


def test_deleted_service_has_no_connection_metadata() -> None:
    """Go leaves component_metadata null on DELETED (its Service processor skips deletes)."""
    source, _ = load("service")
    added = orjson.loads(envelope("ADDED", source, CLUSTER_ID))
    deleted = orjson.loads(envelope("DELETED", source, CLUSTER_ID))
    assert added["Object"]["component_metadata"]["capabilities"]["urls"]
    assert "component_metadata" in deleted["Object"]
    assert deleted["Object"]["component_metadata"] is None


def test_input_is_not_modified() -> None:
    source, _ = load("pod")
    before = json.dumps(source, sort_keys=True)
    wire.to_meshery(source, "c", meshery_ids=True)
    assert json.dumps(source, sort_keys=True) == before
