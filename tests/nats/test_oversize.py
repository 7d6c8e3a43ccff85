"""No object silently missing: a message over the NATS server's ``max_payload`` (the real
nats-server's default, 1 MB) is published without its largest fields, marked with an
annotation and counted; one that cannot be made to fit is an error line, counted as not
delivered."""

from __future__ import annotations

import json
import logging

import orjson
import pytest
from meshsync_nats import wire
from meshsync_nats.jetstream import msg_id
from meshsync_nats.oversize import (
    LAST_APPLIED,
    TRUNCATED_ANNOTATION,
    TooLarge,
    headers_size,
    shrink,
)
from meshsync_nats.sink import NatsSink
from meshsync_testkit.nats_server import NatsServer

from meshsync_core import Engine, Event, EventType
from tests.nats.helpers import (
    CLUSTER_ID,
    CONFIGMAPS,
    PODS,
    SECRETS,
    ModelSource,
    Running,
    Subscriber,
    as_json,
    envelope,
    log_lines,
    nats_options,
    pod,
    wait_connected,
    wait_until,
)
from tests.nats.test_redaction import transforms_for

MB = 1024 * 1024


def configmap(name: str, data: dict[str, str], **metadata: object) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", **metadata},
        "data": data,
    }


def annotations_of(obj: dict) -> dict[str, str]:
    return {a["key"]: a.get("value", "") for a in obj["metadata"].get("annotations") or ()}


async def publish_and_receive(
    server: NatsServer,
    objects: list[tuple[dict, object]],
    transforms: list | None = None,
    **options: object,
) -> tuple[NatsSink, Subscriber]:
    """Run the engine, apply each object, then a small marker Pod, and wait for the marker:
    what was published before it has arrived by then (one connection, in order)."""
    subscriber = Subscriber()
    await subscriber.connect(server.url)
    source = ModelSource()
    sink = NatsSink(nats_options(server.url, **options))
    async with Running(Engine([source], [sink], transforms or [])):
        await source.started()
        await wait_connected(sink)
        assert sink.nc.max_payload == MB  # the real server's default, nothing configured
        for obj, resource in objects:
            await source.apply(obj, resource)
        await source.apply(pod("after"))
        await subscriber.wait_for(lambda: "uid-default-after" in subscriber.view, timeout=20)
    await subscriber.close()
    return sink, subscriber


async def test_configmap_over_1mb_arrives_without_data_marked_and_counted(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="meshsync")
    big = configmap("big", {"blob": "v" * 1_200_000, "small": "kept?"}, labels={"app": "web"})
    sink, subscriber = await publish_and_receive(nats_server, [(big, CONFIGMAPS)])
    messages = [m for m in subscriber.messages if m["Object"]["metadata"]["uid"] == "uid-big"]
    assert len(messages) == 1
    (message,) = messages
    assert message["EventType"] == "ADDED" and message["ObjectType"] == "meshsync-data"
    obj = as_json(message)["Object"]  # every JSON-text field still parses
    assert "data" not in obj
    assert obj["metadata"]["name"] == "big" and obj["kind"] == "ConfigMap"
    assert annotations_of(obj) == {TRUNCATED_ANNOTATION: "data"}
    assert obj["metadata"]["labels"][0]["key"] == "app"
    assert sink.metrics.value("objects_truncated_total", resource=CONFIGMAPS.key) == 1
    assert sink.counts["unsendable"] == 0
    (warning,) = log_lines(caplog, contains="too large for NATS")
    assert "configmaps default/big" in warning and "without data" in warning
    assert "1,048,576" in warning and "vvvv" not in warning


