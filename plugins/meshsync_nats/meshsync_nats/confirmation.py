"""Which core NATS publishes are known to have reached the server: the confirmation protocol.

Core NATS has no acknowledgement, and a flush per message would cost a round trip each. So
published changes collect in a *segment*; a background loop seals it and sends a marker to the
sink's own inbox behind it. The marker's echo proves the server took everything before it, so
the sealed segments up to it are *confirmed* (handed to the published index) and kept for a
short while as *recent*. When the connection drops, everything unconfirmed, plus the recent
changes the server may not have forwarded yet (:data:`REPLAY_WINDOW`), goes back in front of
the pending buffer (:meth:`Confirmation.unconfirmed`).

Nothing here touches a connection: it is driven by small callables (send a marker, is the
connection up, these changes are confirmed), so the ordering rules are tested without a
nats-server.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable

from meshsync_core import Event

#: Recently confirmed changes are re-sent after a reconnect: the server may have taken them but
#: died before forwarding them to subscribers.
REPLAY_WINDOW = 0.5


class Confirmation:
    """Segments of published changes, confirmed in order by marker round trips.

    ``send(subject, data)`` publishes a marker (through the same ordered output as the changes),
    ``is_connected()`` says whether sending makes sense, ``published(events)`` receives each
    confirmed segment, in order. The marker subject (an inbox of the connection) is set in
    :attr:`subject` once connected; :meth:`on_marker` is given each echo's data.
    """

    def __init__(
        self,
        *,
        send: Callable[[str, bytes], Awaitable[None]],
        is_connected: Callable[[], bool],
        published: Callable[[list[Event]], None],
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send = send
        self._is_connected = is_connected
        self._published = published
        self.timeout = timeout
        self._clock = clock
        self.subject = ""  # the marker inbox, set once connected
        self._wake = asyncio.Event()
        self._seq = itertools.count(1)
        self._markers: dict[int, asyncio.Future[None]] = {}
        self._segment: list[Event] = []  # published, not yet part of a confirmation
        self._sealed: list[list[Event]] = []  # waiting for the echo of a marker
        self._recent: deque[tuple[float, list[Event]]] = deque()  # confirmed lately

    def note_sent(self, event: Event) -> None:
        """One change handed to the connection: it joins the *current* segment (which
        :meth:`unconfirmed` swaps while a publisher awaits, so never keep a reference to it)."""
        self._segment.append(event)

    def note_all_sent(self, events: list[Event]) -> None:
        """:meth:`note_sent` for a whole written block, in its order (one call, not one each)."""
        self._segment.extend(events)

    def wake(self) -> None:
        """Changes were sent: let the loop confirm them."""
        self._wake.set()

    @property
    def waiting(self) -> bool:
        """A marker is out, waiting for its echo."""
        return bool(self._markers)

    async def run(self) -> None:
        """Round trips behind the publishes: what a returned marker covers reached the server."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._segment or not self._is_connected():
                continue
            segment, self._segment = self._segment, []
            self._sealed.append(segment)
            try:
                await self.roundtrip()
            except asyncio.CancelledError:
                raise
            except Exception:
                # Disconnected (the callback re-queues every sealed segment) or slow: a later
                # marker confirms this segment too, since markers come back in order.
                continue
            now = self._clock()
            while self._sealed:
                done = self._sealed.pop(0)
                self._recent.append((now, done))
                self._published(done)
                if done is segment:
                    break
            cutoff = now - REPLAY_WINDOW
            while self._recent and self._recent[0][0] < cutoff:
                self._recent.popleft()

    async def roundtrip(self) -> None:
        """Wait until the server has processed everything published so far.

        A marker goes to our own inbox through the same ordered output buffer as the changes;
        its echo proves the server took everything before it. (nats-py's ``flush()`` writes its
        PING straight to the socket, so it can overtake commands still in the client's buffer.)
        """
        token = next(self._seq)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._markers[token] = future
        try:
            await self._send(self.subject, str(token).encode())
            # Not asyncio.wait_for: before Python 3.12 it drops a cancellation that arrives
            # with the echo (CPython gh-86296), and close() then waits forever for the
            # confirmer it has just cancelled.
            await asyncio.wait([future], timeout=max(self.timeout, 1.0))
            if not future.done():
                raise asyncio.TimeoutError
        finally:
            self._markers.pop(token, None)

    def on_marker(self, data: bytes) -> None:
        """A marker came back: its round trip is complete."""
        try:
            future = self._markers.get(int(data))
        except ValueError:
            return
        if future is not None and not future.done():
            future.set_result(None)

    def confirm_all(self) -> None:
        """A round trip just came back with nothing published since: all of it is confirmed."""
        for segment in self._sealed:
            self._published(segment)
        self._published(self._segment)
        self._segment, self._sealed = [], []

    def unconfirmed(self) -> list[Event]:
        """The connection dropped: everything not known to be through, oldest first (recent
        changes within :data:`REPLAY_WINDOW`, sealed segments, the current one), to be sent
        again; the bookkeeping starts afresh."""
        cutoff = self._clock() - REPLAY_WINDOW
        older: list[Event] = []
        for confirmed_at, segment in self._recent:
            if confirmed_at >= cutoff:
                older.extend(segment)
        for segment in self._sealed:
            older.extend(segment)
        older.extend(self._segment)
        self._recent.clear()
        self._sealed = []
        self._segment = []
        return older
