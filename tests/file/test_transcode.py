"""The JSON-to-YAML fast path writes the same bytes as the dict path, or declines.

``yaml_writer.transcode`` writes a manifest straight from an object's raw JSON. The file sink
trusts it only because, for every input it accepts, the result is byte for byte what decoding,
``manifest.clean`` and ``dump_document`` give; these tests compare both on Kubernetes objects,
tricky strings, random documents, and list-page slices as the source hands them over.
"""

from __future__ import annotations

import contextlib
import functools
import json
import random
from pathlib import Path
from typing import Any

import msgspec
import pytest
from meshsync_file import manifest, yaml_writer
from meshsync_file import sink as sink_module
from meshsync_file.yaml_writer import dump_document
from meshsync_testkit.seed import bulk_objects

from meshsync_core import Event, EventType, Resource

from .conftest import run_file_sink
from .k8s_objects import build_cluster
from .test_yaml_writer import STRINGS, random_value

pytestmark = pytest.mark.skipif(
    yaml_writer.transcode is None, reason="the C writer is not built (pure-Python install)"
)

POD = Resource(group="", version="v1", plural="pods", kind="Pod")
DEPLOYMENT = Resource(group="apps", version="v1", plural="deployments", kind="Deployment")


def dict_path(raw: bytes, resource: Resource) -> bytes:
    """What the sink writes from the decoded object: the k8s source's decode (list items get
    apiVersion and kind), ``manifest.clean``, ``dump_document``."""
    return dump_document(manifest.clean(dict_path_object(raw, resource), resource)).encode()


def fast_path(raw: Any, resource: Resource = POD) -> bytes | None:
    assert yaml_writer.transcode is not None
    return yaml_writer.transcode(raw, resource.api_version, resource.kind)


def encodings(obj: Any) -> list[bytes]:
    """The object as JSON several ways: escaped or raw UTF-8, compact or spaced."""
    out = []
    for ensure_ascii in (True, False):
        for separators in ((",", ":"), (", ", ": ")):
            with contextlib.suppress(UnicodeEncodeError):  # a lone surrogate has no UTF-8
                text = json.dumps(obj, ensure_ascii=ensure_ascii, separators=separators)
                out.append(text.encode())
    return out


def assert_same_or_declined(raw: bytes, resource: Resource = POD) -> bool:
    """True when the fast path took it (and wrote the dict path's bytes)."""
    fast = fast_path(raw, resource)
    if fast is None:
        return False
    assert fast == dict_path(raw, resource), raw[:400]
    return True


def long_strings(rng: random.Random, count: int) -> list[str]:
    """Multi-line and long one-line texts (> the 256-character cache limit) of tricky parts."""
    out = []
    # (lone surrogates are declined: their own test says so)
    encodable = [text for text in STRINGS if not any("\ud800" <= c <= "\udfff" for c in text)]
    for _ in range(count):
        parts = [rng.choice(encodable) for _ in range(rng.randint(20, 60))]
        joiner = rng.choice(["\n", "", " ", "\n\n", "\t"])
        out.append(joiner.join(parts))
    out += ["x" * 300, "line\n" * 100, " lead\n" * 80, "a\n" * 200 + "\n", "\n" * 300]
    out += ["tail \n" * 60, "\tx\n" * 90, "ok\n\tindent\n" * 40, "\x7f\n" * 200, 'q"\\\n' * 99]
    return out


def test_kubernetes_objects_take_the_fast_path_and_match() -> None:
    objects = [obj for _, obj in build_cluster()] + list(bulk_objects(200))
    for obj in objects:
        listed = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
        for raw in encodings(obj) + encodings(listed):
            assert assert_same_or_declined(raw), raw[:200]


def test_tricky_strings_as_values_keys_and_items() -> None:
    taken = 0
    for text in STRINGS:
        doc = {
            "metadata": {"name": text, "managedFields": [{"m": text}], "labels": {text: text}},
            "v": text,
            text: [text, {"k": text}, [text]],
            "n": {text: {}},
        }
        for raw in encodings(doc):
            taken += assert_same_or_declined(raw)
    assert taken > len(STRINGS)  # most of them are not declined


def test_escaped_surrogate_pairs_are_taken() -> None:
    """JSON's spelling of a character beyond the BMP (\\ud83d\\ude00, as json.dumps writes
    it) is decoded in C, not handed back, and written as the dict path writes it."""
    raw = b'{"metadata":{"name":"a\\ud83d\\ude00","labels":{"\\uD83D\\uDE00":"b"}},"spec":{}}'
    assert assert_same_or_declined(raw)


def test_long_and_multi_line_strings() -> None:
    rng = random.Random(7)
    for text in long_strings(rng, 300):
        doc = {"data": {"text": text, "k" * 240 + text[:20]: [text]}, "spec": {"x": [text, text]}}
        for raw in encodings(doc):
            assert assert_same_or_declined(raw)


def test_long_keys_choose_the_same_form() -> None:
    """Keys up to the explicit ``? key`` form's limit, with escapes that lengthen them."""
    for length in (200, 249, 250, 260, 333, 999, 1000, 1001, 1200):
        for unit in ("k", "\x01", '"', "é"):
            key = (unit * length)[:length]
            for raw in encodings({"data": {key: "v", "list": {key: [1, {key: []}]}}}):
                assert assert_same_or_declined(raw)


def test_random_documents() -> None:
    rng = random.Random(20261202)
    taken = 0
    for _ in range(2000):
        doc = {"metadata": {"name": "x"}, "r": random_value(rng, 7), "s": random_value(rng, 4)}
        for raw in encodings(doc):
            if b"Infinity" in raw or b"NaN" in raw:
                continue  # not JSON: no API server sends it
            taken += assert_same_or_declined(raw)
    assert taken > 2000


