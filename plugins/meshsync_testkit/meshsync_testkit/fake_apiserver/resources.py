"""Which resources the fake server serves, and the discovery documents that describe them.

The :class:`Registry` starts with a table of built-in resources (a realistic subset of a
Kubernetes 1.34 cluster) and grows or shrinks as CustomResourceDefinitions are created and
deleted, exactly like kube-apiserver's discovery does. Clients (kubectl, client-go, the official
Python client, MeshSync's source) find everything through these documents, so their shape
follows ``metav1.APIResourceList`` / ``APIGroupList`` / ``APIVersions`` field by field.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .errors import ApiError

STANDARD_VERBS: tuple[str, ...] = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)
#: Namespaces cannot be deleted as a collection.
NAMESPACE_VERBS: tuple[str, ...] = tuple(v for v in STANDARD_VERBS if v != "deletecollection")

CRD_GROUP = "apiextensions.k8s.io"


@dataclass(frozen=True, slots=True)
class ResourceType:
    """One resource in one group/version, i.e. one entry of an ``APIResourceList``."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = STANDARD_VERBS
    categories: tuple[str, ...] = ()
    list_kind: str = ""
    #: True for resources defined by a CRD (served from the CRD's storage, any served version).
    custom: bool = False
    #: Subresources listed in discovery (``pods/status``); see :data:`SUBRESOURCES`.
    subresources: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind_name(self) -> str:
        return self.list_kind or f"{self.kind}List"

    @property
    def storage_key(self) -> tuple[str, str]:
        """Objects are stored once per group+plural, whatever version they are read through."""
        return (self.group, self.plural)

    @property
    def display(self) -> str:
        """``pods`` or ``deployments.apps``, as kube-apiserver names resources in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def discovery_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        if self.categories:
            entry["categories"] = list(self.categories)
        return entry

    def aggregated_entry(self) -> dict[str, Any]:
        """This resource as an ``APIResourceDiscovery`` (aggregated discovery v2)."""
        entry: dict[str, Any] = {
            "resource": self.plural,
            "responseKind": {"group": self.group, "version": self.version, "kind": self.kind},
            "scope": "Namespaced" if self.namespaced else "Cluster",
            "singularResource": self.singular,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        if self.categories:
            entry["categories"] = list(self.categories)
        subs = []
        for sub in self.subresources:
            kind, gv, verbs = SUBRESOURCES[sub]
            group, _, version = gv.rpartition("/") if gv else (self.group, "", self.version)
            subs.append(
                {
                    "subresource": sub,
                    "responseKind": {"group": group, "version": version, "kind": kind or self.kind},
                    "verbs": list(verbs),
                }
            )
        if subs:
            entry["subresources"] = subs
        return entry

    def subresource_entries(self) -> list[dict[str, Any]]:
        """Legacy discovery entries such as ``pods/status`` (kind, verbs, group if foreign).

        Clients that walk discovery must skip names containing "/": listing them fails, as it
        does against kube-apiserver. Only ``status`` and ``scale`` are actually served.
        """
        out = []
        for sub in self.subresources:
            kind, gv, verbs = SUBRESOURCES[sub]
            entry: dict[str, Any] = {
                "name": f"{self.plural}/{sub}",
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": kind or self.kind,
                "verbs": list(verbs),
            }
            if gv:
                entry["group"], _, entry["version"] = gv.rpartition("/")
            out.append(entry)
        return out


#: Subresource -> (kind, or "" for the parent's; "group/version" if foreign; verbs).
SUBRESOURCES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "status": ("", "", ("get", "patch", "update")),
    "scale": ("Scale", "autoscaling/v1", ("get", "patch", "update")),
    "log": ("Pod", "", ("get",)),
    "exec": ("PodExecOptions", "", ("create", "get")),
    "eviction": ("Eviction", "policy/v1", ("create",)),
    "binding": ("Binding", "", ("create",)),
    "token": ("TokenRequest", "authentication.k8s.io/v1", ("create",)),
    "finalize": ("Namespace", "", ("update",)),
}
#: Subresources the fake server actually serves (GET/PUT/PATCH); see subresources.py.
SERVED_SUBRESOURCES = frozenset({"status", "scale"})
_STATUS = ("status",)
_SCALED = ("scale", "status")


def _r(
    api_version: str,
    plural: str,
    kind: str,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    verbs: tuple[str, ...] = STANDARD_VERBS,
    categories: tuple[str, ...] = (),
    subs: tuple[str, ...] = (),
) -> ResourceType:
    group, _, version = api_version.rpartition("/")
    return ResourceType(
        group=group,
        version=version,
        plural=plural,
        singular=kind.lower(),
        kind=kind,
        namespaced=namespaced,
        short_names=short,
        verbs=verbs,
        categories=categories,
        subresources=subs,
    )


_ALL = ("all",)

#: Built-in resources, in the group order kube-apiserver lists them.
BUILTIN_RESOURCES: tuple[ResourceType, ...] = (
    # core/v1
    _r("v1", "configmaps", "ConfigMap", short=("cm",)),
    _r("v1", "endpoints", "Endpoints", short=("ep",)),
    _r("v1", "events", "Event", short=("ev",)),
    _r("v1", "limitranges", "LimitRange", short=("limits",)),
    _r(
        "v1",
        "namespaces",
        "Namespace",
        False,
        ("ns",),
        NAMESPACE_VERBS,
        subs=("finalize", "status"),
    ),
    _r("v1", "nodes", "Node", False, ("no",), subs=_STATUS),
    _r("v1", "persistentvolumeclaims", "PersistentVolumeClaim", short=("pvc",), subs=_STATUS),
    _r("v1", "persistentvolumes", "PersistentVolume", False, ("pv",), subs=_STATUS),
    _r(
        "v1",
        "pods",
        "Pod",
        short=("po",),
        categories=_ALL,
        subs=("binding", "eviction", "exec", "log", "status"),
    ),
    _r("v1", "podtemplates", "PodTemplate"),
    _r(
        "v1",
        "replicationcontrollers",
        "ReplicationController",
        short=("rc",),
        categories=_ALL,
        subs=_SCALED,
    ),
    _r("v1", "resourcequotas", "ResourceQuota", short=("quota",), subs=_STATUS),
    _r("v1", "secrets", "Secret"),
    _r("v1", "serviceaccounts", "ServiceAccount", short=("sa",), subs=("token",)),
    _r("v1", "services", "Service", short=("svc",), categories=_ALL, subs=_STATUS),
    # apiregistration.k8s.io (optional: FakeApiServer(disabled_groups={...}))
    _r(
        "apiregistration.k8s.io/v1",
        "apiservices",
        "APIService",
        False,
        categories=("api-extensions",),
        subs=_STATUS,
    ),
    # apps
    _r("apps/v1", "controllerrevisions", "ControllerRevision"),
    _r("apps/v1", "daemonsets", "DaemonSet", short=("ds",), categories=_ALL, subs=_STATUS),
    _r("apps/v1", "deployments", "Deployment", short=("deploy",), categories=_ALL, subs=_SCALED),
    _r("apps/v1", "replicasets", "ReplicaSet", short=("rs",), categories=_ALL, subs=_SCALED),
    _r("apps/v1", "statefulsets", "StatefulSet", short=("sts",), categories=_ALL, subs=_SCALED),
    # autoscaling
    _r(
        "autoscaling/v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        short=("hpa",),
        subs=_STATUS,
    ),
    # batch
    _r("batch/v1", "cronjobs", "CronJob", short=("cj",), categories=_ALL, subs=_STATUS),
    _r("batch/v1", "jobs", "Job", categories=_ALL, subs=_STATUS),
    # networking
    _r("networking.k8s.io/v1", "ingressclasses", "IngressClass", False),
    _r("networking.k8s.io/v1", "ingresses", "Ingress", short=("ing",), subs=_STATUS),
    _r("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy", short=("netpol",)),
    # policy
    _r("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", short=("pdb",), subs=_STATUS),
    # rbac
    _r("rbac.authorization.k8s.io/v1", "clusterrolebindings", "ClusterRoleBinding", False),
    _r("rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole", False),
    _r("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding"),
    _r("rbac.authorization.k8s.io/v1", "roles", "Role"),
    # storage
    _r("storage.k8s.io/v1", "csidrivers", "CSIDriver", False),
    _r("storage.k8s.io/v1", "csinodes", "CSINode", False),
    _r("storage.k8s.io/v1", "storageclasses", "StorageClass", False, ("sc",)),
    _r("storage.k8s.io/v1", "volumeattachments", "VolumeAttachment", False, subs=_STATUS),
    # apiextensions
    _r(
        "apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        ("crd", "crds"),
        categories=("api-extensions",),
        subs=_STATUS,
    ),
    # coordination
    _r("coordination.k8s.io/v1", "leases", "Lease"),
    # discovery
    _r("discovery.k8s.io/v1", "endpointslices", "EndpointSlice"),
)

_VERSION_RE = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key for Kubernetes version order: v2 > v1 > v1beta2 > v1beta1 > v1alpha1 > foo.

    Used to choose a group's ``preferredVersion`` like kube-apiserver does for CRDs.
    """
    m = _VERSION_RE.match(version)
    if not m:
        return (3, 0, 0, version)
    major = int(m.group(1))
    stage = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
    minor = int(m.group(3) or 0)
    return (stage, -major, -minor, version)


