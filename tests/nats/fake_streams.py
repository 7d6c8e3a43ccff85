"""A stand-in for a source's :class:`meshsync_core.WorkloadStreams`, for the NATS side's tests.

It holds pods with containers, a log per container (history, and lines appended later for
followers) and a tiny "shell" per exec session that answers ``echo``. Failures are raised the
way the Kubernetes source raises them (:class:`meshsync_core.StreamError` with a kind).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from meshsync_core import LogOptions, StreamError, StreamTarget
from meshsync_core import streams as kinds
from tests.nats.helpers import ModelSource


@dataclass
class FakeLog:
    lines: list[bytes] = field(default_factory=list)
    followers: list[asyncio.Queue[bytes | None]] = field(default_factory=list)

    def append(self, *texts: str) -> None:
        for text in texts:
            data = text.encode()
            self.lines.append(data)
            for queue in self.followers:
                queue.put_nowait(data)


class FakeShell:
    """``echo X`` prints X; ``exit N`` ends with that status; anything else: not found."""

    def __init__(self, target: StreamTarget) -> None:
        self.target = target
        self.protocol = "v5.channel.k8s.io"
        self.received: list[bytes] = []
        self._out: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._failure: str | None = None
        self.closed = False
        self._out.put_nowait(b"# ")

    @property
    def failure(self) -> str | None:
        return self._failure

    async def send(self, data: bytes) -> None:
        if self.closed:
            raise StreamError("ended")
        self.received.append(data)
        line = data.decode().rstrip("\n")
        self._out.put_nowait(data.replace(b"\n", b"\r\n"))  # the terminal's echo
        word, _, rest = line.partition(" ")
        if word == "echo":
            self._out.put_nowait(rest.encode() + b"\r\n# ")
        elif word == "exit":
            if rest and rest != "0":
                self._failure = f"command terminated with exit code {rest}"
            self._out.put_nowait(None)
        elif word == "yes":
            self._out.put_nowait((rest or "y").encode() * (2**14))
        else:
            self._out.put_nowait(f"sh: {word}: not found\r\n# ".encode())

    async def output(self) -> AsyncIterator[bytes]:
        while True:
            data = await self._out.get()
            if data is None or self.closed:
                return
            yield data

    async def close(self) -> None:
        self.closed = True
        self._out.put_nowait(None)


class FakeStreams:
    """Pods ``{(namespace, name): [containers]}``, their logs, and what was asked."""

    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], list[str]] = {}
        self.logs: dict[tuple[str, str, str], FakeLog] = {}
        self.log_options: list[tuple[StreamTarget, LogOptions]] = []
        self.shells: list[FakeShell] = []
        self.forbidden: set[str] = set()  # "logs", "exec"
        self.open_logs = 0

    def add_pod(self, namespace: str, name: str, *containers: str) -> None:
        self.pods[(namespace, name)] = list(containers or ("main",))
        for container in containers or ("main",):
            self.logs[(namespace, name, container)] = FakeLog()

    def log(self, namespace: str, name: str, container: str = "main") -> FakeLog:
        return self.logs[(namespace, name, container)]

    def _resolve(self, target: StreamTarget, what: str) -> str:
        if what in self.forbidden:
            raise StreamError(
                f'pods "{target.name}" is forbidden: User "system:serviceaccount:meshery:'
                f'meshsync" cannot {what} (HTTP 403 Forbidden)',
                kind=kinds.FORBIDDEN,
                code=403,
            )
        containers = self.pods.get((target.namespace, target.name))
        if containers is None:
            raise StreamError(
                f'pods "{target.name}" not found (HTTP 404 NotFound)',
                kind=kinds.NOT_FOUND,
                code=404,
            )
        container = target.container or (containers[0] if len(containers) == 1 else "")
        if container not in containers:
            raise StreamError(
                f'container "{target.container}" is not valid for pod "{target.name}" '
                "(HTTP 400 BadRequest)",
                kind=kinds.INVALID,
                code=400,
            )
        return container

    async def stream_logs(self, target: StreamTarget, options: LogOptions) -> AsyncIterator[bytes]:
        container = self._resolve(target, "logs")
        self.log_options.append((target, options))
        log = self.logs[(target.namespace, target.name, container)]
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        if options.follow:
            log.followers.append(queue)
        self.open_logs += 1
        try:
            if options.tail_lines is None:
                history = log.lines
            else:  # 0: none of it
                history = (
                    log.lines[len(log.lines) - options.tail_lines :] if options.tail_lines else []
                )
            for line in history:
                yield line
            while options.follow:
                data = await queue.get()
                if data is None:
                    return
                yield data
        finally:
            self.open_logs -= 1
            if queue in log.followers:
                log.followers.remove(queue)

    async def open_exec(
        self, target: StreamTarget, command: Sequence[str], *, tty: bool = True
    ) -> FakeShell:
        self._resolve(target, "exec")
        assert list(command) == ["/bin/sh"] and tty
        shell = FakeShell(target)
        self.shells.append(shell)
        return shell


class StreamingSource(ModelSource):
    """The tests' model source, offering fake workload streams."""

    def __init__(self, streams: FakeStreams | None, objects: list | None = None) -> None:
        super().__init__(objects or [])
        self.streams = streams

    def workload_streams(self) -> FakeStreams | None:  # type: ignore[override]
        return self.streams
