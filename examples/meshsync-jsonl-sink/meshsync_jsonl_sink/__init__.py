"""An example MeshSync sink plugin: every event becomes one JSON line in a file.

Everything a sink plugin needs is here: a ``Sink`` subclass, the options it adds to
``meshsync run``, and two hook implementations that hand both to MeshSync.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import IO

import click

from meshsync_core import Event, Options, Sink, SinkContext, StartupError, hookimpl


class JsonLinesSink(Sink):
    """Appends ``{"type", "resource", "cluster_id", "object"}`` per event to ``--jsonl-path``."""

    name = "jsonl"
    description = "write every event as one JSON line to a file"

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        self.path = options.get("jsonl_path") or "meshsync-events.jsonl"
        self.file: IO[str] | None = None

    async def open(self, ctx: SinkContext) -> None:
        try:
            self.file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise StartupError(f"cannot open {self.path!r}: {exc.strerror}") from None

    async def deliver(self, events: Sequence[Event]) -> None:
        assert self.file is not None
        for event in events:
            record = {
                "type": event.type.value,
                "resource": event.resource.key,
                "cluster_id": event.cluster_id,
                "object": event.object,
            }
            self.file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.file.flush()

    async def close(self) -> None:
        if self.file is not None:
            self.file.close()


@hookimpl
def meshsync_sinks() -> list[type[Sink]]:
    return [JsonLinesSink]


@hookimpl
def meshsync_add_options() -> list[click.Option]:
    return [
        click.Option(
            ["--jsonl-path"],
            default="meshsync-events.jsonl",
            show_default=True,
            help="[jsonl] File the jsonl sink appends events to.",
        )
    ]
