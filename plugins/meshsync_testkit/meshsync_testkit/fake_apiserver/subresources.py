"""The ``status`` and ``scale`` subresources, as views onto the stored object.

A subresource is served by reading the whole object, showing a *view* of it (the object itself
for ``status``, an ``autoscaling/v1`` Scale for ``scale``) and, on PUT/PATCH, folding the
changed view back into the object: only ``.status``, or only ``.spec.replicas``. That is what
``kubectl scale`` and controllers writing status rely on.
"""

from __future__ import annotations

from typing import Any

from .resources import SERVED_SUBRESOURCES, ResourceType

STATUS = "status"
SCALE = "scale"


def served(rt: ResourceType, sub: str) -> bool:
    return sub in SERVED_SUBRESOURCES and sub in rt.subresources


def view(sub: str, obj: dict[str, Any]) -> dict[str, Any]:
    """What a GET of the subresource returns."""
    if sub != SCALE:
        return obj
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    selector = spec.get("selector") or {}
    labels = selector.get("matchLabels", selector) if isinstance(selector, dict) else {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": spec.get("replicas", 1)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        },
    }


def fold(sub: str, current: dict[str, Any], changed: dict[str, Any]) -> dict[str, Any]:
    """The whole object after a PUT/PATCH of the subresource's view ``changed``."""
    out = dict(current)
    if sub == STATUS:
        out["status"] = changed.get("status")
        if out["status"] is None:
            out.pop("status")
    else:
        spec = dict(current.get("spec") or {})
        spec["replicas"] = (changed.get("spec") or {}).get("replicas", 0)
        out["spec"] = spec
    meta = dict(current.get("metadata") or {})
    given_rv = (changed.get("metadata") or {}).get("resourceVersion")
    if given_rv:  # a precondition, checked by Store.update
        meta["resourceVersion"] = given_rv
    out["metadata"] = meta
    return out
