"""Which resources to watch: the command line's and the MeshSync custom resource's choices over
what the server serves now (see ``docs/k8s-source.md``).

A pure function of its inputs, so every rule can be tested without a server; the source calls
it again whenever discovery, the CRDs or the custom resource change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from meshsync_core import EventType
from meshsync_k8s.meshsync_cr import MeshSyncConfig
from meshsync_k8s.resources import DEFAULT_RESOURCES, ApiResource, ResourceName, resolve
from meshsync_k8s.watcher import ALL_EVENTS

#: A resource across its versions: ``(group, plural)``.
Key = tuple[str, str]
#: What to watch: each resource at the version to watch it, and the event types to emit.
Wanted = dict[Key, tuple[ApiResource, frozenset[EventType]]]
#: Resources no CRD defines (the built-in default set): watched before the CRD list is in.
#: Any other resource waits for it, since only the CRD says which version is its storage one
#: (discovery offers the preferred version, and objects first emitted at that version would
#: keep it: moving the watch to the storage version re-emits only what changed).
BUILTIN_KEYS = frozenset((group, plural) for plural, _version, group in DEFAULT_RESOURCES)


@dataclass(frozen=True)
class Choices:
    """What the user asked for on the command line (``--resources``, ``--cluster-scoped``)."""

    includes: tuple[ResourceName, ...] = ()
    excludes: tuple[ResourceName, ...] = ()
    cluster_scoped: bool = True


def desired(
    choices: Choices,
    *,
    catalog: Sequence[ApiResource],
    preferred: dict[str, str],
    defaults: Sequence[ApiResource],
    crd_resources: Sequence[ApiResource] | None,
    custom_resource: MeshSyncConfig | None,
    crds_pending: bool,
) -> Wanted:
    """The wanted watch set.

    ``catalog`` is every resource served now; ``defaults`` the default set; ``crd_resources``
    the CRDs' resources at their storage versions (None when CRDs are not watched);
    ``crds_pending`` is True until the CRD list is in (then only built-ins are watched).
    """
    by_key = {r.key: r for r in catalog}
    cr = custom_resource
    base: Wanted = {}
    if choices.includes:
        for name in choices.includes:
            res = resolve(name, catalog, preferred)
            if res is not None:
                base[res.key] = (res, ALL_EVENTS)
    elif not (cr and cr.whitelist):
        for res in defaults:
            current = by_key.get(res.key)
            if current is not None:
                base[res.key] = (current, ALL_EVENTS)
        for res in crd_resources or ():
            base[res.key] = (res, ALL_EVENTS)
    if cr and cr.whitelist:
        allowed: Wanted = {}
        for name, events in cr.whitelist:
            res = resolve(name, catalog, preferred)
            if res is not None:
                allowed[res.key] = (res, events)
        if choices.includes:
            base = {k: (v[0], allowed[k][1]) for k, v in base.items() if k in allowed}
        else:
            base = allowed
    excludes = [*choices.excludes, *(cr.blacklist if cr else ())]
    return {
        key: value
        for key, value in base.items()
        if not any(value[0].matches(name) for name in excludes)
        and (choices.cluster_scoped or value[0].namespaced)
        and (not crds_pending or key in BUILTIN_KEYS)
    }
