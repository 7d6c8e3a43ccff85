"""Every hook a MeshSync plugin can implement, in one place.

A plugin is a module (or object) listed under the ``meshsync.plugins`` entry-point group whose
functions are decorated with :data:`hookimpl` and named like the specifications below. The
built-in Kubernetes, NATS and file plugins use exactly this mechanism.

Example::

    from meshsync_core import Sink, hookimpl

    class PrintSink(Sink):
        name = "print"
        async def deliver(self, events):
            for event in events:
                print(event.type, event.describe())

    @hookimpl
    def meshsync_sinks():
        return [PrintSink]
"""

from __future__ import annotations

import click
import pluggy

from meshsync_core.components import Sink, Source, Transform

PROJECT_NAME = "meshsync"
#: The entry-point group plugins register under.
ENTRY_POINT_GROUP = "meshsync.plugins"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def meshsync_add_options() -> list[click.Option]:
    """Command-line options this plugin adds to ``meshsync run``.

    Return ``click.Option`` objects. Their parameter name (``broker_url``) is also the key in a
    ``--config`` file and in the :class:`~meshsync_core.components.Options` every component gets.
    Give upstream spellings as extra flag names (``--output-file``, ``--outputFile``) and
    environment variables with ``envvar=``. Two plugins may not define the same name.
    """


@hookspec
def meshsync_sources() -> list[type[Source]]:
    """Source classes this plugin provides, selected with ``--source NAME``."""


@hookspec
def meshsync_transforms() -> list[type[Transform]]:
    """Transform classes this plugin provides; each decides with ``enabled(options)`` if it runs."""


@hookspec
def meshsync_sinks() -> list[type[Sink]]:
    """Sink classes this plugin provides, selected with ``--output NAME`` (repeatable)."""


@hookspec
def meshsync_commands(cli: click.Group) -> None:
    """Add subcommands to the ``meshsync`` command (for example ``meshsync demo``)."""
