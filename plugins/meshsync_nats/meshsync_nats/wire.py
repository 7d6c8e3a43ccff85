"""The Meshery wire shape: a Kubernetes object dict -> the object Meshery Server decodes.

Pure functions, run once per object on the hot path, so they build the output dicts directly
(no deep copies of the input) and serialise nested values with orjson. The shape follows Go
MeshSync's ``model.ParseList`` exactly:

* ``labels``/``annotations`` become lists of ``{id, unique_id, kind, key, value}`` sorted by key
  (Go walks its key-sorted JSON encoding);
* ``spec``/``status`` become ``{id, attribute: "<JSON string>"}`` when the key exists at all;
* ``ownerReferences``, ``finalizers``, ``data``, ``binaryData``, ``stringData`` and ``immutable``
  become the raw JSON text of the value (Go's ``jsonparser.Get``), ``type`` its string value;
* ``managedFields`` is never sent; optional fields are omitted where Go's ``omitempty`` would.

JSON strings are compact with sorted keys, as Go's ``encoding/json`` writes a map.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

#: Subject of resource events and the value of ``ObjectType`` in their envelope.
SUBJECT_CORE = "meshery.meshsync.core"
OBJECT_TYPE = "meshsync-data"
#: The label Meshery puts on resources it deployed from a design (``pattern_resource``).
DESIGN_ID_LABEL = "design.meshery.io/id"

_SORTED = orjson.OPT_SORT_KEYS
_dumps = orjson.dumps

# Metadata fields copied as they are when set, in Go's struct order (after id and name).
_META_STRINGS_BEFORE_UID = ("generateName", "namespace")
_META_AFTER_UID = ("resourceVersion", "generation", "creationTimestamp", "deletionTimestamp")
# Top-level fields sent as the raw JSON text of their value (omitted when absent).
_RAW_JSON_FIELDS = ("immutable", "data", "binaryData", "stringData")


def json_text(value: Any) -> str:
    """Compact JSON with sorted keys, like Go's ``json.Marshal`` of a map."""
    return _dumps(value, option=_SORTED).decode()


def meshery_id(cluster_id: str, kind: str, api_version: str, namespace: str, name: str) -> str:
    """The id Meshery computes: base64 of ``<cluster_id>.<Kind>.<apiVersion>.<ns>.<name>``."""
    raw = f"{cluster_id}.{kind}.{api_version}.{namespace}.{name}"
    return base64.b64encode(raw.encode()).decode()


def _key_values(values: Mapping[str, Any], kind: str, obj_id: str) -> list[dict[str, Any]]:
    items = sorted(values.items()) if len(values) > 1 else list(values.items())
    if obj_id:  # Meshery ids: each entry also gets a fresh unique_id, as Meshery's SetID does
        return [
            {
                "id": obj_id,
                "unique_id": str(uuid.uuid4()),
                "kind": kind,
                "key": key,
                "value": value if value.__class__ is str else json_text(value),
            }
            for key, value in items
        ]
    return [
        {
            "id": "",
            "unique_id": "",
            "kind": kind,
            "key": key,
            "value": value if value.__class__ is str else json_text(value),
        }
        for key, value in items
    ]


def _pattern_resource(labels: Mapping[str, Any] | None) -> str | None:
    """The design id label as a UUID string, else None.

    Go calls ``uuid.FromBytes`` on the 36-character text, which always fails and leaves the
    zero UUID; we send the label's UUID when it is valid and null otherwise.
    """
    if not labels or DESIGN_ID_LABEL not in labels:
        return None
    try:
        return str(uuid.UUID(str(labels[DESIGN_ID_LABEL])))
    except ValueError:
        return None


