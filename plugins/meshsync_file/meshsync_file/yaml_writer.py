"""A fast block-style YAML serializer for JSON-like data (what Kubernetes objects are).

PyYAML's C emitter manages about 2,000 Kubernetes objects/s, which would make YAML the
bottleneck of a snapshot. This module handles only dicts, lists, str, int, float, bool and
None, which lets it skip PyYAML's representer/serializer/emitter pipeline entirely:

* Structure is written directly as lines (``key: value``, ``- item``), PyYAML/kubectl style
  (sequences inside mappings are not indented).
* Every distinct single-line string is rendered once and cached (keys and values repeat a lot
  across objects: ``name``, ``IfNotPresent``, ``TCP``...).
* A string is written plain only if it is unambiguous for every YAML 1.1 and 1.2 reader
  (PyYAML, Go's yaml.v2/v3 used by kubectl): it starts with an ASCII letter, contains only
  ``[A-Za-z0-9_./@+=:-]``, does not end with ``:`` and is not a bool/null word in any case
  (``yes``, ``On``, ``y``, ``NULL``...). Everything else is double-quoted, with escapes for
  every character a YAML reader would not take raw or would fold (control characters, NEL,
  line/paragraph separators, BOM, surrogates, U+FFFE/U+FFFF).
* Multi-line strings made only of printable characters and without trailing blanks on a line
  become literal block scalars (``|``, ``|-``, ``|+``, with an indentation indicator when the
  text starts with a space or a line break), so config files stay readable.

The result is standard YAML that ``yaml.safe_load`` reads back identical to the input; the
tests check that on many tricky strings.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "IMPLEMENTATION",
    "dump",
    "dump_document",
    "python_dump_document",
    "render_key",
    "render_scalar",
    "transcode",
]

#: Strings that may be written without quotes (see the module docstring).
_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_./@+=:-]*")
#: Words some YAML reader resolves to a bool or null (YAML 1.1 plus Go yaml.v2's y/n).
_RESERVED = frozenset({"y", "n", "yes", "no", "true", "false", "on", "off", "null", "~"})
#: Characters that must be escaped inside a double-quoted scalar (besides ``\\`` and ``"``).
_ESCAPE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]",
)
#: Characters that rule out a literal block scalar (everything _ESCAPE has except \n and \t).
_NOT_LITERAL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]"
)
_NAMED_ESCAPES = {
    "\x00": "\\0",
    "\x07": "\\a",
    "\x08": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\x0b": "\\v",
    "\x0c": "\\f",
    "\r": "\\r",
    "\x1b": "\\e",
}
#: Longest rendered key written as a simple ``key: value``; readers cap implicit keys at 1024.
_MAX_SIMPLE_KEY = 1000
#: Cached renderings are dropped when a cache grows beyond this many entries (bounds memory to
#: a few MB; common keys and values are back in the cache after a few objects).
_CACHE_LIMIT = 50_000
#: Longer strings are rendered every time: they are rarely repeated and would bloat the cache.
_CACHE_MAX_LEN = 256

_value_cache: dict[str, str] = {}
_key_cache: dict[str, str] = {}


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED_ESCAPES.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02X}" if code < 0x100 else f"\\u{code:04X}"


def _double_quoted(text: str) -> str:
    if "\\" in text or '"' in text:
        text = text.replace("\\", "\\\\").replace('"', '\\"')
    if _ESCAPE.search(text) is not None:
        text = _ESCAPE.sub(_escape_char, text)
    return f'"{text}"'


def _render_str(text: str) -> str:
    """The one-line rendering of a string (plain or double-quoted)."""
    if _PLAIN.fullmatch(text) and text[-1] != ":" and text.lower() not in _RESERVED:
        return text
    return _double_quoted(text)


def _render_float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    # YAML 1.1 (PyYAML) needs a dot in a float and a sign in its exponent: 1e+16 -> 1.0e+16.
    if "." not in text and "e" in text:
        text = text.replace("e", ".0e", 1)
    return text


def render_scalar(value: Any) -> str:
    """One scalar as YAML text on one line (strings never become block scalars here)."""
    if isinstance(value, str):
        return _render_str(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return _render_float(float(value))
    raise TypeError(f"cannot write {type(value).__name__} as YAML: {value!r}")


def render_key(key: Any) -> str:
    """``key:`` as written before a value; long keys use the explicit ``? key`` form."""
    text = render_scalar(key)
    if len(text) > _MAX_SIMPLE_KEY:
        return f"? {text}\n:"
    return f"{text}:"


def _literal_ok(text: str) -> bool:
    """Whether a multi-line string can be a literal block scalar and read back identical.

    Not with characters that need escapes, nor blanks at the end of a line (kept by readers but
    invisible and refused by PyYAML's own emitter), nor a tab starting a line (Go's yaml.v2,
    used by kubectl, takes it for indentation).
    """
    if " \n" in text or "\t\n" in text or text[-1] in " \t":
        return False
    if "\t" in text and (text[0] == "\t" or "\n\t" in text):
        return False
    return _NOT_LITERAL.search(text) is None


def _block_scalar(text: str, indent: str, out: list[str]) -> None:
    """Append `` |...`` and the lines of ``text`` (a multi-line, literal-safe string)."""
    if text.endswith("\n"):
        chomp = "+" if text.endswith("\n\n") or text == "\n" else ""
        body = text[:-1]
    else:
        chomp = "-"
        body = text
    header = " |2" if text[0] in " \n" else " |"
    out.append(header + chomp + "\n")
    inner = indent + "  "
    for line in body.split("\n"):
        out.append(inner + line + "\n" if line else "\n")


def _block_text(text: str, indent_len: int) -> str:
    """What :func:`_block_scalar` appends, as one string (for the C writer)."""
    out: list[str] = []
    _block_scalar(text, " " * indent_len, out)
    return "".join(out)


def _normalize(value: Any) -> Any:
    """An exact dict/list/str/int/float for subclasses and tuples (the rare, slow path)."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    raise TypeError(f"cannot write {type(value).__name__} as YAML: {value!r}")


