"""Hook implementations of the file plugin (entry point ``file``)."""

from __future__ import annotations

import click

from meshsync_core import Sink, hookimpl
from meshsync_file.sink import FileSink, file_options


@hookimpl
def meshsync_sinks() -> list[type[Sink]]:
    return [FileSink]


@hookimpl
def meshsync_add_options() -> list[click.Option]:
    return file_options()
