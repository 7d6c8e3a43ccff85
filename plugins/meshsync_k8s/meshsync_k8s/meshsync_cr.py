"""The upstream MeshSync custom resource (``meshsyncs.meshery.io``, ``meshery/meshery-meshsync``).

Meshery's operator configures Go MeshSync through ``spec["watch-list"]``, a ConfigMap-shaped
object whose ``data.whitelist`` is a JSON string ``[{"Resource": "pods.v1.", "Events":
["ADDED", "MODIFIED", "DELETED"]}]`` and whose ``data.blacklist`` is a JSON string
``["secrets.v1."]``. We read it at start and re-read it whenever it changes (Go needs a
restart). Both lists set is a configuration error; neither set means "no restriction".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from meshsync_core import ConfigError, EventType
from meshsync_k8s.client import ApiClient, ApiError
from meshsync_k8s.resources import ResourceName, parse_resource_name

GROUP = "meshery.io"
PLURAL = "meshsyncs"
NAMESPACE = "meshery"
NAME = "meshery-meshsync"
_EVENT_NAMES = {t.value: t for t in (EventType.ADDED, EventType.MODIFIED, EventType.DELETED)}
ALL = frozenset(_EVENT_NAMES.values())


@dataclass(frozen=True)
class MeshSyncConfig:
    """What the custom resource asks for: a whitelist with event filters, or a blacklist."""

    whitelist: tuple[tuple[ResourceName, frozenset[EventType]], ...] = ()
    blacklist: tuple[ResourceName, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.whitelist and not self.blacklist

    def describe(self) -> str:
        if self.whitelist:
            return "whitelist " + ", ".join(str(name) for name, _ in self.whitelist)
        if self.blacklist:
            return "blacklist " + ", ".join(str(name) for name in self.blacklist)
        return "no restriction"


def _json_list(value: Any, what: str) -> list[Any]:
    if value in (None, "", []):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ConfigError(
                f"MeshSync custom resource: {what} is not valid JSON ({exc})"
            ) from None
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"MeshSync custom resource: {what} must be a JSON list")
    return value


def parse_meshsync_cr(obj: Any) -> MeshSyncConfig:
    """Read ``spec["watch-list"]``; raise ConfigError naming the problem."""
    spec = obj.get("spec") if isinstance(obj, dict) else None
    watch_list = spec.get("watch-list") if isinstance(spec, dict) else None
    if watch_list is None:
        return MeshSyncConfig()
    if not isinstance(watch_list, dict):
        raise ConfigError('MeshSync custom resource: spec["watch-list"] must be an object')
    data = watch_list.get("data") or {}
    if not isinstance(data, dict):
        raise ConfigError('MeshSync custom resource: spec["watch-list"].data must be an object')
    white = _json_list(data.get("whitelist"), "data.whitelist")
    black = _json_list(data.get("blacklist"), "data.blacklist")
    if white and black:
        raise ConfigError(
            "MeshSync custom resource sets both data.whitelist and data.blacklist; "
            "set only one of them"
        )
    whitelist = []
    for entry in white:
        if not isinstance(entry, dict) or not isinstance(entry.get("Resource"), str):
            raise ConfigError(
                f"MeshSync custom resource: whitelist entry {entry!r} needs a Resource string"
            )
        name, excluded = parse_resource_name(entry["Resource"])
        if excluded:
            raise ConfigError(f"MeshSync custom resource: invalid Resource {entry['Resource']!r}")
        events_raw = entry.get("Events")
        if events_raw is None:
            events = ALL
        else:
            if not isinstance(events_raw, list):
                raise ConfigError(f"MeshSync custom resource: Events of {name} must be a list")
            unknown = [e for e in events_raw if str(e).upper() not in _EVENT_NAMES]
            if unknown:
                raise ConfigError(
                    f"MeshSync custom resource: unknown event type(s) {unknown} for {name}; "
                    "use ADDED, MODIFIED, DELETED"
                )
            events = frozenset(_EVENT_NAMES[str(e).upper()] for e in events_raw)
        whitelist.append((name, events))
    blacklist = []
    for item in black:
        if not isinstance(item, str):
            raise ConfigError(f"MeshSync custom resource: blacklist entry {item!r} is not a string")
        blacklist.append(parse_resource_name(item)[0])
    return MeshSyncConfig(tuple(whitelist), tuple(blacklist))


async def read_meshsync_cr(client: ApiClient, version: str) -> tuple[MeshSyncConfig | None, str]:
    """GET the custom resource: (config, note). None when absent or unreadable (note says why)."""
    path = f"/apis/{GROUP}/{version}/namespaces/{NAMESPACE}/{PLURAL}/{NAME}"
    try:
        obj = await client.get_retrying(path)
    except ApiError as exc:
        if exc.code == 404:
            return None, "not found"
        if exc.code == 403:
            return None, f"not readable ({exc})"
        raise
    return parse_meshsync_cr(obj), "read"
