"""Per-object JSON out of list pages and watch lines, without decoding the objects.

A 500-Pod page is ~2 MB of JSON; decoding it into dicts costs ~40 µs per Pod, most of it for
fields nobody on the hot path reads (``managedFields`` alone is a third of a Pod). msgspec
validates the page and cuts it into one :class:`msgspec.Raw` slice per item at a tenth of that
cost, and reads from each slice only the four metadata fields the watcher tracks. The object
itself is decoded later, and only if a transform or sink asks for ``event.object``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import msgspec

Raw = msgspec.Raw


class _ListMeta(msgspec.Struct, gc=False):
    resourceVersion: str = ""
    continue_: str = msgspec.field(name="continue", default="")


class ListPage(msgspec.Struct):
    """One page of a List: its resourceVersion, continue token and raw items."""

    metadata: _ListMeta | None = None
    items: list[Raw] | None = None

    @property
    def resource_version(self) -> str:
        return self.metadata.resourceVersion if self.metadata is not None else ""

    @property
    def continue_token(self) -> str:
        return self.metadata.continue_ if self.metadata is not None else ""


class ObjectMeta(msgspec.Struct, gc=False):
    """The part of ``metadata`` the watcher tracks; every other field is skipped unread."""

    uid: str = ""
    name: str = ""
    namespace: str = ""
    resourceVersion: str = ""


class _Item(msgspec.Struct, gc=False):
    metadata: ObjectMeta | None = None


class WatchLine(msgspec.Struct):
    """One line of a watch stream: ``{"type": ..., "object": ...}``."""

    type: str
    object: Raw


_page_decoder = msgspec.json.Decoder(ListPage)
_item_decoder = msgspec.json.Decoder(_Item)
_watch_decoder = msgspec.json.Decoder(WatchLine)
_any_decoder = msgspec.json.Decoder()

#: Raised by the decoders below: the JSON is invalid or has the wrong shape.
DecodeError = msgspec.DecodeError


def decode_page(body: bytes) -> ListPage:
    """Split a List response; raises :data:`DecodeError` (a ValidationError for bad shapes)."""
    return _page_decoder.decode(body)


def decode_watch_line(line: bytes | bytearray) -> WatchLine:
    return _watch_decoder.decode(line)


def object_meta(raw: Any) -> ObjectMeta | None:
    """The tracked metadata of one item, or None when it is missing or has wrong types."""
    try:
        return _item_decoder.decode(raw).metadata
    except msgspec.ValidationError:
        return None


def python_identity(raw: Any) -> tuple[str, str, str, str] | None:
    """:func:`identity` in Python (msgspec): the fallback, and the reference the C reader is
    tested against."""
    meta = object_meta(raw)
    if meta is None or not meta.uid or not meta.name:
        return None
    return meta.uid, meta.name, meta.namespace, meta.resourceVersion


def _load_c_identity() -> Callable[[Any], tuple[str, str, str, str] | None] | None:
    """The compiled reader (``meshsync_speedups._object_meta``), if it was built and not
    disabled with ``MESHSYNC_OBJECT_META_PURE_PYTHON=1``."""
    if os.environ.get("MESHSYNC_OBJECT_META_PURE_PYTHON", "").lower() in ("1", "true", "yes"):
        return None
    try:
        from meshsync_speedups import _object_meta
    except ImportError:  # not compiled (no C compiler at install time): msgspec
        return None
    return _object_meta.identity


#: The C reader, or None; it returns None for whatever it leaves to :func:`python_identity`.
c_identity = _load_c_identity()
#: "c" when the compiled reader is in use, else "python" (reported by the benchmarks).
IMPLEMENTATION = "c" if c_identity is not None else "python"


def identity(raw: Any) -> tuple[str, str, str, str] | None:
    """``(uid, name, namespace, resourceVersion)`` of one item when uid and name are non-empty
    strings and the others strings or absent; None otherwise (the caller decodes the whole
    object to say what is wrong, or to accept ``namespace: null``)."""
    if c_identity is not None:
        # reads metadata only and stops there: about 4 -> 1 us for a Pod (docs/performance.md)
        ident = c_identity(raw)
        if ident is not None:
            return ident
    return python_identity(raw)


def load(raw: Any) -> Any:
    """Decode one item completely (big integers stay exact, unlike orjson)."""
    return _any_decoder.decode(raw)
