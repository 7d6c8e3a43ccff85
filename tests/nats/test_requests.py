"""Requests on meshery.meshsync.request: every entity, and bad requests that change nothing."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest
from meshsync_k8s.redaction import SecretRedaction
from meshsync_nats import requests as req
from meshsync_nats.sink import NatsSink
from meshsync_testkit.nats_server import NatsServer

from meshsync_core import Engine, __version__
from tests.nats.helpers import (
    SECRETS,
    ModelSource,
    Running,
    Subscriber,
    log_lines,
    nats_options,
    pod,
    wait_connected,
)


def request(entity: str, payload: object = None) -> bytes:
    return orjson.dumps({"Request": {"Entity": entity, "Payload": payload}})


def secret() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "token", "namespace": "default", "uid": "uid-secret"},
        "type": "Opaque",
        "data": {"token": "c2VjcmV0"},
    }


async def start(server: NatsServer, objects: list[dict]) -> tuple[ModelSource, NatsSink, Engine]:
    source = ModelSource(objects)
    sink = NatsSink(nats_options(server.url))
    engine = Engine([source], [sink], [SecretRedaction({})])
    return source, sink, engine


async def test_informer_store_answers_every_object_in_batches_of_five(
    nats_server: NatsServer,
) -> None:
    source, sink, engine = await start(nats_server, [pod(f"p{i}") for i in range(12)])
    replies = Subscriber()
    await replies.connect(nats_server.url, subject="meshery-server.meshsync.store")
    async with Running(engine):
        await source.started()
        await source.apply(secret(), SECRETS)
        await source.delete("uid-default-p0")
        await wait_connected(sink)
        assert replies.nc is not None
        await replies.nc.publish(
            req.SUBJECT_REQUEST,
            request("informer-store", {"Reply": "meshery-server.meshsync.store"}),
        )
        # 12 objects: p1..p11 and the Secret -> messages of 5, 5 and 2
        messages = await replies.wait_count(3)
    await replies.close()
    assert [len(m["Object"]) for m in messages] == [5, 5, 2]
    # a bare broker.Message, as Go publishes it
    assert all(list(m) == ["ObjectType", "EventType", "Request", "Object"] for m in messages)
    assert all((m["ObjectType"], m["EventType"], m["Request"]) == ("", "", None) for m in messages)
    objects = [obj for m in messages for obj in m["Object"]]
    assert {o["metadata"]["uid"] for o in objects} == set(source.model)
    by_kind = {o["kind"]: o for o in objects}
    assert by_kind["Pod"]["spec"]["attribute"].startswith("{")  # the Meshery shape
    assert by_kind["Secret"]["data"] == '{"token":"[REDACTED]"}'  # transforms applied


async def test_resync_discovery_resends_current_state(nats_server: NatsServer) -> None:
    source, _sink, engine = await start(nats_server, [pod(f"p{i}") for i in range(3)])
    subscriber = Subscriber()
    await subscriber.connect(nats_server.url)
    async with Running(engine):
        await source.started()
        await subscriber.wait_count(3)
        assert subscriber.nc is not None
        await subscriber.nc.publish(req.SUBJECT_REQUEST, request("resync-discovery"))
        messages = await subscriber.wait_count(6)
    await subscriber.close()
    assert source.resyncs == 1
    assert [m["EventType"] for m in messages[3:]] == ["ADDED"] * 3


async def test_meshsync_meta_publishes_version(nats_server: NatsServer) -> None:
    _source, sink, engine = await start(nats_server, [])
    meta = Subscriber()
    await meta.connect(nats_server.url, subject="meshsync-meta")
    async with Running(engine):
        await wait_connected(sink)
        assert meta.nc is not None
        await meta.nc.publish(req.SUBJECT_REQUEST, request("meshsync-meta"))
        messages = await meta.wait_count(1)
    await meta.close()
    assert messages == [{"ObjectType": "", "EventType": "", "Request": None, "Object": __version__}]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"Entity": "informer-store"}', 'no "Request" object'),
        (request("informer-store", {"NoReply": 1}), "informer-store needs"),
        (request("no-such-thing"), "unknown entity 'no-such-thing'"),
        (request("log-stream", {}), "ignoring malformed log-stream request"),
        (request("exec-request", {}), "ignoring malformed exec-request"),
    ],
)
async def test_bad_or_unsupported_request_is_logged_once_and_ignored(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture, data: bytes, reason: str
) -> None:
    caplog.set_level(logging.INFO, logger="meshsync")
    source, _sink, engine = await start(nats_server, [pod("a")])
    subscriber = Subscriber()
    await subscriber.connect(nats_server.url)
    async with Running(engine):
        await source.started()
        await subscriber.wait_count(1)
        assert subscriber.nc is not None
        for _ in range(3):  # repeated: still one warning line
            await subscriber.nc.publish(req.SUBJECT_REQUEST, data)
        # A good request after the bad ones is answered: the bad ones disturbed nothing.
        await subscriber.nc.publish(req.SUBJECT_REQUEST, request("resync-discovery"))
        await subscriber.wait_count(2)
        await source.apply(pod("b"))
        await subscriber.wait_count(3)
    await subscriber.close()
    lines = log_lines(caplog, logging.WARNING, reason)
    assert len(lines) == 1, lines
    assert source.resyncs == 1
    assert not log_lines(caplog, logging.ERROR)


def test_parse_request_shapes() -> None:
    assert req.parse_request(request("meshsync-meta")) == ("meshsync-meta", None)
    assert req.reply_subject({"Reply": "a.b"}) == "a.b"
    assert req.reply_subject("a.b") == "a.b"
    with pytest.raises(req.BadRequest):
        req.reply_subject({"Reply": "has space"})


async def test_requests_use_queue_group(nats_server: NatsServer) -> None:
    """Two MeshSyncs in one queue group: each request is answered once."""
    sinks = []
    engines = []
    sources = []
    for _ in range(2):
        source, sink, engine = await start(nats_server, [])
        sources.append(source)
        sinks.append(sink)
        engines.append(engine)
    meta = Subscriber()
    await meta.connect(nats_server.url, subject="meshsync-meta")
    async with Running(engines[0]), Running(engines[1]):
        for sink in sinks:
            await wait_connected(sink)
        assert meta.nc is not None
        for _ in range(4):
            await meta.nc.publish(req.SUBJECT_REQUEST, request("meshsync-meta"))
        await meta.wait_count(4)
        # If both answered, 8 would arrive; give stragglers a round trip to show up.
        await meta.nc.flush()
        await asyncio.gather(*(s.nc.flush() for s in sinks))
        await meta.nc.flush()
    await meta.close()
    assert len(meta.messages) == 4
