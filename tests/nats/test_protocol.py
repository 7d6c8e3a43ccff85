"""Batches of changes as one protocol block: what nats-py's publish would have written."""

from __future__ import annotations

import asyncio
from collections import Counter

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


class ReconnectingClient:
    """Just enough of a nats-py client for CorePublisher: the connection drops and comes back
    while a block is being written (the write then may be lost)."""

    def __init__(self) -> None:
        self.is_connected = True
        self.max_payload = 1024 * 1024
        self.stats = {"out_msgs": 0, "out_bytes": 0, "reconnects": 0}
        self._flush_queue = asyncio.Queue()  # type: ignore[var-annotated]
        self.blocks: list[bytes] = []

    async def _send_command(self, block: bytes) -> None:
        self.blocks.append(block)
        self.stats["reconnects"] += 1  # disconnected and reconnected meanwhile

    async def _flush_pending(self) -> None:
        pass


async def test_a_block_written_across_a_reconnect_is_sent_again() -> None:
    """Not counted as sent (so never confirmed by a later marker): returned to be sent again."""
    import logging

    from meshsync_nats.confirmation import Confirmation
    from meshsync_nats.oversize import Oversize

    from meshsync_core import ComponentMetrics, RateLimitedLog

    client = ReconnectingClient()
    sent: list[bytes] = []

    async def send(subject: str, data: bytes) -> None:
        sent.append(data)

    confirmation = Confirmation(
        send=send, is_connected=lambda: True, published=lambda events: None, timeout=1.0
    )
    metrics = ComponentMetrics("nats")
    log = logging.getLogger("test")
    counts: Counter[str] = Counter()
    publisher = publishing.CorePublisher(
        connection=lambda: client,
        confirmation=confirmation,
        oversize=Oversize(log, metrics, meshery_ids=False),
        meshery_ids=False,
        count=lambda name, amount: counts.update({name: amount}),
        counts=counts,
        metrics=metrics,
        limited=RateLimitedLog(log),
    )
    events = [make_event(f"p{i}") for i in range(3)]
    assert await publisher.publish(events) == events
    assert len(client.blocks) == 1 and counts["published"] == 0
    assert confirmation.unconfirmed() == []