class Registry:
    """The resources currently served, indexed for routing, object kinds and discovery.

    Thread-safe: CRDs are registered from whichever thread creates them.
    """

    def __init__(self, disabled_groups: Iterable[str] = ()) -> None:
        self._lock = threading.RLock()
        self.disabled_groups = frozenset(disabled_groups)
        #: (group, version, plural) -> type; insertion order = discovery order.
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        #: (group, version, kind) -> type, to route objects given to create()/load().
        self._by_kind: dict[tuple[str, str, str], ResourceType] = {}
        #: group -> ordered versions (groups keep their first-registration order).
        self._groups: dict[str, list[str]] = {}
        for rt in BUILTIN_RESOURCES:
            if rt.group not in self.disabled_groups:
                self._add(rt)

    # -- lookups ---------------------------------------------------------------------------

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def for_object(self, obj: dict[str, Any]) -> ResourceType:
        """The resource an object belongs to, from its ``apiVersion`` and ``kind``."""
        api_version = obj.get("apiVersion")
        kind = obj.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str) or not kind:
            raise ApiError(400, "Object 'Kind' or 'apiVersion' is missing", "BadRequest")
        group, _, version = api_version.rpartition("/")
        rt = self._by_kind.get((group, version, kind))
        if rt is None:
            raise ApiError(
                404,
                f'the server could not find the requested resource (kind "{kind}" in '
                f'version "{api_version}")',
                "NotFound",
            )
        return rt

    def has_group_version(self, group: str, version: str) -> bool:
        return version in self._groups.get(group, ())

    def types(self) -> list[ResourceType]:
        with self._lock:
            return list(self._types.values())

    # -- CRDs ------------------------------------------------------------------------------

    def register_crd(self, crd: dict[str, Any]) -> list[ResourceType]:
        """Serve every served version of a CRD; returns the registered types."""
        added = self.crd_types(crd)
        with self._lock:
            for rt in added:
                self._add(rt)
        return added

    def unregister_crd(self, crd: dict[str, Any]) -> list[ResourceType]:
        spec = crd.get("spec") or {}
        group = spec.get("group", "")
        plural = (spec.get("names") or {}).get("plural", "")
        removed: list[ResourceType] = []
        with self._lock:
            for key, rt in list(self._types.items()):
                if rt.custom and rt.group == group and rt.plural == plural:
                    removed.append(rt)
                    del self._types[key]
                    self._by_kind.pop((rt.group, rt.version, rt.kind), None)
            self._rebuild_groups()
        return removed

    @staticmethod
    def crd_types(crd: dict[str, Any]) -> list[ResourceType]:
        """The resource types a CRD defines; raises a 422 Invalid ApiError for a broken CRD."""
        spec = crd.get("spec")
        if not isinstance(spec, dict):
            raise ApiError(422, "CustomResourceDefinition spec is required", "Invalid")
        names = spec.get("names")
        names = names if isinstance(names, dict) else {}
        group = spec.get("group")
        plural = names.get("plural")
        kind = names.get("kind")
        versions = spec.get("versions")
        if not (group and plural and kind and isinstance(versions, list) and versions):
            raise ApiError(
                422,
                "CustomResourceDefinition needs spec.group, spec.names.plural, "
                "spec.names.kind and spec.versions",
                "Invalid",
            )
        name = (crd.get("metadata") or {}).get("name")
        if name != f"{plural}.{group}":
            raise ApiError(
                422,
                f'CustomResourceDefinition.apiextensions.k8s.io "{name}" is invalid: '
                f'metadata.name: must be spec.names.plural+"."+spec.group',
                "Invalid",
            )
        if not all(isinstance(v, dict) and isinstance(v.get("name"), str) for v in versions):
            raise ApiError(422, "spec.versions: every version needs a name", "Invalid")
        namespaced = spec.get("scope", "Namespaced") == "Namespaced"
        out = []
        for v in versions:
            if not isinstance(v, dict) or not v.get("served", True) or not v.get("name"):
                continue
            out.append(
                ResourceType(
                    group=group,
                    version=v["name"],
                    plural=plural,
                    singular=names.get("singular") or kind.lower(),
                    kind=kind,
                    namespaced=namespaced,
                    short_names=tuple(names.get("shortNames") or ()),
                    categories=tuple(names.get("categories") or ()),
                    list_kind=names.get("listKind") or "",
                    custom=True,
                    subresources=tuple(
                        sub for sub in ("scale", "status") if sub in (v.get("subresources") or {})
                    ),
                )
            )
        return out

    # -- discovery documents ---------------------------------------------------------------

    def api_versions(self, server_address: str) -> dict[str, Any]:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
            ],
        }

    def resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        with self._lock:
            if not self.has_group_version(group, version):
                return None
            resources = []
            for rt in self._types.values():
                if rt.group == group and rt.version == version:
                    resources.append(rt.discovery_entry())
                    resources.extend(rt.subresource_entries())
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }

    def aggregated(self, core: bool) -> dict[str, Any]:
        """``apidiscovery.k8s.io/v2`` APIGroupDiscoveryList: every group (``/apis``) or the
        core group (``/api``) with all resources in one document, as kubectl prefers."""
        with self._lock:
            groups = [g for g in self._groups if (g == "") == core]
            items = []
            for group in groups:
                versions = []
                for version in sorted(self._groups[group], key=version_priority):
                    resources = [
                        rt.aggregated_entry()
                        for rt in self._types.values()
                        if rt.group == group and rt.version == version
                    ]
                    versions.append(
                        {"version": version, "resources": resources, "freshness": "Current"}
                    )
                meta: dict[str, Any] = {"name": group} if group else {}
                items.append({"metadata": meta, "versions": versions})
        return {
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": items,
        }

    def api_group(self, group: str) -> dict[str, Any] | None:
        with self._lock:
            versions = self._groups.get(group)
            if not group or not versions:
                return None
            ordered = sorted(versions, key=version_priority)
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in ordered]
        return {
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": group,
            "versions": gvs,
            "preferredVersion": gvs[0],
        }

    def group_list(self) -> dict[str, Any]:
        with self._lock:
            names = [g for g in self._groups if g]
        groups = []
        for g in names:
            doc = self.api_group(g)
            if doc is not None:
                doc.pop("kind")
                doc.pop("apiVersion")
                groups.append(doc)
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    # -- internals -------------------------------------------------------------------------

    def _add(self, rt: ResourceType) -> None:
        self._types[(rt.group, rt.version, rt.plural)] = rt
        self._by_kind[(rt.group, rt.version, rt.kind)] = rt
        versions = self._groups.setdefault(rt.group, [])
        if rt.version not in versions:
            versions.append(rt.version)

    def _rebuild_groups(self) -> None:
        groups: dict[str, list[str]] = {}
        for rt in self._types.values():
            versions = groups.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
        self._groups = groups
