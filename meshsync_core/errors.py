"""Errors that end a run with a one-line message instead of a traceback."""

from __future__ import annotations

from collections.abc import Sequence


class MeshSyncError(Exception):
    """Base class: the message is shown to the user as it is, on one line."""

    exit_code = 1


class ConfigError(MeshSyncError):
    """Bad flags, config files or plugin options: the user has to change something (exit 2)."""

    exit_code = 2


class StartupError(MeshSyncError):
    """A source or sink could not start (unreachable API server, unwritable directory): exit 2."""

    exit_code = 2


class CombinedError(MeshSyncError):
    """Several problems found together (every component's options are checked before any
    starts), in the order they were found: the CLI prints one line per problem."""

    def __init__(self, errors: Sequence[MeshSyncError]) -> None:
        super().__init__("; ".join(str(error) for error in errors))
        self.errors = list(errors)
        self.exit_code = max(error.exit_code for error in errors)

    @property
    def messages(self) -> list[str]:
        return [str(error) for error in self.errors]
