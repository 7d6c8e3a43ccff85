"""Workload streams: logs of, and shells in, what a source watches, offered to sinks.

Meshery asks MeshSync to follow a container's log and to open a shell in it. Only a source
can do that (it holds the connection to the cluster), and only a sink hears the request (it
holds the connection to Meshery). The core connects the two without knowing either side: a
source that can offers a :class:`WorkloadStreams` from :meth:`Source.workload_streams()
<meshsync_core.components.Source.workload_streams>`, and a sink reaches it as
:attr:`SinkContext.workload_streams <meshsync_core.components.SinkContext.workload_streams>`.

A workload is addressed the way Meshery addresses it, by namespace, name and container
(:class:`StreamTarget`). Data is bytes both ways; what a sink makes of it (chunking, wire
format, limits, who may ask) is the sink's business. Failures are :class:`StreamError`, whose
``kind`` says what went wrong in terms a sink can act on without knowing the source.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from meshsync_core.errors import MeshSyncError

#: ``StreamError.kind`` values.
FORBIDDEN = "forbidden"
NOT_FOUND = "not-found"
INVALID = "invalid"
UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class StreamTarget:
    """Which workload: ``namespace``/``name`` and, optionally, one ``container`` of it.

    An empty ``container`` lets the source choose (the Kubernetes API server takes a pod's
    only container, or its default-container annotation).
    """

    namespace: str
    name: str
    container: str = ""

    def describe(self) -> str:
        """``namespace/name`` and ``[container]`` when one is named, for log lines."""
        where = f"{self.namespace}/{self.name}"
        return f"{where}[{self.container}]" if self.container else where


@dataclass(frozen=True)
class LogOptions:
    """What part of a log to read.

    ``tail_lines``: that many lines from the end, then (with ``follow``) what is written next;
    ``None`` means the whole log, ``0`` none of the history. ``previous``: the log of the
    previous instance of the container (a restarted one). ``timestamps``: each line starts with
    its RFC 3339 time.
    """

    follow: bool = False
    previous: bool = False
    tail_lines: int | None = None
    timestamps: bool = True


class StreamError(MeshSyncError):
    """A log or shell could not be opened, or broke off.

    ``kind`` is one of the module's constants: ``FORBIDDEN`` (``"forbidden"``: the source's
    identity may not do this, e.g. Kubernetes RBAC), ``NOT_FOUND`` (``"not-found"``: no such
    namespace, workload or container), ``INVALID`` (``"invalid"``: the request itself is
    wrong, e.g. no previous instance, or a container must be named) or ``UNAVAILABLE``
    (``"unavailable"``: anything else — unreachable, timed out, an unexpected answer).
    ``str(error)`` is one line meant for the user; ``code`` is the source's own status code
    (HTTP for Kubernetes), 0 when there was none.
    """

    def __init__(self, message: str, *, kind: str = UNAVAILABLE, code: int = 0) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code


@runtime_checkable
class ExecSession(Protocol):
    """A running command with its standard input and output (a shell, usually).

    With a terminal (``tty=True``) standard error arrives merged into the output, as a
    terminal shows it; without one the source may still merge the two.
    """

    async def send(self, data: bytes) -> None:
        """Write to the command's standard input (bytes as they are: add the newline).

        Raises :class:`StreamError` when the session has ended.
        """

    def output(self) -> AsyncIterator[bytes]:
        """The command's output as it comes, chunk by chunk; ends when the command ends or
        the session is closed. Iterate it once."""

    @property
    def failure(self) -> str | None:
        """After ``output`` ended: why the command failed, or None for a clean end.

        For example ``command terminated with exit code 2`` (kubectl's words).
        """

    async def close(self) -> None:
        """End the session (the command gets a hang-up); safe to call more than once."""


@runtime_checkable
class WorkloadStreams(Protocol):
    """What a source offers sinks for logs and shells (see :meth:`Source.workload_streams`)."""

    def stream_logs(self, target: StreamTarget, options: LogOptions) -> AsyncIterator[bytes]:
        """The target's log as it is read, chunk by chunk (chunk boundaries mean nothing).

        Without ``options.follow`` it ends at the end of the log; with it, when the source
        ends the stream (the workload went away) or the caller stops iterating (``aclose()``
        it). Raises :class:`StreamError` from the first iteration if the log cannot be read.
        """

    async def open_exec(
        self, target: StreamTarget, command: Sequence[str], *, tty: bool = True
    ) -> ExecSession:
        """Start ``command`` in the target with standard input, output and a terminal if
        ``tty``; raises :class:`StreamError` if it cannot."""
