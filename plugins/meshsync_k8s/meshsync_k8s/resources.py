"""Which resources to watch: the default set, user-written names, and API discovery.

Names users may write (``--resources``, the MeshSync custom resource), case-insensitive:

* ``pod``, ``pods``, ``Pod``, ``po`` - plural, singular, kind or short name, any group;
* ``pods.v1.`` / ``deployments.v1.apps`` - Go MeshSync's ``plural.version.group`` (empty group
  = core);
* ``deployments.apps`` / ``widgets.example.com`` - kubectl's ``plural.group``, any version.

A leading ``-`` or ``!`` excludes (``--resources=-secrets,-events``). Versions are resolved
through API discovery: a name without a version gets the group's preferred version.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from meshsync_core import ConfigError, Resource
from meshsync_k8s.client import ApiClient, ApiError

log = logging.getLogger("meshsync.k8s")

#: Go MeshSync's default set, ``(plural, version, group)``: "global" objects first.
DEFAULT_RESOURCES: tuple[tuple[str, str, str], ...] = (
    ("namespaces", "v1", ""),
    ("nodes", "v1", ""),
    ("persistentvolumes", "v1", ""),
    ("storageclasses", "v1", "storage.k8s.io"),
    ("volumeattachments", "v1", "storage.k8s.io"),
    ("clusterroles", "v1", "rbac.authorization.k8s.io"),
    ("apiservices", "v1", "apiregistration.k8s.io"),
    ("configmaps", "v1", ""),
    ("secrets", "v1", ""),
    ("persistentvolumeclaims", "v1", ""),
    ("pods", "v1", ""),
    ("services", "v1", ""),
    ("endpoints", "v1", ""),
    ("replicationcontrollers", "v1", ""),
    ("replicasets", "v1", "apps"),
    ("deployments", "v1", "apps"),
    ("statefulsets", "v1", "apps"),
    ("daemonsets", "v1", "apps"),
    ("ingresses", "v1", "networking.k8s.io"),
    ("endpointslices", "v1", "discovery.k8s.io"),
    ("cronjobs", "v1", "batch"),
)

_VERSION = re.compile(r"^v\d+((alpha|beta)\d+)?$")
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_GROUP = re.compile(r"^([a-z0-9]([a-z0-9-]*[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


@dataclass(frozen=True, slots=True)
class ResourceName:
    """A resource as a user wrote it; ``version``/``group`` None = any."""

    name: str
    version: str | None = None
    group: str | None = None
    text: str = ""

    @property
    def qualified(self) -> bool:
        """``plural.version.group``: may name a CRD that does not exist yet."""
        return self.version is not None and self.group is not None

    def __str__(self) -> str:
        return self.text or self.name


def parse_resource_name(text: str) -> tuple[ResourceName, bool]:
    """Parse one name; return it and whether it is an exclusion. Raises ConfigError."""
    raw = text.strip()
    excluded = raw[:1] in ("-", "!")
    body = raw[1:].strip() if excluded else raw
    lowered = body.lower()
    if not lowered:
        raise ConfigError(f"empty resource name in {text!r}")
    parts = lowered.split(".", 2)
    name, version, group = parts[0], None, None
    if len(parts) >= 2 and _VERSION.match(parts[1]):
        version = parts[1]
        group = parts[2] if len(parts) == 3 else ""
    elif len(parts) >= 2:
        group = lowered.split(".", 1)[1]
    if not _NAME.match(name) or (group and not _GROUP.match(group)):
        raise ConfigError(
            f"invalid resource name {text!r}: use pod, pods, pods.v1. or deployments.v1.apps"
        )
    return ResourceName(name, version, group, body), excluded


def parse_resource_list(values: Iterable[str]) -> tuple[list[ResourceName], list[ResourceName]]:
    """Split user values (already comma-split) into inclusions and exclusions."""
    includes: list[ResourceName] = []
    excludes: list[ResourceName] = []
    for value in values:
        parsed, excluded = parse_resource_name(value)
        (excludes if excluded else includes).append(parsed)
    return includes, excludes


@dataclass(frozen=True)
class ApiResource:
    """One served, listable and watchable resource at one version."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    resource: Resource = field(init=False, compare=False)

    def __post_init__(self) -> None:
        res = Resource(self.group, self.version, self.plural, self.kind, self.namespaced)
        object.__setattr__(self, "resource", res)

    @property
    def key(self) -> tuple[str, str]:
        """Identity across versions: ``(group, plural)``."""
        return (self.group, self.plural)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None) -> str:
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace and self.namespaced:
            return f"{prefix}/namespaces/{namespace}/{self.plural}"
        return f"{prefix}/{self.plural}"

    def matches(self, name: ResourceName) -> bool:
        if name.group is not None and name.group != self.group:
            return False
        if name.version is not None and name.version != self.version:
            return False
        n = name.name
        return (
            n == self.plural
            or n == self.singular
            or n == self.kind.lower()
            or n in self.short_names
        )

    def __str__(self) -> str:
        return f"{self.plural}.{self.version}.{self.group}"