async def test_configmap_under_1mb_full_of_quotes_is_truncated_too(
    nats_server: NatsServer,
) -> None:
    """JSON text inside a JSON string: each quote or backslash of a value costs four bytes."""
    value = '"\\' * 150_000
    cm = configmap("quotes", {"script": value})
    assert len(json.dumps(cm)) < MB  # the object itself is well under the limit
    assert len(envelope("ADDED", cm, CLUSTER_ID)) > MB  # its message is not
    sink, subscriber = await publish_and_receive(nats_server, [(cm, CONFIGMAPS)])
    obj = subscriber.view["uid-quotes"]
    assert "data" not in obj
    assert annotations_of(obj) == {TRUNCATED_ANNOTATION: "data"}
    assert sink.metrics.value("objects_truncated_total", resource=CONFIGMAPS.key) == 1


def big_secret() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "certs", "namespace": "default", "uid": "uid-certs"},
        "type": "Opaque",
        "data": {f"key{i}": "c2VjcmV0LXZhbHVl" * 4_000 for i in range(20)},  # ~1.3 MB
    }


@pytest.mark.parametrize("redact", [None, False], ids=["redacted-default", "no-redact"])
async def test_big_secret(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture, redact: bool | None
) -> None:
    caplog.set_level(logging.DEBUG, logger="meshsync")
    sink, subscriber = await publish_and_receive(
        nats_server, [(big_secret(), SECRETS)], transforms_for(redact)
    )
    obj = as_json({"Object": subscriber.view["uid-certs"]})["Object"]
    truncated = sink.metrics.value("objects_truncated_total", resource=SECRETS.key)
    if redact is None:  # redacted values are small: it fits, keys and all
        assert obj["data"] == {f"key{i}": "[REDACTED]" for i in range(20)}
        assert TRUNCATED_ANNOTATION not in annotations_of(obj)
        assert truncated == 0
    else:
        assert "data" not in obj
        assert annotations_of(obj) == {TRUNCATED_ANNOTATION: "data"}
        assert truncated == 1
    assert "c2VjcmV0" not in caplog.text  # no value in any log line, at any level


async def test_too_large_even_without_its_fields_is_an_error_counted_not_delivered(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="meshsync")
    annotations = {f"example.com/note-{i}": "n" * 600 for i in range(2_000)}  # 1.2 MB
    huge = pod("huge", status={"phase": "Running"})
    huge["metadata"]["annotations"] = annotations
    sink, subscriber = await publish_and_receive(nats_server, [(huge, PODS)])
    assert "uid-default-huge" not in subscriber.view
    (error,) = log_lines(caplog, logging.ERROR, "cannot publish pods default/huge")
    assert "even without spec, status" in error and "not delivered" in error
    assert "over the limit of 1,048,576 bytes (the server's max_payload)" in error
    assert sink.counts["unsendable"] == 1
    assert sink.metrics.value("unsendable_total", resource=PODS.key) == 1
    assert sink.metrics.value("objects_truncated_total", resource=PODS.key) == 0
    assert log_lines(caplog, contains="1 change(s) were never delivered")


async def test_jetstream_stores_the_truncated_object(jetstream_server: NatsServer) -> None:
    big = configmap("big", {"blob": "v" * 1_200_000})
    sink, subscriber = await publish_and_receive(
        jetstream_server, [(big, CONFIGMAPS)], nats_jetstream=True, nats_stream="OVERSIZE"
    )
    assert TRUNCATED_ANNOTATION in annotations_of(subscriber.view["uid-big"])
    reader = Subscriber()
    await reader.connect(jetstream_server.url)
    assert reader.nc is not None
    jsm = reader.nc.jsm()
    info = await jsm.stream_info("OVERSIZE")
    stored = [await jsm.get_msg("OVERSIZE", seq) for seq in range(1, info.state.last_seq + 1)]
    await reader.close()
    (msg,) = [m for m in stored if m.headers and m.headers["Nats-Msg-Id"].startswith("uid-big|")]
    obj = as_json(orjson.loads(msg.data))["Object"]
    assert annotations_of(obj) == {TRUNCATED_ANNOTATION: "data"} and "data" not in obj
    assert sink.metrics.value("objects_truncated_total", resource=CONFIGMAPS.key) == 1


