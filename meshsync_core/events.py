"""The one event type that flows from sources through transforms to sinks.

An :class:`Event` is created for every object a source sees, so it is a slotted dataclass with
no per-instance dict and no validation: building one costs about as much as building a tuple.
The resource object travels as the plain ``dict`` the source decoded, untouched, so that each
sink chooses its own wire format.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
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


@dataclass(slots=True)
class Event:
    """One change (or marker) produced by a source.

    ``object`` is the resource as the API returned it. Transforms that change it must replace
    it with a new dict rather than mutate it in place, because the source may still hold it.
    """

    type: EventType
    object: dict[str, Any]
    resource: Resource
    source: str = ""
    cluster_id: str = ""
    #: Free-form extras a transform may attach for later transforms or sinks.
    extra: dict[str, Any] | None = field(default=None)

    @property
    def metadata(self) -> dict[str, Any]:
        meta = self.object.get("metadata")
        return meta if isinstance(meta, dict) else {}

    @property
    def uid(self) -> str:
        return str(self.metadata.get("uid", ""))

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace", "") or "")

    @property
    def resource_version(self) -> str:
        return str(self.metadata.get("resourceVersion", ""))

    def describe(self) -> str:
        """A short human label, ``pods default/web-1``, for logs (never the object's content)."""
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.resource.plural} {where}"


#: The resource used by markers and by sources that have no resource notion of their own.
NO_RESOURCE = Resource(group="", version="", plural="", kind="")


def synced_marker(source: str) -> Event:
    """The in-band marker a source's context puts into every sink queue after its initial sync."""
    return Event(EventType.SYNCED, {}, NO_RESOURCE, source=source)