_SCALAR_TYPES = (type(None), bool, int, float)


def _writer() -> tuple[Callable[..., Any], ...]:
    """Build the recursive map/sequence writers with their caches bound as fast locals."""
    value_cache = _value_cache
    key_cache = _key_cache
    render_str = _render_str
    scalar_types = _SCALAR_TYPES

    def key_text(key: Any, indent: str) -> str:
        text = render_key(key)
        if text[0] == "?":  # explicit key: the ":" line is indented like the key
            return text.replace("\n:", "\n" + indent + ":")
        if type(key) is str:
            if len(key_cache) >= _CACHE_LIMIT:
                key_cache.clear()
            key_cache[key] = text
        return text

    def str_text(value: str) -> str | None:
        """The cached one-line form, or None for a string that becomes a block scalar."""
        if "\n" in value and _literal_ok(value):
            return None
        text = render_str(value)
        if len(value) <= _CACHE_MAX_LEN:
            if len(value_cache) >= _CACHE_LIMIT:
                value_cache.clear()
            value_cache[value] = text
        return text

    def write_map(mapping: dict[Any, Any], indent: str, out: list[str], first: str) -> None:
        """Write a non-empty mapping; the first key is prefixed by ``first``, the rest by indent."""
        append = out.append
        kget = key_cache.get
        vget = value_cache.get
        prefix = first
        child = ""
        for key, value in mapping.items():
            kt = kget(key)  # only str keys are cached, so other keys miss
            if kt is None:
                kt = key_text(key, indent)
            vtype = type(value)
            if vtype is str:
                text = vget(value)
                if text is None:
                    text = str_text(value)
                if text is not None:
                    append(f"{prefix}{kt} {text}\n")
                else:
                    append(prefix + kt)
                    _block_scalar(value, indent, out)
            elif vtype is dict:
                if value:
                    append(f"{prefix}{kt}\n")
                    if not child:
                        child = indent + "  "
                    write_map(value, child, out, child)
                else:
                    append(f"{prefix}{kt} {{}}\n")
            elif vtype is list:
                if value:
                    append(f"{prefix}{kt}\n")
                    if kt[0] == "?":
                        write_seq(value, indent + "  ", out, None)
                    else:
                        write_seq(value, indent, out, None)
                else:
                    append(f"{prefix}{kt} []\n")
            elif vtype is int:
                append(f"{prefix}{kt} {value}\n")
            elif vtype in scalar_types:
                append(f"{prefix}{kt} {render_scalar(value)}\n")
            else:
                write_map({key: _normalize(value)}, indent, out, prefix)
            prefix = indent

    def write_seq(items: list[Any], indent: str, out: list[str], first: str | None) -> None:
        """Write a non-empty sequence at ``indent``; ``first`` replaces the first item's indent."""
        append = out.append
        vget = value_cache.get
        child = indent + "  "
        lead = indent if first is None else first
        for item in items:
            itype = type(item)
            if itype is str:
                text = vget(item)
                if text is None:
                    text = str_text(item)
                if text is not None:
                    append(f"{lead}- {text}\n")
                else:
                    append(lead + "-")
                    _block_scalar(item, indent, out)
            elif itype is dict:
                if item:
                    append(lead + "- ")
                    write_map(item, child, out, "")
                else:
                    append(lead + "- {}\n")
            elif itype is list:
                if item:
                    append(lead + "- ")
                    write_seq(item, child, out, "")
                else:
                    append(lead + "- []\n")
            elif itype is int:
                append(f"{lead}- {item}\n")
            elif itype in scalar_types:
                append(f"{lead}- {render_scalar(item)}\n")
            else:
                write_seq([_normalize(item)], indent, out, lead)
            lead = indent

    return write_map, write_seq, key_text, str_text


