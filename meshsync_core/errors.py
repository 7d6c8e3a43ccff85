"""Errors that end a run with a one-line message instead of a traceback."""

from __future__ import annotations


class MeshSyncError(Exception):
    """Base class: the message is shown to the user as it is, on one line."""

    exit_code = 1


class ConfigError(MeshSyncError):
    """Bad flags, config files or plugin options: the user has to change something (exit 2)."""

    exit_code = 2


class StartupError(MeshSyncError):
    """A source or sink could not start (unreachable API server, unwritable directory): exit 2."""

    exit_code = 2