@dataclass
class Discovery:
    """Every served resource, in discovery order (core first), plus preferred versions."""

    resources: list[ApiResource]
    preferred: dict[str, str]
    #: Group-versions that failed discovery (broken aggregated APIs), with the reason.
    failed: dict[str, str] = field(default_factory=dict)

    def find(self, name: ResourceName) -> ApiResource | None:
        """The one resource a name means: first matching group (core first), preferred version."""
        return resolve(name, self.resources, self.preferred)

    def get(self, plural: str, version: str, group: str) -> ApiResource | None:
        for res in self.resources:
            if res.plural == plural and res.version == version and res.group == group:
                return res
        return None


def resolve(
    name: ResourceName, catalog: Sequence[ApiResource], preferred: dict[str, str] | None = None
) -> ApiResource | None:
    matches = [res for res in catalog if res.matches(name)]
    if not matches:
        return None
    group = matches[0].group
    in_group = [res for res in matches if res.group == group]
    want = (preferred or {}).get(group)
    for res in in_group:
        if res.version == want:
            return res
    return in_group[0]


def default_set(discovery: Discovery) -> tuple[list[ApiResource], list[str]]:
    """Resolve the default set; return the resources and a note per skipped one."""
    found: list[ApiResource] = []
    skipped: list[str] = []
    for plural, version, group in DEFAULT_RESOURCES:
        res = discovery.get(plural, version, group)
        if res is None:  # another version of the same group, preferred first
            res = discovery.find(ResourceName(plural, None, group))
        if res is None:
            reason = discovery.failed.get(f"{group}/{version}" if group else version)
            skipped.append(
                f"{plural}.{version}.{group}" + (f" (discovery failed: {reason})" if reason else "")
            )
        else:
            found.append(res)
    return found, skipped


def _parse_resource_list(group: str, version: str, body: object) -> list[ApiResource]:
    out: list[ApiResource] = []
    if not isinstance(body, dict):
        return out
    for item in body.get("resources") or []:
        if not isinstance(item, dict):
            continue
        name = item.get("name")
        verbs = item.get("verbs") or []
        if not isinstance(name, str) or "/" in name or not isinstance(verbs, list):
            continue  # subresources (pods/log) are not objects
        if "list" not in verbs or "watch" not in verbs:
            continue
        short = item.get("shortNames") or []
        out.append(
            ApiResource(
                group=group,
                version=version,
                plural=name,
                kind=str(item.get("kind") or ""),
                namespaced=bool(item.get("namespaced")),
                singular=str(item.get("singularName") or "").lower()
                or str(item.get("kind") or "").lower(),
                short_names=tuple(str(s).lower() for s in short if isinstance(s, str)),
            )
        )
    return out


async def discover(client: ApiClient) -> Discovery:
    """Legacy discovery: ``/api/v1``, ``/apis``, then every group-version concurrently.

    A group-version that fails (a broken aggregated API such as an absent metrics-server) is
    noted and skipped; failure of the core group is raised.
    """
    core = await client.get_retrying("/api/v1")
    resources = _parse_resource_list("", "v1", core)
    preferred: dict[str, str] = {"": "v1"}
    groups_body = await client.get_retrying("/apis")
    group_versions: list[tuple[str, str]] = []
    for group in (groups_body or {}).get("groups") or []:
        if not isinstance(group, dict) or not isinstance(group.get("name"), str):
            continue
        pref = group.get("preferredVersion") or {}
        if isinstance(pref, dict) and pref.get("version"):
            preferred[group["name"]] = str(pref["version"])
        for ver in group.get("versions") or []:
            if isinstance(ver, dict) and ver.get("version"):
                group_versions.append((group["name"], str(ver["version"])))

    async def fetch(group: str, version: str) -> list[ApiResource] | ApiError:
        try:
            return _parse_resource_list(
                group, version, await client.get_retrying(f"/apis/{group}/{version}")
            )
        except ApiError as exc:
            return exc

    results = await asyncio.gather(*(fetch(g, v) for g, v in group_versions))
    failed: dict[str, str] = {}
    for (group, version), result in zip(group_versions, results, strict=True):
        if isinstance(result, ApiError):
            failed[f"{group}/{version}"] = str(result)
            log.warning("discovery of %s/%s failed, skipping it: %s", group, version, result)
        else:
            resources.extend(result)
    return Discovery(resources, preferred, failed)