_write_map, _write_seq, _key_text, _str_text = _writer()


def _load_c_writer() -> Callable[[dict[Any, Any]], str] | None:
    """The C version of the map writer, if it was built and not disabled.

    It shares this module's caches and calls back into it for every string it has not seen,
    so both versions write the same bytes (the tests compare them). Set
    ``MESHSYNC_YAML_PURE_PYTHON=1`` to use the pure-Python writer.
    """
    if os.environ.get("MESHSYNC_YAML_PURE_PYTHON", "").lower() in ("1", "true", "yes"):
        return None
    try:
        from meshsync_speedups import _yaml_writer
    except ImportError:  # not compiled (no C compiler at install time): the Python writer
        return None
    _yaml_writer.setup(
        _key_cache, _value_cache, _key_text, _str_text, _block_text, _normalize, render_scalar
    )
    return _yaml_writer.dump_map


_c_dump_map = _load_c_writer()
#: "c" when the compiled writer is in use, else "python" (reported by the benchmark).
IMPLEMENTATION = "c" if _c_dump_map is not None else "python"

#: ``transcode(raw, api_version, kind) -> bytes | None``: the YAML document of a Kubernetes
#: object's raw JSON, cleaned as :func:`meshsync_file.manifest.clean` does, written straight
#: from the JSON text without building the dict (the C writer only; None without it). Its
#: result is byte for byte ``dump_document(clean(decoded, resource)).encode()``; it returns
#: None for anything it does not handle the same (duplicate keys, lone surrogates, floats out
#: of range, deep nesting), and the caller takes that dict path instead.
transcode: Callable[[Any, str, str], bytes | None] | None = None
if _c_dump_map is not None:
    from meshsync_speedups import _yaml_writer

    transcode = _yaml_writer.transcode


def dump_document(obj: Any) -> str:
    """One YAML document (no ``---``), ending with a newline. Top level is usually a dict."""
    if type(obj) is dict and obj and _c_dump_map is not None:
        return _c_dump_map(obj)
    return python_dump_document(obj)


def python_dump_document(obj: Any) -> str:
    """:func:`dump_document` in pure Python: the fallback without the compiled writer, and the
    reference the C writer is tested against byte for byte."""
    if type(obj) is not dict and type(obj) is not list:
        obj = _normalize(obj)
    out: list[str] = []
    if type(obj) is dict:
        if not obj:
            return "{}\n"
        _write_map(obj, "", out, "")
    elif type(obj) is list:
        if not obj:
            return "[]\n"
        _write_seq(obj, "", out, None)
    elif type(obj) is str and "\n" in obj and _literal_ok(obj):
        _block_scalar(obj, "", out)
        out[0] = out[0][1:]  # no space before the "|" at the top level
    else:
        out.append(render_scalar(obj) + "\n")
    return "".join(out)


def dump(documents: Any) -> str:
    """Several documents as one YAML stream, each starting with ``---``."""
    return "".join("---\n" + dump_document(doc) for doc in documents)