def cm_with_message_size(size: int) -> dict:
    """A ConfigMap whose ADDED message (as the sink sends it, with the first resourceVersion
    ModelSource gives) is exactly ``size`` bytes."""
    rv = {"resourceVersion": "1000"}
    base = len(envelope("ADDED", configmap("edge", {"blob": ""}, **rv), CLUSTER_ID))
    cm = configmap("edge", {"blob": "e" * (size - base)}, **rv)
    assert len(envelope("ADDED", cm, CLUSTER_ID)) == size
    return cm


@pytest.mark.parametrize("jetstream", [False, True], ids=["core", "jetstream"])
async def test_headers_count_against_max_payload(
    jetstream_server: NatsServer, jetstream: bool
) -> None:
    """A message of exactly max_payload bytes fits in core NATS, but not with JetStream's
    Nats-Msg-Id header: the server would close the connection for it (Maximum Payload
    Violation), again and again, so the sink truncates it instead."""
    cm = cm_with_message_size(MB - 10)
    options = {"nats_jetstream": True, "nats_stream": "EDGE"} if jetstream else {}
    sink, subscriber = await publish_and_receive(jetstream_server, [(cm, CONFIGMAPS)], **options)
    truncated = TRUNCATED_ANNOTATION in annotations_of(subscriber.view["uid-edge"])
    assert truncated == jetstream
    assert sink.counts["disconnects"] == 0


async def test_jetstream_stream_max_msg_size_is_a_limit_too(
    jetstream_server: NatsServer,
) -> None:
    """An existing stream with a smaller max_msg_size would refuse the message, and the sink
    would retry it forever: it is truncated to fit that limit instead."""
    import nats

    nc = await nats.connect(jetstream_server.url)
    await nc.jsm().add_stream(name="SMALL", subjects=[wire.SUBJECT_CORE], max_msg_size=64_000)
    await nc.close()
    cm = configmap("mid", {"blob": "m" * 100_000})
    sink, subscriber = await publish_and_receive(
        jetstream_server, [(cm, CONFIGMAPS)], nats_jetstream=True, nats_stream="SMALL"
    )
    assert annotations_of(subscriber.view["uid-mid"]) == {TRUNCATED_ANNOTATION: "data"}
    assert sink.counts["ack_failures"] == 0


# -- shrink() on its own: which fields go, in which order ------------------------------------


def event_of(obj: dict, resource=PODS, raw: bool = False) -> Event:
    if raw:  # as the Kubernetes source hands objects over: undecoded
        return Event(
            EventType.ADDED,
            None,
            resource,
            cluster_id=CLUSTER_ID,
            raw=orjson.dumps(obj),
            decode=orjson.loads,
        )
    return Event(EventType.ADDED, obj, resource, cluster_id=CLUSTER_ID)


@pytest.mark.parametrize("raw", [False, True], ids=["dict", "raw-json"])
def test_biggest_fields_go_first_until_it_fits(raw: bool) -> None:
    obj = pod(
        "p",
        spec={"s": "s" * 100_000},
        status={"t": "t" * 500_000},
        data={"d": "d" * 600_000},
    )
    event = event_of(obj, raw=raw)
    full = len(wire.event_envelope(event))
    payload, dropped = shrink(event, MB)
    assert dropped == ["data"] and len(payload) <= MB < full
    payload, dropped = shrink(event, 300_000)
    assert dropped == ["data", "status"]  # listed in a fixed order, not the dropping order
    message = orjson.loads(payload)
    out = as_json(message)["Object"]
    assert "data" not in out and "status" not in out and out["spec"]["attribute"] == obj["spec"]
    assert annotations_of(out)[TRUNCATED_ANNOTATION] == "data,status"


