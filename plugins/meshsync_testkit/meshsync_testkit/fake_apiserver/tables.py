"""``meta.k8s.io/v1`` Table responses, which ``kubectl get`` asks for (``Accept: ...;as=Table``).

kube-apiserver renders tables server-side; kubectl only prints them. The fake server uses the
generic NAME/AGE columns every resource without custom printers gets, and embeds each object
as ``PartialObjectMetadata`` (kubectl reads the namespace column from it).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import orjson

from .store import NAME, RAW, Entry, decode

COLUMNS: list[dict[str, Any]] = [
    {
        "name": "Name",
        "type": "string",
        "format": "name",
        "description": "Name must be unique within a namespace.",
        "priority": 0,
    },
    {
        "name": "Age",
        "type": "string",
        "format": "",
        "description": "CreationTimestamp is a timestamp representing the server time when "
        "this object was created.",
        "priority": 0,
    },
]


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def human_age(created: str | None, now: _dt.datetime | None = None) -> str:
    """The age string kubectl shows (``5s``, ``3m12s``, ``4h``, ``12d``), like HumanDuration."""
    if not created:
        return "<unknown>"
    try:
        then = _dt.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        return "<unknown>"
    now = now or _dt.datetime.now(_dt.timezone.utc)
    s = int((now - then).total_seconds())
    if s < -1:
        return "<invalid>"
    s = max(s, 0)
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = s // 3600
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 365 * 2:
        return f"{d}d"
    y = d // 365
    return f"{y}y{d % 365}d" if y < 8 and d % 365 else f"{y}y"


def row(entry: Entry, include: str, raw: bytes | None = None) -> dict[str, Any]:
    """One table row; ``include`` is the request's includeObject (None/Object/Partial...)."""
    obj = decode(entry)
    meta = obj.get("metadata") or {}
    out: dict[str, Any] = {"cells": [entry[NAME], human_age(meta.get("creationTimestamp"))]}
    if include == "Object":
        out["object"] = orjson.Fragment(raw if raw is not None else entry[RAW])
    elif include != "None":
        out["object"] = {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": meta,
        }
    return out


def table(
    rows: list[dict[str, Any]],
    resource_version: int | None = None,
    continue_token: str = "",
    with_columns: bool = True,
) -> bytes:
    meta: dict[str, Any] = {}
    if resource_version is not None:
        meta["resourceVersion"] = str(resource_version)
    if continue_token:
        meta["continue"] = continue_token
    return orjson.dumps(
        {
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": meta,
            "columnDefinitions": COLUMNS if with_columns else None,
            "rows": rows,
        }
    )
