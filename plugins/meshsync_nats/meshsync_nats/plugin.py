"""Hook implementations of the nats plugin (entry point ``nats``): the sink and its options."""

from __future__ import annotations

import click

from meshsync_core import Sink, hookimpl
from meshsync_nats.connection import connection_options
from meshsync_nats.jetstream import stream_options
from meshsync_nats.sessions import session_options
from meshsync_nats.sink import NatsSink, sink_options


@hookimpl
def meshsync_sinks() -> list[type[Sink]]:
    return [NatsSink]


@hookimpl
def meshsync_commands(cli: click.Group) -> None:
    """``meshsync request``: Meshery's log, exec and session-list requests from a terminal."""
    from meshsync_nats.request_command import build_request_command

    cli.add_command(build_request_command())


@hookimpl
def meshsync_add_options() -> list[click.Option]:
    """Every NATS option, each declared in the module that reads it; each also has an
    environment variable (the flag wins over it)."""
    return [*connection_options(), *sink_options(), *stream_options(), *session_options()]
