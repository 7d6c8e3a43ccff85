"""Every hook a MeshSync plugin can implement, in one place.

A plugin is a module (or object) listed under the ``meshsync.plugins`` entry-point group whose
functions are decorated with :data:`hookimpl` and named like the specifications below. The
built-in Kubernetes, NATS and file plugins use exactly this mechanism.

Every hook is a plain (not ``async``) function, called once per process at start-up, before the
command line is parsed, for every ``meshsync`` command. Implement only the hooks you need. A
plugin whose import fails, whose hook raises or returns the wrong type, or that implements a
hook not listed here (a typo) is reported as ``failed`` by ``meshsync plugins list`` and left
out; the other plugins still load.

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

    Return ``click.Option`` objects. Their parameter name (``--sqlite-path`` -> ``sqlite_path``)
    is also the key in a ``--config`` file (``sqlite-path: x`` or ``sqlite_path: x``) and in the
    :class:`~meshsync_core.components.Options` every component gets. Give upstream spellings as
    extra flag names (``--output-file``, ``--outputFile``) and environment variables with
    ``envvar=``. Start the help text with ``[your-plugin]``. Two plugins may not define the same
    name: the second one's option is ignored with a warning.

    The option is parsed whether or not your component is selected, so give it a default and
    validate the value in your component's ``__init__`` (raise
    :class:`~meshsync_core.errors.ConfigError`). Values: ``--config`` < environment variable <
    flag. Example::

        @hookimpl
        def meshsync_add_options():
            return [click.Option(["--sqlite-path"], default="meshsync.db", show_default=True,
                                 envvar="MESHSYNC_SQLITE_PATH", help="[sqlite] Database file.")]
    """


@hookspec
def meshsync_sources() -> list[type[Source]]:
    """Source classes this plugin provides, selected with ``--source NAME`` (repeatable).

    Return the classes, not instances: the engine instantiates the selected ones with the run's
    :class:`~meshsync_core.components.Options`. Each needs a unique ``name``.
    """


@hookspec
def meshsync_transforms() -> list[type[Transform]]:
    """Transform classes this plugin provides.

    Transforms are not selected by name: every installed transform whose
    ``enabled(options)`` returns True runs, in ascending ``order``.
    """


@hookspec
def meshsync_sinks() -> list[type[Sink]]:
    """Sink classes this plugin provides, selected with ``--output NAME`` (repeatable).

    Return the classes, not instances. Each needs a unique ``name``; ``aliases`` adds more names
    (``broker`` for ``nats``). Naming one sink twice (by name and alias) runs it once.
    """


@hookspec
def meshsync_commands(cli: click.Group) -> None:
    """Add subcommands to the ``meshsync`` command (for example ``meshsync demo``).

    Called with the ``meshsync`` click group after ``run`` and ``plugins`` are added; call
    ``cli.add_command(...)``. The implementation's parameter must be named ``cli``. Settings
    from a ``--config`` file are applied to ``meshsync run`` only, not to added commands.
    """
