"""The Meshery wire shape: a Kubernetes object -> the message Meshery Server decodes.

Run once per object on the hot path. The shape follows Go MeshSync's ``model.ParseList``, and
is declared here the way Go declares it, as structs whose field order is the JSON key order
and whose defaults are left out like Go's ``omitempty``:

* ``labels``/``annotations`` become lists of ``{id, unique_id, kind, key, value}`` sorted by key
  (Go walks its key-sorted JSON encoding);
* ``spec``/``status`` become ``{id, attribute: "<JSON string>"}`` when the key exists at all;
* ``ownerReferences``, ``finalizers``, ``data``, ``binaryData``, ``stringData`` and ``immutable``
  become the JSON text of the value (Go's ``jsonparser.Get``), ``type`` its string value;
* ``managedFields`` is never sent.

JSON text is compact and keeps the object's own key order. Go MeshSync re-encodes a map, so
its keys come sorted; the text differs, the JSON is the same, and that is what Meshery reads.

Two ways in, one result (tests hold them byte-for-byte equal):

* :func:`to_meshery` re-shapes a decoded object dict;
* :func:`event_to_meshery` uses the event's raw JSON when the source handed it over undecoded:
  msgspec reads the metadata fields and slices ``spec``/``status``/``data`` out as text, so
  neither the object nor its ``managedFields`` is ever built as dicts.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec

from meshsync_core import Event

#: Subject of resource events and the value of ``ObjectType`` in their envelope.
SUBJECT_CORE = "meshery.meshsync.core"
OBJECT_TYPE = "meshsync-data"
#: The label Meshery puts on resources it deployed from a design (``pattern_resource``).
DESIGN_ID_LABEL = "design.meshery.io/id"

#: One encoder for everything: fast on these mostly-string messages, and any int size.
_dumps = msgspec.json.Encoder().encode


# -- the shape ------------------------------------------------------------------------------------


class KeyValue(msgspec.Struct, omit_defaults=True, gc=False):
    """One label or annotation (an empty value is left out, as Go's ``omitempty`` does)."""

    id: str
    unique_id: str
    kind: str
    key: str = ""
    value: str = ""


class Attribute(msgspec.Struct, gc=False):
    """``spec`` or ``status``: the value as JSON text."""

    id: str
    attribute: str


class Metadata(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    id: str
    name: str = ""
    generateName: str = ""
    namespace: str = ""
    uid: str
    resourceVersion: str = ""
    generation: Any = 0
    creationTimestamp: Any = ""
    deletionTimestamp: Any = ""
    deletionGracePeriodSeconds: Any = None
    labels: list[KeyValue] | None = None
    annotations: list[KeyValue] | None = None
    ownerReferences: str = ""
    finalizers: str = ""
    cluster_id: str  # always sent, always "" (Go never fills it in)


class MesheryObject(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """The ``Object`` of a message."""

    id: str
    apiVersion: str
    kind: str
    model: str  # always sent, always ""
    metadata: Metadata
    spec: Attribute | None = None
    status: Attribute | None = None
    cluster_id: str
    pattern_resource: str | None
    component_metadata: dict[str, Any] | None
    immutable: str = ""
    data: str = ""
    binaryData: str = ""
    stringData: str = ""
    type: str = ""


class _Envelope(msgspec.Struct, gc=False):
    ObjectType: str
    EventType: str
    Request: None
    Object: MesheryObject


class _Reply(msgspec.Struct, kw_only=True, gc=False):
    """A request's answer: Go publishes a bare ``broker.Message``, so the first three are empty."""

    ObjectType: str = ""
    EventType: str = ""
    Request: None = None
    Object: Any


def as_builtins(obj: MesheryObject) -> dict[str, Any]:
    """The object as plain dicts and lists, exactly as it is sent."""
    return msgspec.to_builtins(obj)


def json_text(value: Any) -> str:
    """Compact JSON text of a value, keys in their own order (integers of any size)."""
    return _dumps(value).decode()


def meshery_id(cluster_id: str, kind: str, api_version: str, namespace: str, name: str) -> str:
    """The id Meshery computes: base64 of ``<cluster_id>.<Kind>.<apiVersion>.<ns>.<name>``."""
    raw = f"{cluster_id}.{kind}.{api_version}.{namespace}.{name}"
    return base64.b64encode(raw.encode()).decode()


def _key_values(values: Mapping[str, Any], kind: str, obj_id: str) -> list[KeyValue]:
    items = sorted(values.items()) if len(values) > 1 else list(values.items())
    if obj_id:  # Meshery ids: each entry also gets a fresh unique_id, as Meshery's SetID does
        return [
            KeyValue(
                obj_id,
                str(uuid.uuid4()),
                kind,
                key,
                value if value.__class__ is str else json_text(value),
            )
            for key, value in items
        ]
    return [
        KeyValue("", "", kind, key, value if value.__class__ is str else json_text(value))
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
    """Connection URLs of a Service, outside-in, like Go MeshSync (meshkit's ``GetEndpoint``):

    1. load-balancer ingress addresses (IP, else hostname) and ``spec.externalIPs``;
    2. without a load balancer, ``localhost:<nodePort>`` for every node port (Go's NodePort
       answer, for clusters on the same machine);
    3. the cluster IPs (``None`` of headless Services skipped).

    Each address is paired with every port; ``https`` for port 443, ``http`` otherwise. Go
    takes only the last port and the first ingress, and dials the address first - sending no
    URLs at all when the dial fails; this never dials, so the answer does not depend on where
    MeshSync runs.
    """
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        return []
    ports = [port for port in spec.get("ports") or () if isinstance(port, Mapping)]
    numbers = [port["port"] for port in ports if port.get("port")]
    balancers: list[str] = []
    status = obj.get("status")
    if isinstance(status, Mapping):
        lb = status.get("loadBalancer")
        if isinstance(lb, Mapping):
            for ingress in lb.get("ingress") or ():
                if isinstance(ingress, Mapping):
                    host = ingress.get("ip") or ingress.get("hostname")
                    if host and host != "<pending>":
                        balancers.append(str(host))
    external = [*balancers, *(str(ip) for ip in spec.get("externalIPs") or () if ip)]
    pairs = [(host, number) for host in external for number in numbers]
    if not balancers:
        pairs += [("localhost", port["nodePort"]) for port in ports if port.get("nodePort")]
    cluster_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    pairs += [(str(ip), number) for ip in cluster_ips if ip and ip != "None" for number in numbers]
    urls: list[str] = []
    for host, number in pairs:
        shown = f"[{host}]" if ":" in host else host  # IPv6
        url = f"{'https' if number == 443 else 'http'}://{shown}:{number}"
        if url not in urls:
            urls.append(url)
    return urls


# -- from a decoded object ------------------------------------------------------------------------


def _json_or_empty(container: Mapping[str, Any], field: str) -> str:
    """JSON text of a present, non-null value; "" (left out) otherwise."""
    value = container.get(field)
    return "" if value is None else json_text(value)


def to_meshery(
    obj: Mapping[str, Any], cluster_id: str, *, meshery_ids: bool = False
) -> MesheryObject:
    """Re-shape one decoded Kubernetes object. Values of unexpected types are copied as they
    are; falsy ones are left out, as Go's ``omitempty`` would."""
    meta_in = obj.get("metadata")
    if not isinstance(meta_in, Mapping):
        meta_in = {}
    kind = obj.get("kind", "") or ""
    api_version = obj.get("apiVersion", "") or ""
    name = meta_in.get("name", "") or ""
    namespace = meta_in.get("namespace") or ""
    obj_id = meshery_id(cluster_id, kind, api_version, namespace, name) if meshery_ids else ""
    labels = meta_in.get("labels")
    annotations = meta_in.get("annotations")
    metadata = Metadata(
        id=obj_id,
        name=name,
        generateName=meta_in.get("generateName") or "",
        namespace=namespace,
        uid=meta_in.get("uid", "") or "",
        resourceVersion=meta_in.get("resourceVersion") or "",
        generation=meta_in.get("generation") or 0,
        creationTimestamp=meta_in.get("creationTimestamp") or "",
        deletionTimestamp=meta_in.get("deletionTimestamp") or "",
        # a pointer in Go: 0 is sent, only nil is left out
        deletionGracePeriodSeconds=meta_in.get("deletionGracePeriodSeconds"),
        labels=_key_values(labels, "label", obj_id) if labels else None,
        annotations=_key_values(annotations, "annotation", obj_id) if annotations else None,
        ownerReferences=_json_or_empty(meta_in, "ownerReferences"),
        finalizers=_json_or_empty(meta_in, "finalizers"),
        cluster_id="",
    )
    spec = obj.get("spec")
    status = obj.get("status")
    obj_type = obj.get("type")
    component_metadata = None
    if kind == "Service" and api_version == "v1":
        component_metadata = {"capabilities": {"connection": True, "urls": service_urls(obj)}}
    return MesheryObject(
        id=obj_id,
        apiVersion=api_version,
        kind=kind,
        model="",
        metadata=metadata,
        spec=None if spec is None else Attribute(obj_id, json_text(spec)),
        status=None if status is None else Attribute(obj_id, json_text(status)),
        cluster_id=cluster_id,
        pattern_resource=_pattern_resource(labels),
        component_metadata=component_metadata,
        immutable=_json_or_empty(obj, "immutable"),
        data=_json_or_empty(obj, "data"),
        binaryData=_json_or_empty(obj, "binaryData"),
        stringData=_json_or_empty(obj, "stringData"),
        type=(obj_type if obj_type.__class__ is str else json_text(obj_type)) if obj_type else "",
    )


# -- from raw JSON --------------------------------------------------------------------------------

_Raw = msgspec.Raw
_UNSET = msgspec.UNSET
_NULL = b"null"
#: The default of every raw field: an absent value (told apart by identity, without a copy).
_ABSENT = _Raw(_NULL)


class _RawMeta(msgspec.Struct, gc=False):
    """The metadata fields Go sends; anything else (managedFields) is skipped unread.

    Defaults stand for "absent". A field of another type fails validation and sends the
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


class _RawObject(msgspec.Struct, gc=False):
    kind: str | msgspec.UnsetType = _UNSET
    apiVersion: str = ""
    metadata: _RawMeta | None = None
    spec: _Raw = _ABSENT
    status: _Raw = _ABSENT
    immutable: _Raw = _ABSENT
    data: _Raw = _ABSENT
    binaryData: _Raw = _ABSENT
    stringData: _Raw = _ABSENT
    type: str = ""


_raw_decoder = msgspec.json.Decoder(_RawObject)
_NO_META = _RawMeta()


def _text(raw: msgspec.Raw) -> str:
    """JSON text of a present, non-null value; "" (left out) otherwise."""
    if raw is _ABSENT:
        return ""
    text = bytes(raw)
    return "" if text == _NULL else text.decode()


def event_to_meshery(event: Event, *, meshery_ids: bool = False) -> MesheryObject:
    """:func:`to_meshery` of ``event.object``, read straight from ``event.raw_json`` if set."""
    raw = event.raw_json
    if raw is None or event.resource.kind == "Service":  # Services need their URLs parsed
        return to_meshery(event.object, event.cluster_id, meshery_ids=meshery_ids)
    try:
        obj = _raw_decoder.decode(raw)
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
    obj_id = meshery_id(cluster_id, kind, api_version, m.namespace, m.name) if meshery_ids else ""
    labels = m.labels
    annotations = m.annotations
    metadata = Metadata(
        id=obj_id,
        name=m.name,
        generateName=m.generateName,
        namespace=m.namespace,
        uid=m.uid,
        resourceVersion=m.resourceVersion,
        generation=m.generation,
        creationTimestamp=m.creationTimestamp,
        deletionTimestamp=m.deletionTimestamp,
        deletionGracePeriodSeconds=m.deletionGracePeriodSeconds,
        labels=_key_values(labels, "label", obj_id) if labels else None,
        annotations=_key_values(annotations, "annotation", obj_id) if annotations else None,
        ownerReferences=_text(m.ownerReferences),
        finalizers=_text(m.finalizers),
        cluster_id="",
    )
    spec = _text(obj.spec)
    status = _text(obj.status)
    return MesheryObject(
        id=obj_id,
        apiVersion=api_version,
        kind=kind,
        model="",
        metadata=metadata,
        spec=Attribute(obj_id, spec) if spec else None,
        status=Attribute(obj_id, status) if status else None,
        cluster_id=cluster_id,
        pattern_resource=_pattern_resource(labels),
        component_metadata=None,
        immutable=_text(obj.immutable),
        data=_text(obj.data),
        binaryData=_text(obj.binaryData),
        stringData=_text(obj.stringData),
        type=obj.type,
    )


# -- messages -------------------------------------------------------------------------------------


def _load_c_envelope() -> Callable[[Any, str, str, str, str], bytes | None] | None:
    """The compiled message writer (``meshsync_speedups._meshery_message``), if it was built
    and not disabled with ``MESHSYNC_WIRE_PURE_PYTHON=1``."""
    if os.environ.get("MESHSYNC_WIRE_PURE_PYTHON", "").lower() in ("1", "true", "yes"):
        return None
    try:
        from meshsync_speedups import _meshery_message
    except ImportError:  # not compiled (no C compiler at install time): the Python path
        return None
    return _meshery_message.envelope


#: ``envelope(raw, event_type, cluster_id, kind, api_version) -> bytes | None``: the message
#: of an object's raw JSON written in C, byte for byte what :func:`python_event_envelope`
#: gives, or None for what it does not write the same way (then the Python path runs).
c_envelope = _load_c_envelope()
#: "c" when the compiled writer is in use, else "python" (reported by the benchmarks).
IMPLEMENTATION = "c" if c_envelope is not None else "python"


def event_envelope(event: Event, *, meshery_ids: bool = False) -> bytes:
    """The bytes published on ``meshery.meshsync.core`` for one change: written in C from the
    raw JSON when it can (no Python objects built: about 18 -> 3 us for a Pod), else by
    :func:`python_event_envelope`."""
    raw = event.raw_json
    if c_envelope is not None and raw is not None and not meshery_ids:
        resource = event.resource
        if resource.kind != "Service":  # Services need their URLs worked out
            data = c_envelope(
                raw, event.type.value, event.cluster_id, resource.kind, resource.api_version
            )
            if data is not None:
                return data
    return python_event_envelope(event, meshery_ids=meshery_ids)


def python_event_envelope(event: Event, *, meshery_ids: bool = False) -> bytes:
    """:func:`event_envelope` in Python: the fallback, and the reference the C writer is
    tested against byte for byte."""
    return _message(event.type.value, event_to_meshery(event, meshery_ids=meshery_ids))


def object_message(event_type: str, obj: MesheryObject) -> bytes:
    """The message of an object already re-shaped (and perhaps made smaller to fit)."""
    return _message(event_type, obj)


def _message(event_type: str, obj: MesheryObject) -> bytes:
    if event_type == "DELETED":
        obj.component_metadata = None  # as Go: a deleted Service offers no connection
    return _dumps(_Envelope(OBJECT_TYPE, event_type, None, obj))


def reply(value: Any) -> bytes:
    """An answer to a request (``informer-store`` batches, ``meshsync-meta``) as Go sends it:
    ``{"ObjectType": "", "EventType": "", "Request": null, "Object": value}``."""
    return _dumps(_Reply(Object=value))


def object_batch(objects: Iterable[MesheryObject]) -> bytes:
    """An ``informer-store`` answer message carrying a few re-shaped objects."""
    return reply(list(objects))
