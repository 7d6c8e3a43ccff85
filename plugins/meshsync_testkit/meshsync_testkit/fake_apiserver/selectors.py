"""Label and field selectors, parsed the way kube-apiserver parses them.

A selector is parsed once per request into a list of small predicate tuples and then applied to
every candidate object of a list or watch. Syntax the real server rejects raises a 400
BadRequest :class:`ApiError` so clients see the same failure they would against a cluster.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from .errors import bad_request

# Label keys: optional DNS-subdomain prefix, then a name; values: up to 63 chars of [-._a-zA-Z0-9].
_KEY_RE = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_VALUE_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_SET_RE = re.compile(r"^\s*(\S+)\s+(in|notin)\s*\((.*)\)\s*$")
_CMP_RE = re.compile(r"^\s*([^!=<>\s]+)\s*(==|=|!=|<|>)\s*(.*?)\s*$")
_FIELD_PATH_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)*$")

LabelRequirement = tuple[str, str, Any]  # (key, operator, value or frozenset or int)


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside ``in (...)`` parentheses."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise bad_request(f"unable to parse requirement: unexpected ')' in {text!r}")
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise bad_request(f"unable to parse requirement: unclosed '(' in {text!r}")
    parts.append(text[start:])
    return parts


def _check_key(key: str) -> str:
    if not _KEY_RE.match(key) or len(key.rpartition("/")[2]) > 63:
        raise bad_request(f"unable to parse requirement: invalid label key {key!r}")
    return key


def _check_value(value: str) -> str:
    if not _VALUE_RE.match(value):
        raise bad_request(f"unable to parse requirement: invalid label value: {value!r}")
    return value


def parse_label_selector(text: str | None) -> list[LabelRequirement]:
    """Parse ``a=b,c!=d,e in (x,y),!f,g`` into requirements ANDed together."""
    if not text or not text.strip():
        return []
    reqs: list[LabelRequirement] = []
    for raw in _split_top_level(text):
        part = raw.strip()
        if not part:
            raise bad_request(f"unable to parse requirement: empty requirement in {text!r}")
        if m := _SET_RE.match(part):
            key, op, values = m.groups()
            vals = frozenset(_check_value(v.strip()) for v in values.split(",") if v.strip())
            if not vals:
                raise bad_request(f"unable to parse requirement: {op} needs values in {part!r}")
            reqs.append((_check_key(key), op, vals))
        elif part.startswith("!"):
            reqs.append((_check_key(part[1:].strip()), "!", None))
        elif m := _CMP_RE.match(part):
            key, op, value = m.groups()
            _check_key(key)
            if op in ("<", ">"):
                try:
                    reqs.append((key, op, int(value)))
                except ValueError:
                    raise bad_request(
                        f"unable to parse requirement: {op} needs an integer in {part!r}"
                    ) from None
            else:
                reqs.append((key, "!=" if op == "!=" else "=", _check_value(value)))
        elif " " not in part and not any(c in part for c in "=!()<>"):
            reqs.append((_check_key(part), "exists", None))
        else:
            raise bad_request(f"unable to parse requirement: found {part!r}, expected a selector")
    return reqs


def labels_match(reqs: list[LabelRequirement], labels: Mapping[str, str] | None) -> bool:
    labels = labels or {}
    for key, op, value in reqs:
        present = key in labels
        if op == "=":
            if labels.get(key) != value:
                return False
        elif op == "!=":
            if present and labels[key] == value:
                return False
        elif op == "in":
            if labels.get(key) not in value:
                return False
        elif op == "notin":
            if present and labels[key] in value:
                return False
        elif op == "exists":
            if not present:
                return False
        elif op == "!":
            if present:
                return False
        else:  # "<" / ">"
            try:
                n = int(labels[key])
            except (KeyError, ValueError):
                return False
            if (op == "<" and not n < value) or (op == ">" and not n > value):
                return False
    return True


FieldRequirement = tuple[tuple[str, ...], bool, str]  # (path, must_equal, value)


def parse_field_selector(text: str | None) -> list[FieldRequirement]:
    """Parse ``metadata.name=x,status.phase!=Running`` (``=``, ``==``, ``!=`` on dotted paths)."""
    if not text or not text.strip():
        return []
    reqs: list[FieldRequirement] = []
    for raw in text.split(","):
        part = raw.strip()
        for op in ("!=", "==", "="):
            key, sep, value = part.partition(op)
            if sep:
                break
        else:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        key = key.strip()
        if not _FIELD_PATH_RE.match(key):
            raise bad_request(
                f'"{key}" is not a known field selector: only "metadata.name", '
                '"metadata.namespace" and simple dotted paths'
            )
        reqs.append((tuple(key.split(".")), op != "!=", value.strip()))
    return reqs


def _field_value(obj: Mapping[str, Any], path: tuple[str, ...]) -> str:
    cur: Any = obj
    for step in path:
        if not isinstance(cur, Mapping):
            return ""
        cur = cur.get(step)
        if cur is None:
            return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return cur if isinstance(cur, str) else str(cur)


def fields_match(reqs: list[FieldRequirement], obj: Mapping[str, Any]) -> bool:
    return all((_field_value(obj, path) == value) == equal for path, equal, value in reqs)


def simple_field_fast_path(
    reqs: list[FieldRequirement],
) -> Callable[[str, str], bool] | None:
    """A predicate on (namespace, name) when the selector only uses those two fields.

    Lets lists and watches filtered by ``metadata.name`` (kubectl delete/wait) skip decoding.
    """
    if not all(path in (("metadata", "name"), ("metadata", "namespace")) for path, _, _ in reqs):
        return None

    def match(namespace: str, name: str) -> bool:
        for path, equal, value in reqs:
            actual = name if path[1] == "name" else namespace
            if (actual == value) != equal:
                return False
        return True

    return match
