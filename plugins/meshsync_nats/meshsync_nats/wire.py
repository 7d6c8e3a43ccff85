"""The Meshery wire shape: a Kubernetes object dict -> the object Meshery Server decodes.

Pure functions, run once per object on the hot path, so they build the output dicts directly
(no deep copies of the input) and serialise nested values with msgspec. The shape follows Go
MeshSync's ``model.ParseList`` exactly:

* ``labels``/``annotations`` become lists of ``{id, unique_id, kind, key, value}`` sorted by key
  (Go walks its key-sorted JSON encoding);
* ``spec``/``status`` become ``{id, attribute: "<JSON string>"}`` when the key exists at all;
* ``ownerReferences``, ``finalizers``, ``data``, ``binaryData``, ``stringData`` and ``immutable``
  become the raw JSON text of the value (Go's ``jsonparser.Get``), ``type`` its string value;
* ``managedFields`` is never sent; optional fields are omitted where Go's ``omitempty`` would.

JSON strings are compact and keep the object's own key order. Go MeshSync re-encodes a map, so
its keys come sorted; the text differs, the JSON is the same, and that is what Meshery reads.

Two ways in, one result (a test holds them equal):

* :func:`to_meshery` re-shapes a decoded object dict;
* :func:`event_to_meshery` uses the event's raw JSON when the source handed it over undecoded:
  msgspec reads the metadata fields and slices ``spec``/``status``/``data`` out as text, so
  neither the object nor its ``managedFields`` is ever built as dicts. It costs about a third
  of decoding and re-encoding.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from meshsync_core import Event

#: Subject of resource events and the value of ``ObjectType`` in their envelope.
SUBJECT_CORE = "meshery.meshsync.core"
OBJECT_TYPE = "meshsync-data"
#: The label Meshery puts on resources it deployed from a design (``pattern_resource``).
DESIGN_ID_LABEL = "design.meshery.io/id"

#: msgspec's encoder: faster than orjson on these mostly-string messages, and any int size.
_dumps = msgspec.json.Encoder().encode

# Metadata fields copied as they are when set, in Go's struct order (after id and name).
_META_STRINGS_BEFORE_UID = ("generateName", "namespace")
_META_AFTER_UID = ("resourceVersion", "generation", "creationTimestamp", "deletionTimestamp")
# Top-level fields sent as the raw JSON text of their value (omitted when absent).
_RAW_JSON_FIELDS = ("immutable", "data", "binaryData", "stringData")


def json_text(value: Any) -> str:
    """Compact JSON text of a value, keys in their own order (integers of any size)."""
    return _dumps(value).decode()


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


def event_envelope(event: Event, *, meshery_ids: bool = False) -> bytes:
    """:func:`envelope` for an event, through the raw-JSON fast path when it can."""
    return _dumps(
        {
            "ObjectType": OBJECT_TYPE,
            "EventType": event.type.value,
            "Request": None,
            "Object": event_to_meshery(event, meshery_ids=meshery_ids),
        }
    )


# -- the raw-JSON fast path ----------------------------------------------------------------------

_Raw = msgspec.Raw
_UNSET = msgspec.UNSET
_NULL = b"null"
#: The default of every raw field: an absent value (told apart by identity, without a copy).
_ABSENT = _Raw(_NULL)


class _WireMeta(msgspec.Struct, gc=False):
    """The metadata fields Go sends; anything else (managedFields) is skipped unread.

    Defaults stand for "absent"; a field of another type fails validation and sends the
    object down the dict path, which copies whatever it finds.
    """

    name: str = ""
    generateName: str = ""
    namespace: str = ""
    uid: str = ""
    resourceVersion: str = ""
    generation: int = 0
    creationTimestamp: str = ""
    deletionTimestamp: str = ""
    deletionGracePeriodSeconds: int | None = None
    labels: dict[str, Any] | None = None
    annotations: dict[str, Any] | None = None
    ownerReferences: _Raw = _ABSENT
    finalizers: _Raw = _ABSENT


class _WireObject(msgspec.Struct, gc=False):
    kind: str | msgspec.UnsetType = _UNSET
    apiVersion: str = ""
    metadata: _WireMeta | None = None
    spec: _Raw = _ABSENT
    status: _Raw = _ABSENT
    immutable: _Raw = _ABSENT
    data: _Raw = _ABSENT
    binaryData: _Raw = _ABSENT
    stringData: _Raw = _ABSENT
    type: str = ""


_wire_decoder = msgspec.json.Decoder(_WireObject)
_NO_META = _WireMeta()


def _text(raw: msgspec.Raw) -> str | None:
    """The JSON text of a present, non-null value (what json_text gives for the decoded one)."""
    if raw is _ABSENT:
        return None
    text = bytes(raw)
    return None if text == _NULL else text.decode()


def event_to_meshery(event: Event, *, meshery_ids: bool = False) -> dict[str, Any]:
    """:func:`to_meshery` of ``event.object``, read straight from ``event.raw_json`` if set."""
    raw = event.raw_json
    if raw is None or event.resource.kind == "Service":  # Services need their URLs parsed
        return to_meshery(event.object, event.cluster_id, meshery_ids=meshery_ids)
    try:
        obj = _wire_decoder.decode(raw)
    except msgspec.ValidationError:  # unusual types: the dict path copies them as they are
        return to_meshery(event.object, event.cluster_id, meshery_ids=meshery_ids)
    if obj.kind is _UNSET:  # list items: the source adds both, from the resource
        kind, api_version = event.resource.kind, event.resource.api_version
    else:
        kind, api_version = obj.kind, obj.apiVersion
    if kind == "Service" and api_version == "v1":
        return to_meshery(event.object, event.cluster_id, meshery_ids=meshery_ids)
    cluster_id = event.cluster_id
    m = obj.metadata or _NO_META
    name = m.name
    obj_id = meshery_id(cluster_id, kind, api_version, m.namespace, name) if meshery_ids else ""
    meta: dict[str, Any] = {"id": obj_id, "name": name}
    if m.generateName:
        meta["generateName"] = m.generateName
    if m.namespace:
        meta["namespace"] = m.namespace
    meta["uid"] = m.uid
    if m.resourceVersion:
        meta["resourceVersion"] = m.resourceVersion
    if m.generation:
        meta["generation"] = m.generation
    if m.creationTimestamp:
        meta["creationTimestamp"] = m.creationTimestamp
    if m.deletionTimestamp:
        meta["deletionTimestamp"] = m.deletionTimestamp
    if m.deletionGracePeriodSeconds is not None:
        meta["deletionGracePeriodSeconds"] = m.deletionGracePeriodSeconds
    labels = m.labels
    if labels:
        meta["labels"] = _key_values(labels, "label", obj_id)
    if m.annotations:
        meta["annotations"] = _key_values(m.annotations, "annotation", obj_id)
    if m.ownerReferences is not _ABSENT:
        text = _text(m.ownerReferences)
        if text is not None:
            meta["ownerReferences"] = text
    if m.finalizers is not _ABSENT:
        text = _text(m.finalizers)
        if text is not None:
            meta["finalizers"] = text
    meta["cluster_id"] = ""

    out: dict[str, Any] = {
        "id": obj_id,
        "apiVersion": api_version,
        "kind": kind,
        "model": "",
        "metadata": meta,
    }
    text = _text(obj.spec)
    if text is not None:
        out["spec"] = {"id": obj_id, "attribute": text}
    text = _text(obj.status)
    if text is not None:
        out["status"] = {"id": obj_id, "attribute": text}
    out["cluster_id"] = cluster_id
    out["pattern_resource"] = _pattern_resource(labels)
    out["component_metadata"] = None
    if obj.immutable is not _ABSENT or obj.data is not _ABSENT:  # ConfigMaps and Secrets
        for field, value in (("immutable", obj.immutable), ("data", obj.data)):
            text = _text(value)
            if text is not None:
                out[field] = text
    if obj.binaryData is not _ABSENT or obj.stringData is not _ABSENT:
        for field, value in (("binaryData", obj.binaryData), ("stringData", obj.stringData)):
            text = _text(value)
            if text is not None:
                out[field] = text
    if obj.type:
        out["type"] = obj.type
    return out


def object_batch(objects: Iterable[Mapping[str, Any]]) -> bytes:
    """An ``informer-store`` answer message: ``{"Object": [...]}`` of already re-shaped objects."""
    return _dumps({"Object": list(objects)})
