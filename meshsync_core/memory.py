"""Process-wide memory housekeeping, done by the core so that every plugin benefits and none
has to reach for process-wide switches itself."""

from __future__ import annotations

import contextlib
import ctypes
import gc


def release_free_memory() -> None:
    """Hand memory freed after the initial sync back to the OS (glibc only; else a no-op).

    The initial sync reads every list page once (and sinks may decode every object); glibc
    keeps the freed heap for reuse, which would leave RSS well above what the sources retain.
    The engine calls it once, a second after every source has finished its initial sync.
    """
    gc.collect()
    # What survives the initial sync lives for the whole run: keep later full collections from
    # scanning it again and again (they showed up as 100 ms+ pauses in the change stream).
    gc.freeze()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)
