"""The Event model: objects handed over decoded, or as raw JSON decoded on first access."""

from __future__ import annotations

import json

import pytest

from meshsync_core import Event, EventType, Resource

PODS = Resource("", "v1", "pods", "Pod")
RAW = b'{"metadata":{"name":"web","namespace":"shop","uid":"u1","resourceVersion":"7"},"spec":{}}'


class CountingDecoder:
    """json.loads that counts its calls, so tests can see when decoding happens."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, raw: bytes) -> dict:
        self.calls += 1
        return json.loads(raw)


def lazy(decode: CountingDecoder) -> Event:
    return Event(
        EventType.ADDED,
        None,
        PODS,
        "test",
        "cid",
        raw=RAW,
        decode=decode,
        identity=("u1", "web", "shop", "7"),
    )


def test_identity_and_description_need_no_decode() -> None:
    decode = CountingDecoder()
    event = lazy(decode)
    assert (event.uid, event.name, event.namespace, event.resource_version) == (
        "u1",
        "web",
        "shop",
        "7",
    )
    assert event.describe() == "pods shop/web"
    assert event.raw_json == RAW
    assert decode.calls == 0


def test_object_is_decoded_once_on_first_access() -> None:
    decode = CountingDecoder()
    event = lazy(decode)
    assert event.object["metadata"]["name"] == "web"
    assert event.object is event.object
    assert decode.calls == 1
    assert event.raw_json == RAW  # still describes the object


def test_replacing_the_object_drops_raw_json_and_identity() -> None:
    event = lazy(CountingDecoder())
    event.object = {"metadata": {"name": "other", "uid": "u2", "resourceVersion": "8"}}
    assert event.raw_json is None
    assert (event.uid, event.name, event.resource_version) == ("u2", "other", "8")


def test_replace_keeps_an_undecoded_object_undecoded() -> None:
    decode = CountingDecoder()
    event = lazy(decode)
    moved = event.replace(type=EventType.DELETED, extra={"k": 1})
    assert moved.type is EventType.DELETED and moved.extra == {"k": 1}
    assert moved.raw_json == RAW and moved.uid == "u1"
    assert decode.calls == 0
    changed = event.replace(object={"metadata": {"name": "x"}})
    assert changed.raw_json is None and changed.name == "x"
    with pytest.raises(TypeError, match="unknown fields: colour"):
        event.replace(colour="red")


def test_equality_compares_decoded_objects() -> None:
    decoded = Event(EventType.ADDED, json.loads(RAW), PODS, "test", "cid")
    assert lazy(CountingDecoder()) == decoded
    assert lazy(CountingDecoder()) != decoded.replace(cluster_id="other")


def test_an_event_needs_an_object_or_raw_json_with_a_decoder() -> None:
    with pytest.raises(TypeError, match="needs an object"):
        Event(EventType.ADDED, None, PODS)
    with pytest.raises(TypeError, match="needs an object"):
        Event(EventType.ADDED, None, PODS, raw=RAW)


def test_plain_events_read_identity_from_the_object() -> None:
    event = Event(EventType.MODIFIED, json.loads(RAW), PODS)
    assert (event.uid, event.namespace, event.raw_json) == ("u1", "shop", None)
    assert repr(event) == "<Event MODIFIED pods shop/web from ?>"
