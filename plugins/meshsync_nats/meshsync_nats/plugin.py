"""Hook implementations of the nats plugin (entry point ``nats``)."""

from __future__ import annotations

from meshsync_core import Sink, hookimpl


@hookimpl
def meshsync_sinks() -> list[type[Sink]]:
    return []
