"""Changes as core NATS messages: encoded, made to fit, published in order.

Publishing does not flush per message: each change the connection took joins the current
segment of the :class:`~meshsync_nats.confirmation.Confirmation`, which confirms it later with
a round trip. A change whose message is over the limit goes without its largest fields
(:mod:`~meshsync_nats.oversize`); one that can never be sent is counted and reported, and the
batch goes on. The JetStream publisher uses the same encoding, fitting and reporting.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from meshsync_core import ComponentMetrics, Event, RateLimitedLog
from meshsync_nats import wire
from meshsync_nats.confirmation import Confirmation
from meshsync_nats.connection import SEND_ERRORS
from meshsync_nats.oversize import MAX_PAYLOAD, Oversize, headers_size
from meshsync_nats.protocol import CRLF, block_writer, pub_header

_SUBJECT = wire.SUBJECT_CORE.encode()


class CorePublisher:
    """Publishes batches on ``meshery.meshsync.core`` through ``connection()`` (the nats-py
    client); ``stream_limit()`` is a smaller limit of the JetStream stream and its name for
    messages, if any. ``count(name, amount)`` and ``counts`` are the sink's counters."""

    def __init__(
        self,
        *,
        connection: Callable[[], Any],
        confirmation: Confirmation,
        oversize: Oversize,
        meshery_ids: bool,
        count: Callable[[str, int], None],
        counts: Counter[str],
        metrics: ComponentMetrics,
        limited: RateLimitedLog,
        stream_limit: Callable[[], tuple[int, str] | None] = lambda: None,
    ) -> None:
        self._connection = connection
        self.confirmation = confirmation
        self.oversize = oversize
        self.meshery_ids = meshery_ids
        self._count = count
        self._counts = counts
        self.metrics = metrics
        self._limited = limited
        self._stream_limit = stream_limit

    async def publish(self, events: Sequence[Event]) -> list[Event]:
        """Publish in order; return the events that could not be sent (from the first failure)."""
        nc = self._connection()
        writer = block_writer(nc)
        if writer is None:
            return await self._publish_each(nc, events)
        if not nc.is_connected:
            return list(events)
        # The whole batch as one block of protocol lines: encoding needs no await, so the
        # connection cannot change under it (one write instead of a publish per change).
        envelope = wire.event_envelope
        meshery_ids = self.meshery_ids
        max_payload = nc.max_payload
        parts: list[bytes] = []
        taken: list[Event] = []
        size = 0
        for event in events:
            try:
                payload = envelope(event, meshery_ids=meshery_ids)
                if len(payload) > max_payload:
                    payload = self.fit(event, payload, None)
            except Exception as exc:
                self.unsendable(event, exc)
                continue
            parts += (pub_header(_SUBJECT, len(payload)), payload, CRLF)
            taken.append(event)
            size += len(payload)
        if not taken:
            return []
        reconnects = nc.stats.get("reconnects", 0)
        try:
            await writer(b"".join(parts), len(taken), size)
        except SEND_ERRORS:
            return taken
        if not nc.is_connected or nc.stats.get("reconnects", 0) != reconnects:
            # Dropped while the block was being written (and perhaps back already): the
            # disconnect handler has re-queued the segment without these, and the block may
            # be lost. Keep them all (duplicates at worst).
            return taken
        self.confirmation.note_all_sent(taken)
        self._count("published", len(taken))
        self.confirmation.wake()
        return []

    async def _publish_each(self, nc: Any, events: Sequence[Event]) -> list[Event]:
        """:meth:`publish` through nats-py's ``publish``, one change at a time (a nats-py
        without the internals :func:`~meshsync_nats.protocol.block_writer` needs)."""
        publish = nc.publish
        envelope = wire.event_envelope
        meshery_ids = self.meshery_ids
        note_sent = self.confirmation.note_sent
        sent = 0
        for index, event in enumerate(events):
            if not nc.is_connected:
                self._count("published", sent)
                return list(events[index:])
            try:
                payload = envelope(event, meshery_ids=meshery_ids)
                if len(payload) > nc.max_payload:
                    payload = self.fit(event, payload, None)
                await publish(wire.SUBJECT_CORE, payload)
            except SEND_ERRORS:
                self._count("published", sent)
                return list(events[index:])
            except Exception as exc:
                self.unsendable(event, exc)
                continue
            if not nc.is_connected:
                # Dropped while this one was being written, and the disconnect handler may
                # already have re-queued the segment: keep it (a duplicate at worst).
                self._count("published", sent)
                return list(events[index:])
            # Not a local alias of the segment: the disconnect handler swaps it while we await.
            note_sent(event)
            sent += 1
        self._count("published", sent)
        self.confirmation.wake()
        return []

    def encode(self, event: Event) -> bytes:
        return wire.event_envelope(event, meshery_ids=self.meshery_ids)

    def fit(self, event: Event, payload: bytes, headers: dict[str, str] | None) -> bytes:
        """The payload, or one without the object's largest fields when it is over what the
        server (and the stream) accepts; :class:`~meshsync_nats.oversize.TooLarge` if even
        that is too big (see ``meshsync_nats.oversize``)."""
        limit, what = self._connection().max_payload, MAX_PAYLOAD
        stream = self._stream_limit()
        if stream is not None and 0 < stream[0] < limit:
            limit, what = stream
        if headers:
            limit -= headers_size(headers)
            what += " less the headers"
        if len(payload) <= limit:
            return payload
        return self.oversize.fit(event, len(payload), limit, what)

    def unsendable(self, event: Event, exc: Exception) -> None:
        """An event that can never be sent (too big even truncated, not encodable): counted
        per resource as not delivered, one error line per object and minute."""
        self._counts["unsendable"] += 1
        self.metrics.inc("unsendable_total", resource=event.resource.key)
        self._limited.log(
            logging.ERROR,
            "cannot publish %s to NATS: %s",
            event.describe(),
            exc,
            key=f"unsendable:{event.uid or event.describe()}",
        )
