"""The compiled message writer gives the Python path's bytes, or declines.

``wire.event_envelope`` writes the Meshery message of an object's raw JSON in C when it can;
the sink relies on it only because, for every input it accepts, the bytes are exactly those of
``wire.python_event_envelope``. These tests compare both on the golden objects, the bulk
objects, tricky strings in every string field and label, random documents, and list-page
slices; and list what it must hand back to the Python path.
"""

from __future__ import annotations

import contextlib
import json
import random
from pathlib import Path
from typing import Any

import msgspec
import pytest
from meshsync_nats import wire
from meshsync_testkit.seed import bulk_objects

from meshsync_core import Event, EventType, Resource
from tests.file.test_yaml_writer import STRINGS, random_value

pytestmark = pytest.mark.skipif(
    wire.c_envelope is None, reason="the C writer is not built (pure-Python install)"
)

GOLDEN = Path(__file__).parent / "golden"
PODS = Resource(group="", version="v1", plural="pods", kind="Pod")
DEPLOYMENTS = Resource(group="apps", version="v1", plural="deployments", kind="Deployment")


def event(raw: bytes, resource: Resource = PODS, etype: EventType = EventType.ADDED) -> Event:
    def decode(data: Any) -> dict[str, Any]:
        obj: dict[str, Any] = msgspec.json.decode(data)
        if "kind" not in obj:  # as the k8s source decodes list items
            obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind
        return obj

    return Event(etype, None, resource, "k8s", "cluster-ü-1", raw=raw, decode=decode,
                 identity=("uid", "name", "ns", "1"))  # fmt: skip


def compiled(ev: Event) -> bytes | None:
    assert wire.c_envelope is not None
    res = ev.resource
    return wire.c_envelope(ev.raw_json, ev.type.value, ev.cluster_id, res.kind, res.api_version)


def same_or_declined(raw: bytes, resource: Resource = PODS) -> bool:
    """True when the C writer took it (and wrote the Python path's bytes)."""
    taken = False
    for etype in (EventType.ADDED, EventType.DELETED):
        ev = event(raw, resource, etype)
        fast = compiled(ev)
        if fast is not None:
            assert fast == wire.python_event_envelope(ev), raw[:300]
            taken = True
    return taken


def spellings(obj: Any) -> list[bytes]:
    out = []
    for ensure_ascii in (True, False):
        for separators in ((",", ":"), (", ", ": ")):
            with contextlib.suppress(UnicodeEncodeError):  # lone surrogates
                text = json.dumps(obj, ensure_ascii=ensure_ascii, separators=separators)
                out.append(text.encode())
    out.append(json.dumps(obj, indent=2).encode())  # raw texts keep their own white space
    return out


@pytest.mark.parametrize("kind", ["pod", "configmap", "deployment", "node", "customresource"])
def test_golden_objects(kind: str) -> None:
    obj = json.loads((GOLDEN / f"{kind}.input.json").read_text())
    listed = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    for raw in spellings(obj) + spellings(listed):
        assert same_or_declined(raw, DEPLOYMENTS)


def test_bulk_objects_are_all_taken() -> None:
    for obj in bulk_objects(300):
        listed = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
        for raw in spellings(obj) + spellings(listed):
            assert same_or_declined(raw)


def test_tricky_strings_in_every_field() -> None:
    taken = 0
    for text in STRINGS:
        obj = {
            "kind": text,
            "apiVersion": text,
            "metadata": {
                "name": text, "generateName": text, "namespace": text, "uid": text,
                "resourceVersion": text, "creationTimestamp": text, "deletionTimestamp": text,
                "labels": {"a": text, "b" + text[:3]: ""}, "annotations": {"k": text},
                "ownerReferences": [{"name": text}], "finalizers": [text],
                "managedFields": [{"x": text}],
            },
            "spec": {"s": text, text: [text]},
            "status": text,
            "data": {"d": text},
            "type": text,
        }  # fmt: skip
        for raw in spellings(obj):
            taken += same_or_declined(raw)
    assert taken > len(STRINGS)


def test_escaped_surrogate_pairs_are_taken() -> None:
    """JSON's spelling of a character beyond the BMP (\\ud83d\\ude00, as json.dumps writes
    it) is decoded in C, not handed back, and written as the Python path writes it."""
    raw = b'{"metadata":{"name":"a\\ud83d\\ude00","labels":{"k":"\\uD83D\\uDE00"}},"spec":"x"}'
    assert same_or_declined(raw)


