"""The compiled metadata reader gives msgspec's identity, or hands the object back.

``raw_json.identity`` reads ``(uid, name, namespace, resourceVersion)`` in C when it can; the
watcher relies on it only because, for every object it accepts, the answer is exactly that of
``raw_json.python_identity`` (msgspec decoding ``metadata`` into ``ObjectMeta``). These tests
compare both on the bulk objects, list-page slices, tricky strings in every tracked field,
escapes in the JSON around them, and list what it must leave to the Python path.
"""

from __future__ import annotations

import contextlib
import json

import pytest
from meshsync_k8s import raw_json
from meshsync_testkit.seed import bulk_objects

from tests.file.test_yaml_writer import STRINGS
from tests.nats.test_cwire import spellings

pytestmark = pytest.mark.skipif(
    raw_json.c_identity is None, reason="the C reader is not built (pure-Python install)"
)


def same_or_declined(raw: bytes) -> bool:
    """True when the C reader took it (and gave the Python path's identity)."""
    assert raw_json.c_identity is not None
    fast = raw_json.c_identity(raw)
    if fast is None:
        return False
    assert fast == raw_json.python_identity(raw), raw[:300]
    assert raw_json.identity(raw) == fast
    return True


def test_bulk_objects_and_page_slices_are_all_taken() -> None:
    objects = list(bulk_objects(300))
    for number, obj in enumerate(objects):  # as the API server stores them
        obj["metadata"].update(uid=f"0c9a-{number}", resourceVersion=str(1000 + number))
    for obj in objects:
        listed = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
        for raw in spellings(obj) + spellings(listed):
            assert same_or_declined(raw)
    page = raw_json.decode_page(json.dumps({"metadata": {}, "items": objects}).encode())
    assert page.items is not None
    assert all(same_or_declined(item) for item in page.items)  # msgspec.Raw slices


def test_tricky_strings_in_every_tracked_field_and_around_them() -> None:
    taken = 0
    for text in STRINGS:
        obj = {
            "apiVersion": text,
            "kind": text,
            "metadata": {
                "labels": {text: text},
                "managedFields": [{"x": text, "y": [text, 1.5e3, None, True, {}]}],
                "uid": text or "u",
                "name": text or "n",
                "namespace": text,
                "resourceVersion": text,
                "annotations": {"a": text + '\\"' + text},
            },
            "spec": {text: text},
        }
        for raw in spellings(obj):
            taken += same_or_declined(raw)
    assert taken > len(STRINGS)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"metadata": {"uid": "u", "name": "n", "namespace": "ns", "resourceVersion": "7"}}',
        b'{"metadata": {"name": "n", "uid": "u"}}',  # namespace and resourceVersion absent
        b'{"kind": "Pod", "apiVersion": "v1", "metadata": {"uid": "u", "name": "n"}}',
        b'{"status": {"x": "\\"}"}, "metadata": {"uid": "u", "name": "n\\\\"}}',
        b'{"metadata": {"finalizers": ["a\\\\\\"b"], "uid": "\\u00fc", "name": "\\ud83d\\ude00"}}',
        b'  {"metadata" : { "uid" : "u" , "name" : "n" } }  ',
    ],
)
def test_takes(raw: bytes) -> None:
    assert same_or_declined(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"[1]",
        b"{}",
        b'{"metadata": null}',
        b'{"metadata": []}',
        b'{"metadata": {}}',
        b'{"metadata": {"uid": "", "name": "n"}}',  # empty uid
        b'{"metadata": {"uid": "u"}}',  # no name
        b'{"metadata": {"uid": "u", "name": "n", "namespace": null}}',  # the slow path accepts it
        b'{"metadata": {"uid": 5, "name": "n"}}',
        b'{"metadata": {"uid": "u", "uid": "v", "name": "n"}}',  # msgspec keeps the last
        b'{"metadata": {"u\\u0069d": "u", "name": "n"}}',  # an escaped name spelling uid
        b'{"metadata": {"uid": "u", "name": "\\ud800"}}',  # a lone surrogate
        b'{"metadata": {"uid": "u", "name": "n"',  # cut short
    ],
)
def test_declines_what_the_python_path_decides(raw: bytes) -> None:
    assert raw_json.c_identity is not None
    assert raw_json.c_identity(raw) is None
    with contextlib.suppress(raw_json.DecodeError):
        assert raw_json.identity(raw) == raw_json.python_identity(raw)
