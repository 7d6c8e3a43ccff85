"""Batches of changes as one protocol block: what nats-py's publish would have written."""

from __future__ import annotations

import nats
import pytest
from meshsync_nats import protocol, publishing
from meshsync_nats.sink import NatsSink
from meshsync_testkit.nats_server import NatsServer

from meshsync_core import Engine
from meshsync_core.testing import MemorySource, make_event
from tests.nats.helpers import Subscriber, nats_options


def test_headers_are_the_protocol_lines_nats_py_writes() -> None:
    """The same operation, arguments and bytes (nats-py leaves an empty reply field between
    two spaces; the server splits on whitespace)."""
    from nats.protocol.command import hpub_cmd, pub_cmd

    def split(frame: bytes) -> tuple[list[bytes], bytes]:
        line, rest = frame.split(b"\r\n", 1)
        return line.split(), rest

    payload = b'{"a": "\\r\\n"}'
    ours = protocol.pub_header(b"s.x", len(payload)) + payload + protocol.CRLF
    assert split(ours) == split(pub_cmd("s.x", "", payload))
    headers = b"NATS/1.0\r\nKV-Operation: DEL\r\n\r\n"
    ours = protocol.hpub_header(b"s.y", headers, 0) + headers + protocol.CRLF
    assert split(ours) == split(hpub_cmd("s.y", "", headers, b""))


async def test_a_block_arrives_as_its_messages_in_order(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    sub = await nc.subscribe("blk")
    writer = protocol.block_writer(nc)
    assert writer is not None
    payloads = [b"one", b"", b"three\r\nwith a line break", b"x" * 100_000]
    block = b"".join(protocol.pub_header(b"blk", len(p)) + p + protocol.CRLF for p in payloads)
    await writer(block, len(payloads), sum(map(len, payloads)))
    received = [(await sub.next_msg(timeout=5)).data for _ in payloads]
    assert received == payloads
    assert nc.stats["out_msgs"] == len(payloads)
    await nc.close()


def test_a_client_without_the_internals_gets_no_block_writer() -> None:
    class Plain:
        async def publish(self, subject: str, payload: bytes) -> None:  # pragma: no cover
            pass

    assert protocol.block_writer(Plain()) is None


@pytest.mark.parametrize("batched", [True, False])
async def test_the_sink_delivers_everything_in_order_either_way(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch, batched: bool
) -> None:
    """Batched blocks, and one publish per change where nats-py lacks the internals."""
    if not batched:
        monkeypatch.setattr(publishing, "block_writer", lambda nc: None)
    subscriber = Subscriber()
    await subscriber.connect(nats_server.url)
    events = [make_event(f"p{i}", resource_version=str(i + 1)) for i in range(700)]
    sink = NatsSink(nats_options(nats_server.url))
    result = await Engine([MemorySource(events)], [sink], once=True).run()
    assert result.exit_code == 0
    await subscriber.wait_count(700)
    await subscriber.close()
    names = [m["Object"]["metadata"]["name"] for m in subscriber.messages]
    assert names == [f"p{i}" for i in range(700)]
    assert sink.counts["published"] == 700
