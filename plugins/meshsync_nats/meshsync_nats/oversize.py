"""Objects whose message is larger than the NATS server accepts (``max_payload``, 1 MB by
default): sent without their largest fields rather than not at all.

A ConfigMap of about 1 MB does not fit, and neither does a smaller one whose values hold many
quotes or backslashes: ``data`` is JSON text inside a JSON string, so each of them is escaped
twice (``"`` becomes ``\\\\\\"``, four bytes). Such an object is re-encoded without the
largest of the fields that hold its content, biggest first, until the message fits:

* ``data``, ``binaryData``, ``stringData`` (ConfigMaps, Secrets);
* ``spec``, ``status`` (their ``attribute`` text);
* the ``kubectl.kubernetes.io/last-applied-configuration`` annotation (a copy of the object).

The message then carries the annotation ``meshery.io/meshsync-truncated`` whose value lists
what was left out, comma-separated in the order above (``data`` or ``data,status``;
an annotation is named by its key). Meshery still learns that the object exists, with its
metadata, labels and other annotations. When even that does not fit (thousands of labels or
huge annotations), :class:`TooLarge` says by how much; the sink logs it as an error, counts it
as not delivered, and goes on with the next change.

Nothing here logs or returns field values, only names and sizes: Secrets pass through here.
"""

from __future__ import annotations

import bisect
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence

import msgspec

from meshsync_core import ComponentMetrics, Event
from meshsync_nats import wire

#: The annotation that marks an object sent without some of its fields.
TRUNCATED_ANNOTATION = "meshery.io/meshsync-truncated"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
#: What may be left out, in the order the annotation lists it.
DROPPABLE = ("data", "binaryData", "stringData", "spec", "status", LAST_APPLIED)
#: The limit of core NATS messages, for log lines.
MAX_PAYLOAD = "the server's max_payload"
#: Objects warned about are remembered (one warning per object) up to this many.
_WARNED_LIMIT = 10_000

_encode = msgspec.json.Encoder().encode


class TooLarge(ValueError):
    """The message does not fit even without every droppable field."""

    def __init__(
        self, size: int, smallest: int, limit: int, dropped: list[str], what: str = ""
    ) -> None:
        self.size = size
        self.smallest = smallest
        self.limit = limit
        self.dropped = dropped
        self.what = what
        without = f", {smallest:,} even without {', '.join(dropped)}" if dropped else ""
        limit_text = f"{limit:,} bytes" + (f" ({what})" if what else "")
        super().__init__(
            f"its message is {size:,} bytes{without}: over the limit of {limit_text}; not delivered"
        )


def headers_size(headers: Mapping[str, str] | None) -> int:
    """Bytes the server counts against ``max_payload`` for these headers (``HPUB``)."""
    if not headers:
        return 0
    # "NATS/1.0\r\n" + "Key: value\r\n" each + "\r\n", as nats-py writes them
    return 10 + sum(len(k.encode()) + len(v.encode()) + 4 for k, v in headers.items()) + 2


def _sizes(obj: wire.MesheryObject) -> dict[str, int]:
    """The encoded size of each droppable field the object has."""
    sizes: dict[str, int] = {}
    for name in ("data", "binaryData", "stringData"):
        value = getattr(obj, name)
        if value:
            sizes[name] = len(_encode(value))
    for name in ("spec", "status"):
        value = getattr(obj, name)
        if value is not None:
            sizes[name] = len(_encode(value.attribute))
    for entry in obj.metadata.annotations or ():
        if entry.key == LAST_APPLIED:
            sizes[LAST_APPLIED] = len(_encode(entry.value))
    return sizes


def _drop(obj: wire.MesheryObject, name: str) -> None:
    if name in ("spec", "status"):
        setattr(obj, name, None)
    elif name == LAST_APPLIED:
        annotations = obj.metadata.annotations or []
        obj.metadata.annotations = [a for a in annotations if a.key != LAST_APPLIED] or None
    else:
        setattr(obj, name, "")


def _mark(obj: wire.MesheryObject, dropped: list[str]) -> None:
    """Set the marker annotation (kept in key order, as every annotation list is)."""
    value = ",".join(name for name in DROPPABLE if name in dropped)
    annotations = [a for a in obj.metadata.annotations or () if a.key != TRUNCATED_ANNOTATION]
    obj_id = obj.metadata.id
    marker = wire.KeyValue(
        obj_id, str(uuid.uuid4()) if obj_id else "", "annotation", TRUNCATED_ANNOTATION, value
    )
    keys = [a.key for a in annotations]
    annotations.insert(bisect.bisect(keys, TRUNCATED_ANNOTATION), marker)
    obj.metadata.annotations = annotations


