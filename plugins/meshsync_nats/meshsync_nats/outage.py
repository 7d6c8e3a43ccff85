"""Delivery around NATS outages: publish live, or buffer and pump the backlog out in order.

::

    deliver([...]) --live--> publish_batch
                   \\--NATS down or backlog--> PendingBuffer --connected--> pump --> live

While the connection is up and nothing is pending, changes are published directly ("live").
Otherwise they go to the :class:`~meshsync_nats.pending.PendingBuffer`, and the pump empties it
in order once connected, a batch at a time, before going live again: the backlog always goes
out before newer changes. What a batch could not send goes back in front of the buffer. If the
buffer ever had to drop a state, the pump asks the sources to resync once the backlog is out,
so the consumer still ends up with the current state.

Nothing here touches a connection: it drives a ``publish_batch(events) -> failed events``
callable, so these ordering rules are tested without a nats-server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from meshsync_core import ComponentMetrics, Event, RateLimitedLog
from meshsync_nats.pending import PendingBuffer

#: Events published per step when emptying the pending buffer.
PUMP_BATCH = 500


class OutagePump:
    """Routes delivered changes: straight to ``publish_batch`` while live, else through the
    pending buffer and the pump.

    ``count(name, amount)`` keeps the sink's counters, ``spawn(coroutine)`` runs the pump in the
    background, ``prepare()`` runs before each pump step (the JetStream stream check),
    ``request_resync()`` asks the sources for their current state after drops.
    """

    def __init__(
        self,
        pending: PendingBuffer,
        *,
        publish_batch: Callable[[Sequence[Event]], Awaitable[list[Event]]],
        is_connected: Callable[[], bool],
        request_resync: Callable[[], Awaitable[None]],
        count: Callable[[str, int], None],
        spawn: Callable[[Awaitable[None]], None],
        log: logging.Logger,
        limited: RateLimitedLog,
        metrics: ComponentMetrics,
        prepare: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.pending = pending
        self._publish_batch = publish_batch
        self._is_connected = is_connected
        self._request_resync = request_resync
        self._count = count
        self._spawn = spawn
        self._prepare = prepare
        self.log = log
        self._limited = limited
        self.metrics = metrics
        #: One publisher at a time: the pump, a live delivery, the final flush.
        self.lock = asyncio.Lock()
        self.live = False  # connected and nothing pending: publish directly
        self.closing = False
        self._pumping = False
        self._resync_needed = False
        self._progress = asyncio.Event()  # the pump moved on, or the connection changed
        self._dropped_reported = 0

    async def deliver(self, events: Sequence[Event]) -> None:
        """Publish live, or buffer (and slow down while the backlog is being re-sent)."""
        if not self.live or self.pending:
            self.buffer(events)
            await self._wait_while_catching_up()
            return
        async with self.lock:
            failed = await self._publish_batch(events)
        if failed:
            self.buffer(failed)

    async def _wait_while_catching_up(self) -> None:
        """Connected and re-sending the backlog: slow the sources down (engine backpressure)
        instead of letting a fast initial sync overflow the buffer. While disconnected there is
        nobody to wait for, so the buffer coalesces and, if it must, drops."""
        half = self.pending.capacity // 2
        while (
            not self.closing and not self.live and self._is_connected() and len(self.pending) > half
        ):
            self._progress.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._progress.wait(), 1.0)

    def buffer(self, events: Sequence[Event]) -> None:
        """Queue changes behind everything pending; start the pump if we were live."""
        self._count("buffered", len(events))
        self.pending.extend(events)
        self._note_drops()
        self.metrics.set("pending_changes", float(len(self.pending)))
        if self.live and self._is_connected():
            self.live = False
            self._spawn(self.pump())

    def put_back(self, older: list[Event]) -> None:
        """Changes older than everything pending (unconfirmed when the connection dropped) go
        back in front of the buffer."""
        if older:
            self.pending.add_older(older)
            self._note_drops()

    def gauges(self) -> None:
        self.metrics.set("connected", 1.0 if self._is_connected() else 0.0)
        self.metrics.set("pending_changes", float(len(self.pending)))

    def disconnected(self) -> None:
        """The connection is gone: stop publishing live, wake whoever waits for the pump."""
        self.live = False
        self._progress.set()

    def _note_drops(self) -> None:
        dropped = self.pending.dropped
        if dropped > self._dropped_reported:
            self._resync_needed = True
            self._count("buffer_dropped", dropped - self._dropped_reported)
            self._limited.warning(
                "NATS buffer full (%d objects): dropped the oldest pending state of %d "
                "object(s) so far; a resync follows once NATS is back",
                self.pending.capacity,
                dropped,
                key="buffer-full",
            )
            self._dropped_reported = dropped

    async def pump(self) -> None:
        """Empty the pending buffer in order, then go live; retry with backoff on failure."""
        if self._pumping:
            return
        self._pumping = True
        backoff = 0.5
        try:
            while not self.closing and self._is_connected():
                if self._prepare is not None:
                    await self._prepare()
                async with self.lock:
                    if not self.pending:
                        self.live = True
                        break
                    failed = await self._publish_batch(self.pending.drain(PUMP_BATCH))
                    if failed:
                        self.pending.add_older(failed)
                self._progress.set()
                if failed:
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 10.0)
                else:
                    backoff = 0.5
        finally:
            self._pumping = False
            self._progress.set()
            self.gauges()
        if self.live and self._resync_needed:
            self._resync_needed = False
            self.log.warning(
                "changes were dropped while NATS was unreachable; asking the sources to resync"
            )
            await self._request_resync()

    async def send_pending(self) -> None:
        """Publish what is pending while connected, stopping at the first failure (at
        shutdown; the caller holds :attr:`lock`)."""
        while self.pending and self._is_connected():
            failed = await self._publish_batch(self.pending.drain(PUMP_BATCH))
            if failed:
                self.pending.add_older(failed)
                break
