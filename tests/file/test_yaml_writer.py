"""The fast YAML writer: whatever it writes, ``yaml.safe_load`` must read back identical.

The strings come from a hand-written generator of tricky cases (reserved words in every case,
number- and date-looking text, YAML indicators, whitespace at the edges, line breaks of every
kind, control and non-printable characters...) combined with each other, used as values,
list items and keys, at several nesting depths.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
from pathlib import Path

import pytest
import yaml
from meshsync_file import yaml_writer
from meshsync_file.yaml_writer import dump, dump_document, render_scalar

from meshsync_core.tools import require_tool


@pytest.fixture(autouse=True, params=["c", "python"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run every test with the compiled writer (when built) and with the pure-Python one."""
    if request.param == "c" and yaml_writer._c_dump_map is None:
        pytest.skip("the C writer is not built (pure-Python install)")
    if request.param == "python":
        monkeypatch.setattr(yaml_writer, "_c_dump_map", None)
    return str(request.param)


WORDS = [
    "y",
    "Y",
    "n",
    "N",
    "yes",
    "Yes",
    "YES",
    "yEs",
    "no",
    "No",
    "NO",
    "true",
    "True",
    "TRUE",
    "false",
    "False",
    "FALSE",
    "on",
    "On",
    "ON",
    "off",
    "Off",
    "OFF",
    "null",
    "Null",
    "NULL",
    "~",
    "",
    ".inf",
    "-.inf",
    ".Inf",
    ".nan",
    ".NaN",
    "<<",
    "=",
    "-",
    "--",
    "---",
    "...",
]
NUMBERISH = [
    "0",
    "1",
    "-1",
    "+1",
    "007",
    "0755",
    "0o17",
    "0x1F",
    "0b101",
    "1_000",
    "1e3",
    "1E3",
    "1.5",
    "-1.5e-3",
    ".5",
    "5.",
    "1:20",
    "190:20:30",
    "1:20.5",
    "12345678901234567890",
    "2026-01-01",
    "2026-01-01T00:00:00Z",
    "2026-1-1 1:2:3",
    "1.2.3",
    "10.0.0.1",
    "0.0",
    "+.inf",
    "1e+16",
    "0o",
    "0x",
    "1__0",
]
INDICATORS = [
    "-a",
    "?a",
    ":a",
    "a:",
    "a: b",
    "a:b",
    "a #b",
    "a#b",
    "#a",
    "&a",
    "*a",
    "!a",
    "!!str",
    "|a",
    ">a",
    "'a",
    '"a',
    "%a",
    "@a",
    "`a",
    "{a}",
    "[a]",
    "a,b",
    "a, b",
    "{",
    "}",
    "[",
    "]",
    ",",
    "a\\b",
    "\\",
    '"',
    "'",
    "a'b",
    'a"b',
    "key: value # c",
    "http://x.y/z?q=1&r=2#f",
    "nginx:1.27",
    "app.kubernetes.io/name",
    "a=b",
    "a+b",
    "@",
    "a@b",
]
SPACES = [" ", "  ", " a", "a ", " a ", "a  b", "\t", "\ta", "a\t", "a\tb", "\u00a0", "a\u00a0"]
BREAKS = [
    "\n",
    "\n\n",
    "a\n",
    "a\nb",
    "a\n\nb",
    "\na",
    "\n\na",
    "a\n\n",
    "a\n\n\n",
    " a\nb",
    "  a\n b\n",
    "a \nb",
    "a\t\nb",
    "\ta\nb",
    "a\r\nb",
    "a\rb",
    "a\x85b",
    "a\u2028b",
    "a\u2029b",
    "- a\n- b\n",
    "a: b\nc: d\n",
    "# c\nx",
    "---\nx",
    "...\nx",
    "x\n---\n",
    "\n \n",
    " \n",
    "a\n \nb",
    "a\n  \n",
    "\t\n",
    "line\n\tindented\n",
    '{\n  "j": 1\n}\n',
]
SPECIAL = [
    "\x00",
    "\x01",
    "\x07",
    "\x08",
    "\x0b",
    "\x0c",
    "\x1b",
    "\x1f",
    "\x7f",
    "\x80",
    "\x9f",
    "\ufeff",
    "\ufeffa",
    "\ufffe",
    "\uffff",
    "\ud800",
    "a\udfffb",
    "é",
    "日本",
    "✓",
    "😀",
    "\U0010ffff",
    "\u00a0",
    "\u200b",
    "\u0085",
    "a\\nb",
]
ATOMS = WORDS + NUMBERISH + INDICATORS + SPACES + BREAKS + SPECIAL