def shrink_object(
    obj: wire.MesheryObject,
    limit: int,
    encode: Callable[[wire.MesheryObject], bytes],
    what: str = "",
) -> tuple[bytes, list[str]]:
    """``encode(obj)`` without the object's largest fields, at most ``limit`` bytes, and the
    names of the fields left out (``[]`` if it fit as it was); :class:`TooLarge` if it cannot
    be made to fit. ``obj`` is changed."""
    payload = encode(obj)
    full = len(payload)
    if full <= limit:
        return payload, []
    sizes = _sizes(obj)
    order = sorted(sizes, key=lambda name: (-sizes[name], DROPPABLE.index(name)))
    dropped: list[str] = []
    size = full
    for name in order:
        _drop(obj, name)
        dropped.append(name)
        _mark(obj, dropped)
        payload = encode(obj)
        size = len(payload)
        if size <= limit:
            return payload, [n for n in DROPPABLE if n in dropped]
    raise TooLarge(full, size, limit, [n for n in DROPPABLE if n in dropped], what)


def shrink(
    event: Event, limit: int, *, meshery_ids: bool = False, what: str = ""
) -> tuple[bytes, list[str]]:
    """The event's message (``meshery.meshsync.core``) made to fit, as :func:`shrink_object`;
    ``what`` names the limit in messages."""
    obj = wire.event_to_meshery(event, meshery_ids=meshery_ids)
    event_type = event.type.value
    return shrink_object(obj, limit, lambda o: wire.object_message(event_type, o), what)


def _store_message(obj: wire.MesheryObject) -> bytes:
    return wire.object_batch([obj])


class Oversize:
    """What the sink does with a message over the limit: shrink it, count it, say so once."""

    def __init__(
        self, log: logging.Logger, metrics: ComponentMetrics, *, meshery_ids: bool
    ) -> None:
        self.log = log
        self.metrics = metrics
        self.meshery_ids = meshery_ids
        self._warned: set[str] = set()
        self.truncated = 0
        metrics.describe(
            "objects_truncated_total",
            "Objects published without their largest fields (data, spec, status...): their "
            "message was over the server's max_payload; marked " + TRUNCATED_ANNOTATION + ".",
        )
        metrics.describe(
            "unsendable_total",
            "Objects not delivered: too large even without their largest fields, or not encodable.",
        )

    def fit(self, event: Event, size: int, limit: int, what: str = MAX_PAYLOAD) -> bytes:
        """A message of at most ``limit`` bytes (``what`` says whose limit) for an event whose
        message has ``size``; raises :class:`TooLarge` (the caller counts the event as not
        delivered)."""
        payload, dropped = shrink(event, limit, meshery_ids=self.meshery_ids, what=what)
        if dropped:
            self._truncated(event, size, limit, what, len(payload), dropped)
        return payload

    def store_messages(
        self, batch: Sequence[tuple[Event, wire.MesheryObject]], limit: int
    ) -> list[bytes]:
        """An ``informer-store`` answer for these objects in messages of at most ``limit``
        bytes: one message for the batch when it fits, else one per object, each made to fit
        (an object that cannot be is left out with an error line, and counted)."""
        message = wire.object_batch([obj for _, obj in batch])
        if len(message) <= limit:
            return [message]
        messages = []
        for event, obj in batch:
            size = len(_store_message(obj))
            try:
                payload, dropped = shrink_object(obj, limit, _store_message, MAX_PAYLOAD)
            except TooLarge as exc:
                self.metrics.inc("unsendable_total", resource=event.resource.key)
                self.log.error("cannot answer informer-store with %s: %s", event.describe(), exc)
                continue
            if dropped:
                self._truncated(event, size, limit, MAX_PAYLOAD, len(payload), dropped)
            messages.append(payload)
        return messages

    def _truncated(
        self, event: Event, size: int, limit: int, what: str, sent: int, dropped: list[str]
    ) -> None:
        """Count a truncation; warn once per object (names and sizes, never values)."""
        self.truncated += 1
        self.metrics.inc("objects_truncated_total", resource=event.resource.key)
        key = event.uid or event.describe()
        if key in self._warned:
            self.log.debug("%s truncated again (without %s)", event.describe(), ", ".join(dropped))
            return
        if len(self._warned) >= _WARNED_LIMIT:
            self._warned.clear()
        self._warned.add(key)
        self.log.warning(
            "%s is too large for NATS (%s bytes, over the limit of %s bytes: %s): published "
            "without %s (%s bytes), marked %s; later changes of it are truncated the same way "
            "without another warning",
            event.describe(),
            f"{size:,}",
            f"{limit:,}",
            what,
            ", ".join(dropped),
            f"{sent:,}",
            TRUNCATED_ANNOTATION,
        )


__all__ = [
    "DROPPABLE",
    "LAST_APPLIED",
    "TRUNCATED_ANNOTATION",
    "Oversize",
    "TooLarge",
    "headers_size",
    "shrink",
    "shrink_object",
]
