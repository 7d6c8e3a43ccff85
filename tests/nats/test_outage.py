"""The outage buffer pump, driven without a nats-server: the backlog goes out before live
changes, what failed goes back in front, and drops lead to one resync request."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Sequence
from typing import Any

from meshsync_nats.outage import PUMP_BATCH, OutagePump
from meshsync_nats.pending import PendingBuffer

from meshsync_core import ComponentMetrics, Event, RateLimitedLog
from meshsync_core.testing import make_event, wait_until


class Harness:
    """An :class:`OutagePump` on a fake publisher that records each batch (and the resync
    requests) in one journal; ``fail_from`` makes the next batch fail from that index."""

    def __init__(self, capacity: int = 100) -> None:
        self.connected = False
        self.journal: list[Any] = []
        self.fail_from: int | None = None
        self.on_publish: Any = None
        self.counts: Counter[str] = Counter()
        self.tasks: list[asyncio.Future[Any]] = []
        log = logging.getLogger("meshsync.test.outage")
        self.metrics = ComponentMetrics("nats")
        self.pump = OutagePump(
            PendingBuffer(capacity),
            publish_batch=self.publish_batch,
            is_connected=lambda: self.connected,
            request_resync=self.request_resync,
            count=self.count,
            spawn=self.spawn,
            log=log,
            limited=RateLimitedLog(log),
            metrics=self.metrics,
        )

    async def publish_batch(self, events: Sequence[Event]) -> list[Event]:
        self.journal.append([e.name for e in events])
        if self.on_publish is not None:
            hook, self.on_publish = self.on_publish, None
            hook()
        if self.fail_from is not None:
            index, self.fail_from = self.fail_from, None
            return list(events[index:])
        return []

    async def request_resync(self) -> None:
        self.journal.append("resync")

    def count(self, name: str, amount: int) -> None:
        self.counts[name] += amount

    def spawn(self, coro: Awaitable[Any]) -> None:
        self.tasks.append(asyncio.ensure_future(coro))


def events(*names: str) -> list[Event]:
    return [make_event(name) for name in names]


async def test_backlog_goes_out_in_order_before_live_changes() -> None:
    h = Harness(capacity=10_000)
    backlog = [f"p{i}" for i in range(PUMP_BATCH * 2 + 7)]
    for name in backlog:
        await h.pump.deliver(events(name))  # disconnected: buffered, nobody to wait for
    assert h.journal == [] and len(h.pump.pending) == len(backlog)
    assert not h.pump.live
    h.connected = True
    await h.pump.pump()
    assert [len(batch) for batch in h.journal] == [PUMP_BATCH, PUMP_BATCH, 7]
    assert [name for batch in h.journal for name in batch] == backlog
    assert h.pump.live and not h.pump.pending
    await h.pump.deliver(events("live"))
    assert h.journal[-1] == ["live"]  # live: published directly, after the backlog
    assert h.counts["buffered"] == len(backlog)
    assert h.metrics.value("pending_changes") == 0.0


async def test_changes_while_the_backlog_is_pending_queue_behind_it() -> None:
    h = Harness()
    await h.pump.deliver(events("a", "b"))
    h.connected = True
    await h.pump.deliver(events("c"))  # connected but not live yet: behind the backlog
    assert h.journal == []
    await h.pump.pump()
    assert h.journal == [["a", "b", "c"]]


async def test_failed_events_go_back_in_front_of_newer_ones() -> None:
    h = Harness()
    await h.pump.deliver(events("a", "b", "c"))
    h.connected = True
    h.fail_from = 1  # a goes out, b and c do not
    # A change delivered while that batch was being published: newer than b and c.
    h.on_publish = lambda: h.pump.buffer(events("d"))
    await h.pump.pump()  # retries after a backoff
    assert h.journal == [["a", "b", "c"], ["b", "c", "d"]]
    assert h.pump.live and not h.pump.pending


async def test_a_failed_live_publish_is_buffered_and_pumped_out() -> None:
    h = Harness()
    h.connected = True
    await h.pump.pump()  # nothing pending: live at once
    assert h.pump.live and h.journal == []
    h.fail_from = 0
    await h.pump.deliver(events("a"))
    assert not h.pump.live  # the pump takes over
    assert len(h.tasks) == 1
    await h.tasks[0]
    assert h.journal == [["a"], ["a"]]
    assert h.pump.live


async def test_drops_lead_to_one_resync_once_the_backlog_is_out() -> None:
    h = Harness(capacity=2)
    await h.pump.deliver(events("a", "b", "c", "d"))  # disconnected, full: a and b dropped
    assert h.counts["buffer_dropped"] == 2
    assert "resync" not in h.journal  # nobody to resync with while NATS is down
    h.connected = True
    await h.pump.pump()
    assert h.journal == [["c", "d"], "resync"]
    h.pump.disconnected()
    await h.pump.deliver(events("e"))
    await h.pump.pump()  # a later outage without drops: no other resync
    assert h.journal == [["c", "d"], "resync", ["e"]]


async def test_waits_for_the_pump_while_catching_up_not_while_disconnected() -> None:
    h = Harness(capacity=4)
    await h.pump.deliver(events("a", "b", "c"))  # disconnected: returns at once
    h.connected = True
    waiting = asyncio.ensure_future(h.pump.deliver(events("d")))
    await wait_until(lambda: len(h.pump.pending) == 4, what="d buffered")
    assert not waiting.done()  # over half the buffer and connected: backpressure
    await h.pump.pump()
    await asyncio.wait_for(waiting, 5.0)  # the pump's progress releases it
    assert h.journal == [["a", "b", "c", "d"]]