def tricky_strings(seed: int = 7, count: int = 3000) -> list[str]:
    """Every atom, every atom with an edge added, and random concatenations of atoms."""
    rng = random.Random(seed)
    out = list(ATOMS)
    for atom in ATOMS:
        out += [f" {atom}", f"{atom} ", f"x{atom}", f"{atom}x", f"{atom}\n", f"\n{atom}"]
    while len(out) < count:
        out.append("".join(rng.choice(ATOMS) for _ in range(rng.randint(2, 5))))
    return out


STRINGS = tricky_strings()


def roundtrip(obj: object) -> object:
    text = dump_document(obj)
    return yaml.safe_load(text)


def same(a: object, b: object) -> bool:
    """Equality that also treats NaN as equal to NaN and checks exact types."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)  # type: ignore[index]
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[arg-type]
    return a == b


def test_every_tricky_string_as_value_item_and_key() -> None:
    assert len(STRINGS) >= 3000
    for text in STRINGS:
        for obj in (
            {"v": text},
            {"a": {"b": [text, {"c": text}]}},
            [text],
            [[text, text], {"k": [text]}],
            {text: "v"},
            {"m": {text: {text: [text]}}},
        ):
            back = roundtrip(obj)
            assert same(back, obj), (text, dump_document(obj))


def test_all_strings_in_one_stream_of_documents() -> None:
    documents = [{"i": i, "s": s, "l": [s, i], "m": {s: s}} for i, s in enumerate(STRINGS)]
    assert list(yaml.safe_load_all(dump(documents))) == documents


@pytest.mark.parametrize(
    "value",
    [
        0,
        1,
        -1,
        10**30,
        -(10**30),
        0.0,
        -0.0,
        1.5,
        -2.25,
        1e16,
        1e-7,
        1.0e300,
        5e-324,
        float("inf"),
        float("-inf"),
        float("nan"),
        123456789.123,
        True,
        False,
        None,
    ],
)
def test_scalars_keep_their_type_and_value(value: object) -> None:
    for obj in ({"v": value}, [value], {"n": {"v": [value]}}):
        assert same(roundtrip(obj), obj), dump_document(obj)


def test_negative_zero_keeps_its_sign() -> None:
    assert math.copysign(1.0, roundtrip({"z": -0.0})["z"]) == -1.0  # type: ignore[index]


def test_non_string_keys_and_empty_containers() -> None:
    obj = {1: "a", False: "b", None: "c", 2.5: "d", "e": {}, "f": [], "g": [{}, [], [[]]]}
    assert roundtrip(obj) == obj
    assert dump_document({}) == "{}\n"
    assert dump_document([]) == "[]\n"


def test_top_level_scalars() -> None:
    for value in ["x", "a\nb\n", " lead\n", "yes", 3, None, 1.5]:
        assert same(roundtrip(value), value), repr(value)


def test_long_keys_use_the_explicit_key_form() -> None:
    for key in ["k" * 1500, "y" * 999 + "\n", '"' * 600]:
        obj = {key: [1, {key: "v"}], "after": {key: {}}}
        assert roundtrip(obj) == obj


def test_deep_nesting_and_mixed_lists() -> None:
    obj: object = "leaf\nwith lines\n"
    for depth in range(40):
        obj = {f"k{depth}": obj, "list": [depth, "x"]} if depth % 2 else [{"d": depth}, obj]
    assert roundtrip(obj) == obj


def test_subclasses_and_tuples_are_written_as_plain_data() -> None:
    import enum
    from collections import OrderedDict

    class Color(str, enum.Enum):
        RED = "red"

    class Level(enum.IntEnum):
        HIGH = 3

    obj = {"t": (1, "a"), "o": OrderedDict(a=1), "e": Color.RED, "i": Level.HIGH}
    assert roundtrip(obj) == {"t": [1, "a"], "o": {"a": 1}, "e": "red", "i": 3}
    with pytest.raises(TypeError):
        dump_document({"x": object()})


def test_readable_output_for_common_kubernetes_values() -> None:
    text = dump_document(
        {
            "metadata": {"name": "web", "labels": {"app.kubernetes.io/name": "web"}},
            "spec": {"image": "nginx:1.27", "args": ["--port=80"], "n": 3, "on": "yes"},
            "data": {"conf": "a: 1\nb: 2\n"},
        }
    )
    assert text == (
        "metadata:\n"
        "  name: web\n"
        "  labels:\n"
        "    app.kubernetes.io/name: web\n"
        "spec:\n"
        "  image: nginx:1.27\n"
        "  args:\n"
        '  - "--port=80"\n'
        '  "n": 3\n'
        '  "on": "yes"\n'
        "data:\n"
        "  conf: |\n"
        "    a: 1\n"
        "    b: 2\n"
    )


def test_quoting_decisions() -> None:
    assert render_scalar("web") == "web"
    assert render_scalar("On") == '"On"'
    assert render_scalar("y") == '"y"'  # a bool for Go's yaml.v2, which kubectl uses
    assert render_scalar("2026-01-01T00:00:00Z") == '"2026-01-01T00:00:00Z"'
    assert render_scalar("a:") == '"a:"'
    assert render_scalar("tab\there") == '"tab\\there"'
    assert render_scalar("\x85") == '"\\x85"'
    assert render_scalar(1e16) == "1.0e+16"


def test_kubectl_reads_tricky_values_identically(tmp_path: Path) -> None:
    """Go's YAML reader (kubectl) must see the same strings as PyYAML, not only PyYAML."""
    valid = [
        s
        for s in STRINGS
        if not any(0xD800 <= ord(c) <= 0xDFFF for c in s)  # not encodable as UTF-8 JSON
    ]
    data = {f"k{i}": s for i, s in enumerate(valid)}
    labels = {"tricky-key": "yes", "n": "n"}
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "tricky", "labels": labels, "annotations": {"a": "On"}},
        "data": data,
    }
    by_key = {**manifest, "metadata": {"name": "tricky-keys"}}
    by_key["data"] = {s: f"v{i}" for i, s in enumerate(valid)}  # tricky strings as keys
    path = tmp_path / "tricky.yaml"
    path.write_text(
        "---\n" + dump_document(manifest) + "---\n" + dump_document(by_key), encoding="utf-8"
    )
    result = subprocess.run(
        [require_tool("kubectl"), "annotate", "--local", "-f", str(path), "x-", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    decoder, text, objects = json.JSONDecoder(), result.stdout.strip(), []
    while text:  # kubectl prints one JSON object per input document
        obj, end = decoder.raw_decode(text)
        objects.append(obj)
        text = text[end:].lstrip()
    first, second = objects
    assert first["metadata"]["labels"] == labels
    for expected, decoded in ((data, first["data"]), (by_key["data"], second["data"])):
        mismatched = {k: (v, decoded.get(k)) for k, v in expected.items() if decoded.get(k) != v}
        assert not mismatched, list(mismatched.items())[:5]
        assert len(decoded) == len(expected)


def random_value(rng: random.Random, depth: int) -> object:
    """A random JSON-like value: nested dicts/lists (also empty) with tricky scalars."""
    roll = rng.random()
    if depth > 0 and roll < 0.25:
        return {rng.choice(STRINGS): random_value(rng, depth - 1) for _ in range(rng.randint(0, 4))}
    if depth > 0 and roll < 0.45:
        return [random_value(rng, depth - 1) for _ in range(rng.randint(0, 4))]
    return rng.choice(
        [
            rng.choice(STRINGS),
            rng.choice(STRINGS),
            rng.randint(-(10**12), 10**12),
            rng.choice([0.5, -1e-9, 3e20, 0.1, float("inf")]),
            rng.choice([True, False, None]),
        ]
    )


def test_random_nested_structures_round_trip() -> None:
    rng = random.Random(20261125)
    documents = [random_value(rng, 6) for _ in range(1500)]
    for doc in documents:
        assert same(roundtrip(doc), doc), dump_document(doc)
    assert all(
        same(a, b) for a, b in zip(yaml.safe_load_all(dump(documents)), documents, strict=True)
    )
