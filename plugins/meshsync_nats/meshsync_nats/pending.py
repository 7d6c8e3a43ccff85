"""The bounded buffer of events waiting for NATS, coalescing by object.

While NATS is unreachable the sink keeps going: events land here instead. A consumer only
needs each object's latest state, so a newer event for an object replaces its pending one
(it moves to the end, keeping causal order between objects: a DELETED of ``web`` stays before
the ADDED of a new ``web``). Deletions are never evicted; when the buffer is full the oldest
pending non-delete state is dropped, counted, and the sink asks the source for a resync after
reconnecting so the consumer still converges.

In ``keep_all`` mode (JetStream) every event is kept in order while there is room, so a durable
stream receives the full history; on overflow the buffer first compacts to one entry per object.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from meshsync_core import Event, EventType

_DELETED = EventType.DELETED
_ADDED = EventType.ADDED


def object_key(event: Event) -> Any:
    """Which object an event is about: its uid, or resource+namespace+name without one."""
    uid = event.uid
    if uid:
        return uid
    return (event.resource.key, event.namespace, event.name)


def _merge(old: Event, new: Event) -> Event:
    """A newer event for a pending object. ADDED then MODIFIED stays ADDED (the consumer may
    never have seen the object); anything then DELETED is DELETED."""
    if old.type is _ADDED and new.type is EventType.MODIFIED:
        return new.replace(type=_ADDED)  # the object stays undecoded
    return new


def to_resend(results: list[tuple[Event, bool]]) -> list[Event]:
    """The events of a published batch to send again, given ``(event, acknowledged)`` in order.

    JetStream acknowledges each message on its own, so a change can fail while a later change
    of the same object is stored. Resending the older one would put it after the newer one in
    the stream, and the consumer would end on a stale state: such a superseded change is not
    resent. Everything else that failed is, in its original order.
    """
    stored_later: set[Any] = set()
    resend: list[Event] = []
    for event, acknowledged in reversed(results):
        key = object_key(event)
        if acknowledged:
            stored_later.add(key)
        elif key not in stored_later:
            resend.append(event)
    resend.reverse()
    return resend


class PendingBuffer:
    """Ordered events waiting to be published; at most ``capacity`` non-delete entries."""

    def __init__(self, capacity: int, *, keep_all: bool = False) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.keep_all = keep_all
        self._coalescing = not keep_all
        self._items: dict[Any, Event] = {}
        self._seq = 0
        self._live = 0  # entries that are not DELETED
        #: Older states replaced by newer ones (not a loss: the latest state is kept).
        self.coalesced = 0
        #: States evicted because the buffer was full (a loss until the next resync).
        self.dropped = 0
        #: Times keep_all mode had to compact to one entry per object.
        self.compactions = 0

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def add(self, event: Event) -> None:
        """Queue one event (the newest so far)."""
        event.detach()  # kept for a while: must not pin the whole list page it came from
        items = self._items
        if self._coalescing:
            key = object_key(event)
            old = items.pop(key, None)
            if old is not None:
                self.coalesced += 1
                if old.type is not _DELETED:
                    self._live -= 1
                event = _merge(old, event)
        else:
            self._seq += 1
            key = self._seq
        items[key] = event
        if event.type is not _DELETED:
            self._live += 1
            if self._live > self.capacity:
                self._make_room()

    def extend(self, events: Iterable[Event]) -> None:
        for event in events:
            self.add(event)

    def add_older(self, events: Iterable[Event]) -> None:
        """Put events that are older than everything pending back in front (a failed
        publish, an unconfirmed window); a pending newer state of the same object wins."""
        older = list(events)
        if not older:
            return
        newer = list(self._items.values())
        self._items.clear()
        self._live = 0
        for event in older:
            self.add(event)
        for event in newer:
            self.add(event)

    def drain(self, limit: int | None = None) -> list[Event]:
        """Take up to ``limit`` of the oldest events (all by default), in order."""
        items = self._items
        if limit is None or limit >= len(items):
            out = list(items.values())
            items.clear()
            self._live = 0
            self._coalescing = not self.keep_all
            return out
        out = []
        for _ in range(limit):
            key = next(iter(items))
            event = items.pop(key)
            if event.type is not _DELETED:
                self._live -= 1
            out.append(event)
        return out

    def _make_room(self) -> None:
        if not self._coalescing:
            self._compact()
            if self._live <= self.capacity:
                return
        items = self._items
        while self._live > self.capacity:
            victim = next(k for k, e in items.items() if e.type is not _DELETED)
            del items[victim]
            self._live -= 1
            self.dropped += 1

    def _compact(self) -> None:
        """keep_all -> coalescing: one entry per object until the buffer is drained."""
        self.compactions += 1
        events = list(self._items.values())
        self._items.clear()
        self._live = 0
        self._coalescing = True
        for event in events:
            self.add(event)

    def counts(self) -> dict[str, int]:
        return {
            "pending": len(self._items),
            "coalesced": self.coalesced,
            "dropped": self.dropped,
            "compactions": self.compactions,
        }
