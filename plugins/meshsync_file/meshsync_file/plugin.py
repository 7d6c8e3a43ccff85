"""Hook implementations of the file plugin (entry point ``file``)."""

from __future__ import annotations

from meshsync_core import Sink, hookimpl


@hookimpl
def meshsync_sinks() -> list[type[Sink]]:
    return []
