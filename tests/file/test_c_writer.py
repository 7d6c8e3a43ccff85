"""The compiled layout engine writes the same bytes as the pure-Python writer."""

from __future__ import annotations

import random

import pytest
from meshsync_file import yaml_writer
from meshsync_file.yaml_writer import dump_document, python_dump_document

from .k8s_objects import build_cluster
from .test_yaml_writer import STRINGS, random_value

pytestmark = pytest.mark.skipif(
    yaml_writer._c_dump_map is None, reason="the C writer is not built (pure-Python install)"
)


def test_c_writer_writes_the_same_bytes_as_python() -> None:
    """It is only a faster layout engine: the same output, byte for byte."""
    assert yaml_writer.IMPLEMENTATION == "c"
    rng = random.Random(99)
    documents: list[object] = [obj for _, obj in build_cluster()]
    documents += [{"v": s, s: [s, {"k": s}], "n": {s: {}}} for s in STRINGS]
    documents += [{"r": random_value(rng, 7), "s": random_value(rng, 4)} for _ in range(2000)]
    for doc in documents:
        assert dump_document(doc) == python_dump_document(doc), doc


def test_c_writer_errors_like_python() -> None:
    with pytest.raises(TypeError, match="cannot write object"):
        dump_document({"a": [1, {"b": object()}]})
    deep: dict[str, object] = {}
    node = deep
    for _ in range(100_000):
        node["d"] = {}
        node = node["d"]  # type: ignore[assignment]
    with pytest.raises(RecursionError):
        dump_document(deep)