def service_urls(obj: Mapping[str, Any]) -> list[str]:
    """Connection URLs of a Service: every address (load-balancer ingress, external IPs,
    cluster IPs) with every port, ``https`` for port 443 and ``http`` otherwise."""
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        return []
    hosts: list[str] = []
    status = obj.get("status")
    if isinstance(status, Mapping):
        lb = status.get("loadBalancer")
        if isinstance(lb, Mapping):
            for ingress in lb.get("ingress") or ():
                if isinstance(ingress, Mapping):
                    host = ingress.get("ip") or ingress.get("hostname")
                    if host:
                        hosts.append(str(host))
    hosts.extend(str(ip) for ip in spec.get("externalIPs") or () if ip)
    cluster_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    hosts.extend(str(ip) for ip in cluster_ips if ip and ip != "None")
    urls: list[str] = []
    seen: set[str] = set()
    for host in hosts:
        shown = f"[{host}]" if ":" in host else host  # IPv6
        for port in spec.get("ports") or ():
            if not isinstance(port, Mapping) or not port.get("port"):
                continue
            number = port["port"]
            scheme = "https" if number == 443 else "http"
            url = f"{scheme}://{shown}:{number}"
            if url not in seen:
                seen.add(url)
                urls.append(url)
    return urls


def to_meshery(
    obj: Mapping[str, Any], cluster_id: str, *, meshery_ids: bool = False
) -> dict[str, Any]:
    """Re-shape one Kubernetes object into the ``Object`` of a Meshery message."""
    meta_in = obj.get("metadata")
    if not isinstance(meta_in, Mapping):
        meta_in = {}
    kind = obj.get("kind", "") or ""
    api_version = obj.get("apiVersion", "") or ""
    name = meta_in.get("name", "") or ""
    obj_id = (
        meshery_id(cluster_id, kind, api_version, meta_in.get("namespace", "") or "", name)
        if meshery_ids
        else ""
    )

    meta: dict[str, Any] = {"id": obj_id, "name": name}
    for field in _META_STRINGS_BEFORE_UID:
        value = meta_in.get(field)
        if value:
            meta[field] = value
    meta["uid"] = meta_in.get("uid", "") or ""
    for field in _META_AFTER_UID:
        value = meta_in.get(field)
        if value:
            meta[field] = value
    grace = meta_in.get("deletionGracePeriodSeconds")
    if grace is not None:  # a pointer in Go: 0 is sent, only nil is omitted
        meta["deletionGracePeriodSeconds"] = grace
    labels = meta_in.get("labels")
    if labels:
        meta["labels"] = _key_values(labels, "label", obj_id)
    annotations = meta_in.get("annotations")
    if annotations:
        meta["annotations"] = _key_values(annotations, "annotation", obj_id)
    if "ownerReferences" in meta_in and meta_in["ownerReferences"] is not None:
        meta["ownerReferences"] = json_text(meta_in["ownerReferences"])
    if "finalizers" in meta_in and meta_in["finalizers"] is not None:
        meta["finalizers"] = json_text(meta_in["finalizers"])
    meta["cluster_id"] = ""

    out: dict[str, Any] = {
        "id": obj_id,
        "apiVersion": api_version,
        "kind": kind,
        "model": "",
        "metadata": meta,
    }
    spec = obj.get("spec")
    if spec is not None:
        out["spec"] = {"id": obj_id, "attribute": json_text(spec)}
    status = obj.get("status")
    if status is not None:
        out["status"] = {"id": obj_id, "attribute": json_text(status)}
    out["cluster_id"] = cluster_id
    out["pattern_resource"] = _pattern_resource(labels)
    component_metadata = None
    if kind == "Service" and api_version == "v1":
        component_metadata = {"capabilities": {"connection": True, "urls": service_urls(obj)}}
    out["component_metadata"] = component_metadata
    for field in _RAW_JSON_FIELDS:
        value = obj.get(field)
        if value is not None:
            out[field] = json_text(value)
    obj_type = obj.get("type")
    if obj_type:
        out["type"] = obj_type if isinstance(obj_type, str) else json_text(obj_type)
    return out


def envelope(event_type: str, obj: Mapping[str, Any], cluster_id: str, **kwargs: Any) -> bytes:
    """The bytes published on ``meshery.meshsync.core`` for one change."""
    return _dumps(
        {
            "ObjectType": OBJECT_TYPE,
            "EventType": event_type,
            "Request": None,
            "Object": to_meshery(obj, cluster_id, **kwargs),
        }
    )


def object_batch(objects: Iterable[Mapping[str, Any]]) -> bytes:
    """An ``informer-store`` answer message: ``{"Object": [...]}`` of already re-shaped objects."""
    return _dumps({"Object": list(objects)})
