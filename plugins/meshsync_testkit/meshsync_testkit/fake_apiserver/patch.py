"""PATCH bodies: JSON merge patch (RFC 7386), a pragmatic strategic merge patch, JSON patch.

Strategic merge patch is what ``kubectl apply``/``kubectl patch`` send for built-in kinds. The
real one merges lists by a per-field "patch merge key" from the Go types; here lists of objects
are merged by the first of the usual merge keys (``name``, ``containerPort``, ``port`` ...) that
every element carries, and ``$patch``/``$setElementOrder``/``$retainKeys`` directives are
honoured or dropped. That is faithful for what kubectl sends for ordinary manifests.
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError, bad_request

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

_MERGE_KEYS = ("name", "containerPort", "port", "mountPath", "devicePath", "ip", "type", "key")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Merge like kube's strategic merge patch, closely enough for kubectl apply/patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
    if patch.get("$patch") == "delete":
        return None
    result = dict(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    orders = {k.split("/", 1)[1]: v for k, v in patch.items() if k.startswith("$setElementOrder/")}
    for key, value in patch.items():
        if key.startswith("$"):
            if key.startswith("$deleteFromPrimitiveList/"):
                field = key.split("/", 1)[1]
                if isinstance(result.get(field), list):
                    result[field] = [x for x in result[field] if x not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_lists(result[key], value, orders.get(key))
        else:
            merged = strategic_merge_patch(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_lists(current: list[Any], patch: list[Any], order: list[Any] | None) -> list[Any]:
    dicts = [p for p in patch if isinstance(p, dict)]
    if not dicts or len(dicts) != len(patch) or not all(isinstance(c, dict) for c in current):
        return copy.deepcopy([p for p in patch if not (isinstance(p, dict) and "$patch" in p)])
    candidates = [k for k in _MERGE_KEYS if all(k in p for p in dicts)]
    if not candidates:
        return copy.deepcopy(patch)
    mk = candidates[0]
    by_key = {c.get(mk): c for c in current}
    for item in dicts:
        k = item[mk]
        if item.get("$patch") == "delete":
            by_key.pop(k, None)
            continue
        by_key[k] = strategic_merge_patch(by_key.get(k), item)
    keys = list(by_key)
    if order:
        wanted = [o.get(mk) for o in order if isinstance(o, dict)]
        keys = [k for k in wanted if k in by_key] + [k for k in keys if k not in wanted]
    return [by_key[k] for k in keys]


def json_patch(target: Any, ops: Any) -> Any:
    """RFC 6902 operations (add, remove, replace, move, copy, test)."""
    if not isinstance(ops, list):
        raise bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request(f"invalid json patch operation: {op!r}")
        kind = op["op"]
        if kind == "add":
            doc = _pointer_set(doc, op["path"], copy.deepcopy(op.get("value")), insert=True)
        elif kind == "remove":
            doc, _ = _pointer_pop(doc, op["path"])
        elif kind == "replace":
            _pointer_get(doc, op["path"])
            doc = _pointer_set(doc, op["path"], copy.deepcopy(op.get("value")), insert=False)
        elif kind in ("move", "copy"):
            if kind == "move":
                doc, value = _pointer_pop(doc, op["from"])
            else:
                value = copy.deepcopy(_pointer_get(doc, op["from"]))
            doc = _pointer_set(doc, op["path"], value, insert=True)
        elif kind == "test":
            if _pointer_get(doc, op["path"]) != op.get("value"):
                raise ApiError(422, f"json patch test operation failed at {op['path']}", "Invalid")
        else:
            raise bad_request(f"unknown json patch operation {kind!r}")
    return doc


def _tokens(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise bad_request(f"invalid json pointer {pointer!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _step(node: Any, token: str) -> Any:
    try:
        if isinstance(node, list):
            return node[int(token)]
        return node[token]
    except (KeyError, IndexError, ValueError, TypeError):
        raise ApiError(422, f"json patch path not found: {token!r}", "Invalid") from None


def _pointer_get(doc: Any, pointer: str) -> Any:
    node = doc
    for t in _tokens(pointer):
        node = _step(node, t)
    return node


def _pointer_set(doc: Any, pointer: str, value: Any, *, insert: bool) -> Any:
    tokens = _tokens(pointer)
    if not tokens:
        return value
    parent = doc
    for t in tokens[:-1]:
        parent = _step(parent, t)
    last = tokens[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if insert:
            parent.insert(index, value)
        else:
            parent[index] = value
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise ApiError(422, f"json patch cannot set {pointer!r}", "Invalid")
    return doc


def _pointer_pop(doc: Any, pointer: str) -> tuple[Any, Any]:
    tokens = _tokens(pointer)
    if not tokens:
        raise bad_request("cannot remove the whole document")
    parent = doc
    for t in tokens[:-1]:
        parent = _step(parent, t)
    last = tokens[-1]
    value = _step(parent, last)
    if isinstance(parent, list):
        del parent[int(last)]
    else:
        del parent[last]
    return doc, value