def test_last_applied_annotation_goes_when_it_is_the_largest_and_order_is_kept() -> None:
    obj = configmap(
        "applied",
        {"k": "small"},
        annotations={LAST_APPLIED: json.dumps({"data": {"k": "x" * 50_000}}), "z.io/a": "1"},
    )
    payload, dropped = shrink(event_of(obj, CONFIGMAPS), 20_000)
    assert dropped == [LAST_APPLIED]
    keys = [a["key"] for a in orjson.loads(payload)["Object"]["metadata"]["annotations"]]
    assert keys == sorted(keys) == [TRUNCATED_ANNOTATION, "z.io/a"]
    assert orjson.loads(payload)["Object"]["data"] == '{"k":"small"}'


def test_meshery_ids_give_the_marker_its_ids() -> None:
    obj = configmap("ids", {"blob": "x" * 5_000})
    payload, _ = shrink(event_of(obj, CONFIGMAPS), 2_000, meshery_ids=True)
    out = orjson.loads(payload)["Object"]
    (marker,) = out["metadata"]["annotations"]
    assert marker["id"] == out["id"] != "" and marker["unique_id"]
    assert marker["kind"] == "annotation" and marker["value"] == "data"


def test_cannot_fit_says_by_how_much() -> None:
    obj = pod("p", status={"t": "t" * 1_000})
    obj["metadata"]["labels"] = {f"l{i}": "v" * 50 for i in range(100)}
    with pytest.raises(TooLarge) as info:
        shrink(event_of(obj), 2_000)
    assert info.value.dropped == ["spec", "status"] and info.value.smallest > 2_000
    assert "not delivered" in str(info.value)


def test_headers_size_matches_what_the_server_counts() -> None:
    headers = {"Nats-Msg-Id": msg_id(event_of(pod("p")))}
    expected = len(b"NATS/1.0\r\n" + f"Nats-Msg-Id: {headers['Nats-Msg-Id']}\r\n".encode())
    assert headers_size(headers) == expected + 2
    assert headers_size(None) == 0


async def test_informer_store_answer_is_split_and_truncated_to_fit(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A batch of five over max_payload went nowhere (the whole answer failed): now it goes
    one object per message, each made to fit; one that cannot be is left out, loudly."""
    caplog.set_level(logging.INFO, logger="meshsync")
    from meshsync_nats.requests import SUBJECT_REQUEST

    huge = pod("huge")
    huge["metadata"]["annotations"] = {f"example.com/n-{i}": "n" * 600 for i in range(2_000)}
    big = configmap("big", {"blob": "v" * 1_200_000})
    source = ModelSource([pod("p0"), pod("p1"), huge, pod("p2"), pod("p3"), pod("p4")])
    sink = NatsSink(nats_options(nats_server.url))
    replies = Subscriber()
    await replies.connect(nats_server.url, subject="meshery-server.meshsync.store")
    async with Running(Engine([source], [sink])):
        await source.started()
        await source.apply(big, CONFIGMAPS)
        await wait_connected(sink)
        assert replies.nc is not None
        payload = {"Reply": "meshery-server.meshsync.store"}
        request = {"Request": {"Entity": "informer-store", "Payload": payload}}
        await replies.nc.publish(SUBJECT_REQUEST, orjson.dumps(request))
        # p0 p1 huge p2 p3 | p4 big: each batch is over the limit, so it goes one object per
        # message: huge left out, big truncated.
        await wait_until(
            lambda: bool(log_lines(caplog, logging.INFO, "answered informer-store")),
            what="the answer",
        )
        await replies.wait_count(6)
    messages = replies.messages
    await replies.close()
    objects = [obj for m in messages for obj in m["Object"]]
    names = sorted(o["metadata"]["name"] for o in objects)
    assert names == ["big", "p0", "p1", "p2", "p3", "p4"]
    assert all(len(m) <= MB for m in map(orjson.dumps, messages))
    (got_big,) = [o for o in objects if o["metadata"]["name"] == "big"]
    assert annotations_of(got_big) == {TRUNCATED_ANNOTATION: "data"}
    assert log_lines(caplog, logging.ERROR, "cannot answer informer-store with pods default/huge")
    # once as a change (ADDED at start), once in the answer
    assert sink.metrics.value("unsendable_total", resource=PODS.key) == 2
