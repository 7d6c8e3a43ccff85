"""Helpers for the file sink tests: a scripted source and a one-call engine run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from meshsync_file.sink import FileSink
from meshsync_k8s.redaction import SecretRedaction

from meshsync_core import Engine, Event, Options, RunResult, Source, SourceContext


class ScriptedSource(Source):
    """Emits ``before``, signals the initial sync, emits ``after``, then returns (or waits)."""

    name = "scripted"

    def __init__(
        self,
        before: Iterable[Event],
        after: Iterable[Event] = (),
        *,
        keep_running: bool = False,
        gate: asyncio.Event | None = None,
    ) -> None:
        super().__init__(Options())
        self.before = list(before)
        self.after = list(after)
        self.keep_running = keep_running
        self.gate = gate

    async def run(self, ctx: SourceContext) -> None:
        for event in self.before:
            await ctx.emit(event)
        ctx.initial_sync_complete()
        if self.gate is not None and self.after:
            # The engine queues the sync marker from a task; wait until the sink has handled it
            # so that the "after" events really come after it (deterministic logs in tests).
            await self.gate.wait()
        for event in self.after:
            await ctx.emit(event)
        if self.keep_running:
            await asyncio.Event().wait()


class GatedFileSink(FileSink):
    """A FileSink that tells the test source when it has handled the initial sync."""

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        self.handled_sync = asyncio.Event()

    async def on_synced(self) -> None:
        await super().on_synced()
        self.handled_sync.set()


def file_options(path: Path | None, **values: Any) -> Options:
    base: dict[str, Any] = {"file_progress": "off"}
    if path is not None:
        base["output_file"] = str(path)
    return Options({**base, **values})


async def run_file_sink(
    before: Iterable[Event],
    after: Iterable[Event] = (),
    *,
    path: Path | None,
    keep_running: bool = False,
    redact: bool = True,
    sink: FileSink | None = None,
    engine_kwargs: dict[str, Any] | None = None,
    **values: Any,
) -> tuple[FileSink, RunResult]:
    """Run the real engine: scripted source -> (secret redaction) -> FileSink."""
    options = file_options(path, redact_secrets=redact, **values)
    sink = sink or GatedFileSink(options)
    gate = sink.handled_sync if isinstance(sink, GatedFileSink) else None
    transforms = [SecretRedaction(options)] if SecretRedaction.enabled(options) else []
    engine = Engine(
        [ScriptedSource(before, after, keep_running=keep_running, gate=gate)],
        [sink],
        transforms,
        once=bool(values.get("once")),
        **(engine_kwargs or {}),
    )
    result = await engine.run()
    return sink, result


def load_all(path: Path) -> list[Any]:
    return list(yaml.safe_load_all(path.read_text(encoding="utf-8")))


@contextlib.contextmanager
def tmpfs(path: Path, size: str, *, readonly: bool = False) -> Iterator[Path]:
    """Mount a small tmpfs at ``path`` (root only); skip the test where mounting is impossible."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if readonly else "")
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)
