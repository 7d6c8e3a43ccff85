"""Hook implementations of the test kit's MeshSync plugin (entry point ``testkit``)."""

from __future__ import annotations

import click

from meshsync_core import hookimpl


@hookimpl
def meshsync_commands(cli: click.Group) -> None:
    """``meshsync demo``: the ``run`` command against a built-in, changing fake cluster."""
    from meshsync_testkit.demo import build_demo_command  # imports the fake server only when used

    run = cli.commands.get("run")
    if isinstance(run, click.Command):
        cli.add_command(build_demo_command(run))
