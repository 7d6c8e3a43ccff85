"""CustomResourceDefinitions -> the resources they define, tracked as CRDs come and go.

The source watches ``customresourcedefinitions`` with an internal :class:`ResourceWatcher` whose
events land here instead of in the sinks. Each CRD maps to one watchable resource at its
*storage* version when that is served (else the first served one) - Go MeshSync takes the first
listed version, which may not be served at all.

A CRD counts only once the API server reports it ``Established``: a real API server answers
``404`` for the new resource until then (for a few milliseconds after the create on an idle
server, longer on a busy one, and for good when the names conflict with another CRD), and a
watcher that got that 404 would wait for its slow retry - a minute by default - before the
first object of the new resource could flow.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from meshsync_core import Event, EventType
from meshsync_k8s.resources import ApiResource

log = logging.getLogger("meshsync.k8s")


def crd_resource(crd: Any) -> ApiResource | None:
    """The resource a CRD object defines, or None if it serves nothing usable."""
    if not isinstance(crd, dict):
        return None
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return None
    names = spec.get("names")
    group = spec.get("group")
    if not isinstance(names, dict) or not isinstance(group, str) or not group:
        return None
    plural, kind = names.get("plural"), names.get("kind")
    if not isinstance(plural, str) or not isinstance(kind, str) or not plural:
        return None
    versions = [v for v in spec.get("versions") or [] if isinstance(v, dict) and v.get("name")]
    if not versions and isinstance(spec.get("version"), str):  # apiextensions v1beta1 shape
        versions = [{"name": spec["version"], "served": True, "storage": True}]
    served = [v for v in versions if v.get("served", True)]
    chosen = next((v for v in served if v.get("storage")), served[0] if served else None)
    if chosen is None:
        return None
    short = names.get("shortNames") or []
    return ApiResource(
        group=group,
        version=str(chosen["name"]),
        plural=plural.lower(),
        kind=kind,
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        singular=str(names.get("singular") or kind).lower(),
        short_names=tuple(str(s).lower() for s in short if isinstance(s, str)),
    )


def established(crd: Any) -> bool:
    """Whether the API server serves the CRD's resource yet (its ``Established`` condition).

    A CRD object without any ``status`` (written by hand, not read from an API server) counts
    as established; one read from a server starts with ``conditions: null`` and gets
    ``Established`` once its names are accepted.
    """
    status = crd.get("status") if isinstance(crd, dict) else None
    if not isinstance(status, dict):
        return True
    for condition in status.get("conditions") or ():
        if isinstance(condition, dict) and condition.get("type") == "Established":
            return condition.get("status") == "True"
    return False


class CrdCatalog:
    """The CRDs the cluster has now, by CRD name, fed by the internal CRD watcher's events."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        self.on_change = on_change
        #: CRD name -> the resource it defines (None: defines nothing servable).
        self.by_name: dict[str, ApiResource | None] = {}
        #: Every (group, plural) ever defined by a CRD: such resources are never "static".
        self.ever: set[tuple[str, str]] = set()

    @property
    def resources(self) -> list[ApiResource]:
        return [res for res in self.by_name.values() if res is not None]

    @property
    def keys(self) -> set[tuple[str, str]]:
        return {res.key for res in self.by_name.values() if res is not None}

    async def handle(self, event: Event) -> None:
        """The internal CRD watcher's emit callback."""
        name = event.name
        if event.type is EventType.DELETED:
            if self.by_name.pop(name, None) is not None:
                log.info("CRD %s deleted: its resources are no longer watched", name)
            self.on_change()
            return
        obj = event.object
        res = crd_resource(obj)
        if res is None:
            log.warning("CRD %s defines no served version; ignoring it", name)
        elif not established(obj):
            # watched from its MODIFIED event that sets Established (see the module docstring)
            log.debug("CRD %s is not established yet", name)
            res = None
        else:
            self.ever.add(res.key)
        if self.by_name.get(name) != res or name not in self.by_name:
            self.by_name[name] = res
            self.on_change()