@pytest.mark.parametrize(
    "obj",
    [
        {},
        {"metadata": {}},
        {"metadata": {"managedFields": []}},
        {"metadata": {"managedFields": [], "name": "a"}, "spec": {}},
        {"apiVersion": "", "kind": "", "metadata": {"name": "a"}},
        {"apiVersion": None, "kind": None},
        {"kind": "Thing"},
        {"kind": "Deployment", "apiVersion": "apps/v1", "z": 1, "metadata": {"name": "b"}},
        {"spec": {"a": -0, "b": 0, "c": -12, "d": 10**30, "e": 1.5, "f": -0.0, "g": 1e300}},
        {"spec": {"a": 1e-400, "b": 2.5e-308, "c": 123456789.123456789, "d": [1e16, 1e22]}},
        {"spec": {"t": True, "f": False, "n": None, "l": [True, None, [], {}, [[]], [{}]]}},
    ],
)
def test_edge_shapes(obj: dict[str, Any]) -> None:
    for raw in encodings(obj):
        assert assert_same_or_declined(raw, DEPLOYMENT)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"metadata": {"name": "a", "name": "b"}}',  # duplicate keys: last value, first place
        b'{"a": 1, "b": 2, "a": 3}',
        b'{"data": {' + b", ".join(b'"k%d": 1' % i for i in range(40)) + b', "k7": 2}}',
        b'{"kind": "Pod", "kind": "Pod"}',
        b'{"metadata": {"name": "\\ud800"}}',  # a lone surrogate
        b'{"metadata": {"name": "\\udc00x"}}',
        b'{"spec": {"big": 1e400}}',  # out of range
        b'{"metadata": "not a mapping"}',
        b'{"apiVersion": "v1"}',  # apiVersion without kind: the source's decode decides
        b'{"kind": 5}',
        b'{"a": ' + b"[" * 300 + b"]" * 300 + b"}",  # deeper than the fast path goes
        b'{"a": 1',  # not JSON
        b'{"a": 1} x',
        b'{"a": tru}',
        b'{"a": 01}',
        b'{"a": "\xff"}',  # not UTF-8
        b"[1, 2]",
    ],
)
def test_declines_what_it_does_not_write_the_same(raw: bytes) -> None:
    assert fast_path(raw) is None


def test_list_page_slices_as_the_source_hands_them_over() -> None:
    """msgspec.Raw slices of a list page, not bytes: read in place, same output."""
    objects = list(bulk_objects(50))
    listed = [{k: v for k, v in o.items() if k not in ("apiVersion", "kind")} for o in objects]
    page = json.dumps({"items": listed})
    items = msgspec.json.decode(page.encode(), type=dict[str, list[msgspec.Raw]])["items"]
    for raw in items:
        fast = fast_path(raw)
        assert fast is not None
        assert fast == dict_path(bytes(raw), POD)


async def test_the_sink_writes_the_same_files_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole file sink, fast path on and off, on the same events (list items and watch
    objects, additions and deletions): identical snapshot and extended log."""
    configmaps = Resource(group="", version="v1", plural="configmaps", kind="ConfigMap")
    objects = list(bulk_objects(300))

    def events() -> list[Event]:
        out = []
        for index, seeded in enumerate(objects):
            # (the fake API server gives uids and versions; this test plays its part)
            meta = {**seeded["metadata"], "uid": f"uid-{index}", "resourceVersion": f"{index + 1}"}
            obj = {**seeded, "metadata": meta}
            resource = POD if obj["kind"] == "Pod" else configmaps
            listed = index % 2 == 0  # list items carry no apiVersion/kind; watch objects do
            body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
            raw = json.dumps(body if listed else obj).encode()
            ident = (meta["uid"], meta["name"], meta["namespace"], meta["resourceVersion"])
            etype = EventType.DELETED if index % 7 == 3 else EventType.ADDED
            decode = functools.partial(counted_decode, resource=resource)
            out.append(Event(etype, None, resource, "k8s", "c1", raw=raw, decode=decode,
                             identity=ident))  # fmt: skip
        return out

    async def write(directory: Path) -> tuple[bytes, bytes]:
        directory.mkdir()
        path = directory / "snapshot.yaml"
        await run_file_sink(events(), path=path, once=True)
        return path.read_bytes(), (directory / "snapshot-extended.yaml").read_bytes()

    decoded: list[bytes] = []

    def counted_decode(raw: bytes, resource: Resource) -> dict[str, Any]:
        decoded.append(raw)
        return dict_path_object(raw, resource)

    fast = await write(tmp_path / "fast")
    assert not decoded  # no object was decoded into a dict
    monkeypatch.setattr(sink_module, "yaml_transcode", None)
    slow = await write(tmp_path / "dict")
    assert len(decoded) == len(objects)
    assert _without_times(fast[0]) == _without_times(slow[0])
    assert _without_times(fast[1]) == _without_times(slow[1])
    assert fast[0].count(b"\n---\n") > 200


def dict_path_object(raw: bytes, resource: Resource) -> dict[str, Any]:
    """The k8s source's decode of an object (see ResourceWatcher._decode_object)."""
    obj: dict[str, Any] = msgspec.json.decode(raw)
    if "kind" not in obj:
        obj["apiVersion"] = resource.api_version
        obj["kind"] = resource.kind
    return obj


def _without_times(text: bytes) -> bytes:
    """The file without the lines that say when it was written."""
    lines = text.split(b"\n")
    return b"\n".join(line for line in lines if not line.startswith((b"time: ", b"# MeshSync")))
