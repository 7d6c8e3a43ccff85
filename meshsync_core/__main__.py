"""``python -m meshsync_core`` runs the ``meshsync`` command."""

from meshsync_core.cli import entry

entry()
