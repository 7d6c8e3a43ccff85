"""The one event type that flows from sources through transforms to sinks.

An :class:`Event` is created for every object a source sees, so it is a slotted class with no
per-instance dict and no validation: building one costs about as much as building a tuple.
The resource object travels as the plain ``dict`` the source decoded, untouched, so that each
sink chooses its own wire format - or, when the source allows it, as its raw JSON text that is
decoded only if somebody reads it.
"""

from __future__ import annotations

import builtins
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class EventType(str, enum.Enum):
    """What happened to an object. ``SYNCED`` is a marker, not an object change."""

    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"
    #: In-band marker: every object the source knew at start has been emitted before this.
    SYNCED = "SYNCED"

    def __str__(self) -> str:
        return self.value


#: The three event types that describe a change to an object.
CHANGE_TYPES = frozenset({EventType.ADDED, EventType.MODIFIED, EventType.DELETED})


@dataclass(frozen=True, slots=True)
class Resource:
    """Which kind of object an event carries: a group/version/resource plus its kind.

    Sources create one per watched resource and share it between events, so it costs nothing
    per object. ``group`` is ``""`` for the Kubernetes core group.
    """

    group: str
    version: str
    plural: str
    kind: str = ""
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        """``v1`` for the core group, ``group/version`` otherwise."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """The upstream MeshSync spelling ``plural.version.group`` (``pods.v1.``)."""
        return f"{self.plural}.{self.version}.{self.group}"

    def __str__(self) -> str:
        return self.key


#: ``(uid, name, namespace, resourceVersion)``, as a source that already knows them hands them on.
Identity = tuple[str, str, str, str]
#: Turns an event's raw JSON into its object; called at most once per event.
Decoder = Callable[[Any], dict[str, Any]]


#: The fields of an :class:`Event` that :meth:`Event.replace` copies as they are.
_PLAIN_FIELDS = ("type", "resource", "source", "cluster_id", "extra")


class Event:
    """One change (or marker) produced by a source.

    Attributes: ``type`` (:class:`EventType`), ``resource`` (:class:`Resource`), ``source`` (the
    source's name), ``cluster_id`` (the Kubernetes source sets the ``kube-system`` namespace's
    uid), ``extra`` (a dict transforms may attach, or None), plus the properties below.

    ``object`` is the resource as the API returned it. Transforms that change it must replace
    it (``event.object = new`` or a new Event) rather than mutate it in place, because the
    source and other sinks may still hold it.

    A source may hand over the object *undecoded*: ``raw`` (its JSON text, any bytes-like
    value) plus ``decode`` and the object's ``identity``. ``object`` is then decoded on first
    access, so a sink that only needs the identity - or that reads ``raw_json`` itself, like
    the NATS sink's fast path - never pays for building the dict.
    """

    __slots__ = ("_decode", "_identity", "_object", "_raw", "cluster_id", "extra", "resource",
                 "source", "type")  # fmt: skip

    def __init__(
        self,
        type: EventType,
        object: dict[str, Any] | None,
        resource: Resource,
        source: str = "",
        cluster_id: str = "",
        extra: dict[str, Any] | None = None,
        *,
        raw: Any = None,
        decode: Decoder | None = None,
        identity: Identity | None = None,
    ) -> None:
        self.type = type
        self.resource = resource
        self.source = source
        self.cluster_id = cluster_id
        #: Free-form extras a transform may attach for later transforms or sinks.
        self.extra = extra
        self._object = object
        self._raw = raw
        self._decode = decode
        self._identity = identity
        if object is None and (raw is None or decode is None):
            raise TypeError("Event needs an object, or raw JSON and a decode function")

    @property
    def object(self) -> dict[str, Any]:
        """The object as a plain ``dict`` (decoded from ``raw_json`` on first access)."""
        obj = self._object
        if obj is None:
            assert self._decode is not None
            obj = self._object = self._decode(self._raw)
        return obj

    @object.setter
    def object(self, value: dict[str, Any]) -> None:
        # The raw text and the identity described the old object, not this one.
        self._object = value
        self._raw = self._decode = self._identity = None

    @property
    def raw_json(self) -> Any:
        """The object's JSON text as the source received it (bytes-like), or None.

        Not necessarily ``bytes`` (the Kubernetes source hands over ``msgspec.Raw`` slices):
        use ``bytes(event.raw_json)`` where you need ``bytes`` (``json.loads`` needs it).
        Kubernetes list items carry no ``apiVersion``/``kind`` in their JSON: take those from
        :attr:`resource`. None when the source gave a decoded object, and once a transform has
        replaced the object (a redacted Secret, for example).
        """
        return self._raw

    @property
    def metadata(self) -> dict[str, Any]:
        """``object["metadata"]``, or ``{}`` if it is missing (reading it decodes the object)."""
        meta = self.object.get("metadata")
        return meta if isinstance(meta, dict) else {}

    @property
    def uid(self) -> str:
        """``metadata.uid``: the key to store an object under (``""`` if missing)."""
        ident = self._identity
        return ident[0] if ident is not None else str(self.metadata.get("uid", ""))

    @property
    def name(self) -> str:
        """``metadata.name`` (``""`` if missing)."""
        ident = self._identity
        return ident[1] if ident is not None else str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        """``metadata.namespace``; ``""`` (never None) for cluster-scoped objects."""
        ident = self._identity
        if ident is not None:
            return ident[2]
        return str(self.metadata.get("namespace", "") or "")

    @property
    def resource_version(self) -> str:
        """``metadata.resourceVersion``, a string to compare for equality only (``""`` if
        missing)."""
        ident = self._identity
        if ident is not None:
            return ident[3]
        return str(self.metadata.get("resourceVersion", ""))

    def describe(self) -> str:
        """A short human label, ``pods default/web-1``, for logs (never the object's content)."""
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.resource.plural} {where}"

    def replace(self, **changes: Any) -> Event:
        """A copy with some fields changed; an undecoded object stays undecoded."""
        kept = {name: changes.pop(name, getattr(self, name)) for name in _PLAIN_FIELDS}
        if "object" in changes:  # a new object: the old raw text and identity do not describe it
            obj, lazy = changes.pop("object"), {}
        else:
            obj, lazy = self._object, {"raw": self._raw, "decode": self._decode,
                                       "identity": self._identity}  # fmt: skip
        if changes:
            raise TypeError(f"Event.replace() got unknown fields: {', '.join(sorted(changes))}")
        return Event(
            kept["type"],
            obj,
            kept["resource"],
            kept["source"],
            kept["cluster_id"],
            kept["extra"],
            **lazy,
        )

    def detach(self) -> Event:
        """Make this event safe to keep for long; returns it.

        A source may cut ``raw`` out of a larger buffer (a 2 MB list page), and the slice keeps
        that whole buffer alive. A sink that holds events for a while (a buffer during an
        outage) calls this to copy the event's own bytes out, so it holds ~4 KB, not 2 MB.
        """
        raw = self._raw
        if raw is not None and raw.__class__ is not bytes:
            self._raw = bytes(raw)
        return self

    def __eq__(self, other: builtins.object) -> bool:  # `object` is the property here
        if not isinstance(other, Event):
            return NotImplemented
        return (
            self.type == other.type
            and self.resource == other.resource
            and self.source == other.source
            and self.cluster_id == other.cluster_id
            and self.extra == other.extra
            and self.object == other.object
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaced

    def __repr__(self) -> str:
        return f"<Event {self.type.value} {self.describe()} from {self.source or '?'}>"


#: The resource used by markers and by sources that have no resource notion of their own.
NO_RESOURCE = Resource(group="", version="", plural="", kind="")


def synced_marker(source: str) -> Event:
    """The in-band marker a source's context puts into every sink queue after its initial sync."""
    return Event(EventType.SYNCED, {}, NO_RESOURCE, source=source)
