"""``metadata.managedFields`` for HTTP writes, so created objects look like a real cluster's.

kube-apiserver records, per field manager and operation, which fields a writer set. The fake
records the same entry shape with a simplified field set (every key the writer sent, lists as
opaque leaves), which is what consumers such as MeshSync see and strip; it does not implement
server-side apply's conflict detection.
"""

from __future__ import annotations

from typing import Any

from .store import now_timestamp

#: Metadata fields that managedFields track (the rest are server-owned).
_TRACKED_META = ("labels", "annotations", "ownerReferences", "finalizers", "generateName")


def manager_name(field_manager: str | None, user_agent: str) -> str:
    """The ``fieldManager`` query parameter, else the user agent up to its first "/"."""
    if field_manager:
        return field_manager
    return user_agent.split("/", 1)[0].strip() or "unknown"


def fields_v1(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {f"f:{k}": fields_v1(v) for k, v in value.items()}
    return {}


def record(obj: dict[str, Any], manager: str, api_version: str, subresource: str = "") -> None:
    """Add (or replace) this manager's ``Update`` entry in ``obj``'s managedFields."""
    meta = obj.setdefault("metadata", {})
    fields: dict[str, Any] = {}
    tracked_meta = {k: meta[k] for k in _TRACKED_META if k in meta}
    if tracked_meta:
        fields["f:metadata"] = fields_v1(tracked_meta)
    for key, value in obj.items():
        if key in ("apiVersion", "kind", "metadata"):
            continue
        if (key == "status") != (subresource == "status"):
            continue  # status belongs to status writers, everything else to the main resource
        fields[f"f:{key}"] = fields_v1(value)
    entry: dict[str, Any] = {
        "manager": manager,
        "operation": "Update",
        "apiVersion": api_version,
        "time": now_timestamp(),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }
    if subresource:
        entry["subresource"] = subresource
    others = [
        m
        for m in meta.get("managedFields") or []
        if isinstance(m, dict)
        and not (
            m.get("manager") == manager
            and m.get("operation") == "Update"
            and m.get("subresource", "") == subresource
        )
    ]
    meta["managedFields"] = [*others, entry]
