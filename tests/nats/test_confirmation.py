"""The core NATS confirmation protocol, driven without a nats-server: markers confirm segments
in order, and after a disconnect everything unconfirmed (plus the recent window) goes back in
front of the pending buffer."""

from __future__ import annotations

import asyncio
import logging

from meshsync_nats.confirmation import REPLAY_WINDOW, Confirmation
from meshsync_nats.outage import OutagePump
from meshsync_nats.pending import PendingBuffer

from meshsync_core import ComponentMetrics, Event, RateLimitedLog
from meshsync_core.testing import make_event, make_modified, wait_until


class FakeConnection:
    """Takes markers like a connection; echoes them back (as the server would) when ``echo``,
    refuses them (a dropped connection) while ``refuse`` is set."""

    def __init__(self, *, echo: bool = True) -> None:
        self.echo = echo
        self.refuse = False
        self.connected = True
        self.markers: list[tuple[str, bytes]] = []
        self.attempts = 0
        self.confirmation: Confirmation | None = None

    async def send(self, subject: str, data: bytes) -> None:
        self.attempts += 1
        if self.refuse:
            raise ConnectionError("connection lost")
        self.markers.append((subject, data))
        if self.echo and self.confirmation is not None:
            asyncio.get_running_loop().call_soon(self.confirmation.on_marker, data)


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def confirmation_for(
    connection: FakeConnection, published: list[list[str]], clock: Clock | None = None
) -> Confirmation:
    confirmation = Confirmation(
        send=connection.send,
        is_connected=lambda: connection.connected,
        published=lambda events: published.append([e.name for e in events]),
        timeout=5.0,
        clock=clock or Clock(),
    )
    confirmation.subject = "_INBOX.markers"
    connection.confirmation = confirmation
    return confirmation


def names(events: list[Event]) -> list[str]:
    return [e.name for e in events]


async def test_each_marker_confirms_its_segment_in_order() -> None:
    connection = FakeConnection(echo=False)
    published: list[list[str]] = []
    confirmation = confirmation_for(connection, published)
    loop = asyncio.create_task(confirmation.run())
    try:
        confirmation.note_sent(make_event("a"))
        confirmation.note_all_sent([make_event("b")])  # a written block joins in its order
        confirmation.wake()
        await wait_until(lambda: confirmation.waiting, what="the first marker")
        # Published while the first marker is out: a new segment, not part of that marker.
        confirmation.note_sent(make_event("c"))
        confirmation.wake()
        first_subject, first = connection.markers[-1]
        assert first_subject == "_INBOX.markers"
        assert published == []  # nothing is confirmed before its marker is back
        confirmation.on_marker(first)
        await wait_until(lambda: len(connection.markers) == 2, what="the second marker")
        assert published == [["a", "b"]]
        confirmation.on_marker(connection.markers[-1][1])
        await wait_until(lambda: len(published) == 2, what="the second confirmation")
        assert published == [["a", "b"], ["c"]]
        assert int(connection.markers[1][1]) > int(first)
    finally:
        loop.cancel()


async def test_a_later_marker_confirms_the_segment_whose_marker_failed_first() -> None:
    connection = FakeConnection()
    published: list[list[str]] = []
    confirmation = confirmation_for(connection, published)
    loop = asyncio.create_task(confirmation.run())
    try:
        connection.refuse = True
        confirmation.note_sent(make_event("a"))
        confirmation.wake()
        await wait_until(lambda: connection.attempts == 1, what="the refused marker")
        # its marker never went out: still sealed, not confirmed
        assert not confirmation.waiting and published == []
        connection.refuse = False
        confirmation.note_sent(make_event("b"))
        confirmation.wake()
        await wait_until(lambda: len(published) == 2, what="both segments confirmed")
        assert published == [["a"], ["b"]]  # oldest first, in one round trip
        assert len(connection.markers) == 1
    finally:
        loop.cancel()


async def test_requeue_after_disconnect_puts_unconfirmed_and_recent_in_front_in_order() -> None:
    clock = Clock(100.0)
    connection = FakeConnection()
    published: list[list[str]] = []
    confirmation = confirmation_for(connection, published, clock)
    loop = asyncio.create_task(confirmation.run())
    a = make_event("a")
    try:
        confirmation.note_sent(make_event("old"))  # confirmed long before the disconnect
        confirmation.wake()
        await wait_until(lambda: len(published) == 1)
        clock.now += REPLAY_WINDOW * 0.8
        confirmation.note_sent(a)  # confirmed within the replay window
        confirmation.wake()
        await wait_until(lambda: len(published) == 2)
        connection.refuse = True
        confirmation.note_sent(make_event("b"))  # sealed, its marker lost
        confirmation.wake()
        await wait_until(lambda: connection.attempts == 3, what="b's refused marker")
        confirmation.note_sent(make_event("c"))  # published, not sealed yet
        clock.now += REPLAY_WINDOW * 0.4  # "old" is now outside the window, "a" inside
        assert published == [["old"], ["a"]]

        pending = PendingBuffer(100)
        pending.extend([make_event("d"), make_modified(a)])  # buffered since the disconnect
        pump = OutagePump(
            pending,
            publish_batch=_never,
            is_connected=lambda: False,
            request_resync=_nothing,
            count=lambda name, amount: None,
            spawn=lambda coro: None,
            log=logging.getLogger("test"),
            limited=RateLimitedLog(logging.getLogger("test")),
            metrics=ComponentMetrics("nats"),
        )
        pump.disconnected()
        pump.put_back(confirmation.unconfirmed())
        resend = pending.drain()
        # b, c in front of what was buffered; a's newer pending state wins over a itself
        assert [(e.name, e.resource_version) for e in resend] == [
            ("b", "1"),
            ("c", "1"),
            ("d", "1"),
            ("a", "2"),
        ]
        assert confirmation.unconfirmed() == []  # the bookkeeping started afresh
    finally:
        loop.cancel()


async def test_without_a_newer_state_the_recent_window_is_resent_first() -> None:
    clock = Clock()
    connection = FakeConnection()
    published: list[list[str]] = []
    confirmation = confirmation_for(connection, published, clock)
    loop = asyncio.create_task(confirmation.run())
    try:
        confirmation.note_sent(make_event("a"))
        confirmation.wake()
        await wait_until(lambda: published == [["a"]])
        confirmation.note_sent(make_event("b"))
        assert names(confirmation.unconfirmed()) == ["a", "b"]
    finally:
        loop.cancel()


async def test_confirm_all_hands_over_sealed_then_current() -> None:
    connection = FakeConnection()
    published: list[list[str]] = []
    confirmation = confirmation_for(connection, published)
    confirmation.note_sent(make_event("a"))
    await confirmation.roundtrip()  # echoed: the server has everything so far
    confirmation.confirm_all()
    assert published == [["a"]]
    assert confirmation.unconfirmed() == []


async def _never(events: object) -> list[Event]:
    raise AssertionError("nothing is published while disconnected")


async def _nothing() -> None:
    return None
