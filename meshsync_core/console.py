"""The ``console`` sink: one line per event on standard output, for trying MeshSync out.

It ships with the core distribution but is loaded like any other plugin, through the
``meshsync.plugins`` entry point ``console``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click
import orjson

from meshsync_core.components import Options, Sink
from meshsync_core.events import Event
from meshsync_core.hookspecs import hookimpl


class ConsoleSink(Sink):
    """Prints ``ADDED     pods  default/web-1  (rv 123)`` per event, or JSON lines."""

    name = "console"
    aliases = ("stdout",)
    description = "print one line per event to standard output (text or JSON lines)"

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        self.json = options.get("console_format") == "json"
        self.stream = sys.stdout
        self.initial = 0  # objects printed before the initial sync completed
        self._synced = False

    async def deliver(self, events: Sequence[Event]) -> None:
        if not self._synced:
            self.initial += len(events)
        if self.json:
            lines = [
                orjson.dumps(
                    {
                        "type": event.type.value,
                        "resource": event.resource.key,
                        "cluster_id": event.cluster_id,
                        "object": event.object,
                    }
                ).decode()
                for event in events
            ]
        else:
            lines = [
                f"{event.type.value:<9} {event.resource.plural:<24} "
                f"{event.namespace + '/' if event.namespace else ''}{event.name}"
                f"  (rv {event.resource_version})"
                for event in events
            ]
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()

    async def on_synced(self) -> None:
        self._synced = True
        if not self.json:
            self.stream.write(
                f"--- initial sync complete: {self.initial} object(s); watching for changes ---\n"
            )
            self.stream.flush()


@hookimpl
def meshsync_sinks() -> list[type[Sink]]:
    return [ConsoleSink]


@hookimpl
def meshsync_add_options() -> list[click.Option]:
    return [
        click.Option(
            ["--console-format"],
            type=click.Choice(["text", "json"]),
            default="text",
            show_default=True,
            help="[console] Line format of the console sink.",
        )
    ]