@pytest.mark.parametrize(
    "obj",
    [
        {},
        {"metadata": None},
        {"metadata": {}},
        {"kind": ""},
        {"kind": "Thing"},
        {"kind": "Thing", "apiVersion": "x/v1", "metadata": {"labels": {}, "annotations": None}},
        {"metadata": {"generation": 0, "deletionGracePeriodSeconds": 0}},
        {"metadata": {"generation": -0, "deletionGracePeriodSeconds": None}},
        {"metadata": {"generation": 123456789012345678, "deletionGracePeriodSeconds": -5}},
        {"spec": None, "status": None, "data": None, "immutable": True, "binaryData": {}},
        {"spec": {}, "status": [], "stringData": {"a": "b"}, "immutable": False, "type": ""},
        {"spec": [1.5, -0.0, 1e300, 12345678901234567890123, None, True, "x"]},
        {"metadata": {"labels": {"z": "1", "a": "2", "m": "", "": "empty key", "é": "3"}}},
        {"kind": "Service", "apiVersion": "v2"},
        {"unknown": {"deep": [[[[{}]]]]}, "metadata": {"other": [1, {"a": None}]}},
    ],
)
def test_edge_shapes(obj: dict[str, Any]) -> None:
    """Taken in every spelling, except that label keys written with escapes (no API server
    escapes one: label keys are ASCII) go to the Python path."""
    for raw in spellings(obj):
        assert same_or_declined(raw, DEPLOYMENTS) or b'\\u00e9"' in raw


def test_random_documents() -> None:
    rng = random.Random(20261202)
    taken = 0
    for _ in range(1500):
        obj = {
            "metadata": {"name": "n", "labels": {"a": rng.choice(STRINGS)}},
            "spec": random_value(rng, 6),
            "status": random_value(rng, 3),
        }
        for raw in spellings(obj):
            if b"Infinity" in raw or b"NaN" in raw:
                continue  # not JSON
            taken += same_or_declined(raw)
    assert taken > 1500


@pytest.mark.parametrize(
    "raw",
    [
        b'{"kind": null}',  # not a str: the Python path takes the dict path
        b'{"apiVersion": 5}',
        b'{"metadata": []}',
        b'{"metadata": {"name": null}}',
        b'{"metadata": {"generation": 1.0}}',
        b'{"metadata": {"generation": 12345678901234567890}}',
        b'{"metadata": {"labels": {"a": 1}}}',  # a non-string label value
        b'{"metadata": {"labels": {"a": "x", "a": "y"}}}',  # a label twice
        b'{"metadata": {"labels": {"design.meshery.io/id": "X"}}}',  # not a canonical uuid
        b'{"metadata": {"labels": {"\\u0061": "x"}}}',  # an escaped label key
        b'{"kind": "Pod", "kind": "Pod"}',
        b'{"kin\\u0064": "Pod"}',
        b'{"kind": "Service", "apiVersion": "v1"}',
        b'{"kind": "Servic\\u0065", "apiVersion": "v1"}',
        b'{"type": null}',
        b'{"metadata": {"name": "\\ud800"}}',
        b'{"metadata": {"name": "\xff"}}',
        b'{"metadata": {"name": "\xed\xa0\x80"}}',  # a surrogate in UTF-8
        b'{"spec": {"a": 01}}',
        b'{"spec": {"a": tru}}',
        b'{"spec": ' + b"[" * 600 + b"]" * 600 + b"}",
        b'{"spec": {}} x',
        b"[1]",
    ],
)
def test_declines(raw: bytes) -> None:
    assert compiled(event(raw)) is None


def test_list_page_slices() -> None:
    objects = [{k: v for k, v in o.items() if k not in ("apiVersion", "kind")}
               for o in bulk_objects(50)]  # fmt: skip
    page = json.dumps({"items": objects}).encode()
    items = msgspec.json.decode(page, type=dict[str, list[msgspec.Raw]])["items"]
    for raw in items:
        ev = event(raw)
        fast = compiled(ev)
        assert fast is not None
        assert fast == wire.python_event_envelope(ev)


def test_event_envelope_uses_it_and_falls_back() -> None:
    pod = json.dumps(next(iter(bulk_objects(1)))).encode()
    ev = event(pod)
    assert wire.event_envelope(ev) == compiled(ev)
    service = event(b'{"kind": "Service", "apiVersion": "v1", "spec": {"ports": [{"port": 80}]}}')
    assert compiled(service) is None
    message = json.loads(wire.event_envelope(service))
    assert message["Object"]["component_metadata"]["capabilities"]["connection"] is True
    # Meshery ids (a fresh uuid per label) are the Python path's
    assert json.loads(wire.event_envelope(ev, meshery_ids=True))["Object"]["id"]
