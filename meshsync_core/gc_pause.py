"""Pausing Python's cyclic garbage collector while JSON trees are built.

Decoded JSON is a tree: reference counting frees it as soon as nobody holds it, and the cyclic
collector can find nothing in it. But a Pod decodes into ~150 containers and a 500-object page
into ~75,000, so with the collector running it makes hundreds of passes per page and keeps
re-traversing every tree still in flight - which halves throughput. Sources and sinks that
build or read many decoded objects hold :func:`gc_paused` around that work; the collector
runs normally between those blocks.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Iterator

#: Longest stretch (s) that overlapping pauses may keep the collector from running.
MAX_GC_PAUSE = 1.0

_pauses = 0
_reenable = False
_paused_since = 0.0


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for a block (nestable, safe across tasks)."""
    global _pauses, _reenable, _paused_since
    if _pauses == 0:
        _reenable = gc.isenabled()
        _paused_since = time.monotonic()
        gc.disable()
    _pauses += 1
    try:
        yield
    finally:
        _pauses -= 1
        if _pauses == 0:
            if _reenable:
                gc.enable()
        elif _reenable and time.monotonic() - _paused_since > MAX_GC_PAUSE:
            # Overlapping pauses (several lists, a slow sink) must not starve the collector:
            # collect the young generations now and then, as it would have done by itself.
            gc.collect(1)
            _paused_since = time.monotonic()
