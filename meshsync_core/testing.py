"""Helpers for testing MeshSync plugins: an in-memory source, a capturing sink, fixtures.

Use it from a plugin's tests with ``pytest_plugins = ["meshsync_core.testing"]`` in
``conftest.py``, or import the classes directly::

    from meshsync_core.testing import CaptureSink, MemorySource, make_event

    async def test_my_sink():
        sink = MySink(Options())
        result = await Engine([MemorySource([make_event("pods", "web")])], [sink]).run()
        assert result.exit_code == 0
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from meshsync_core.components import Options, Sink, SinkContext, Source, SourceContext
from meshsync_core.events import Event, EventType, Resource

PODS = Resource(group="", version="v1", plural="pods", kind="Pod", namespaced=True)
_uids = itertools.count(1)


def make_object(
    kind: str = "Pod",
    name: str = "web",
    namespace: str | None = "default",
    resource_version: str = "1",
    api_version: str = "v1",
    **fields: Any,
) -> dict[str, Any]:
    """A minimal Kubernetes-looking object with a unique uid."""
    metadata: dict[str, Any] = {
        "name": name,
        "uid": f"00000000-0000-0000-0000-{next(_uids):012d}",
        "resourceVersion": resource_version,
    }
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **fields}


def make_event(
    name: str = "web",
    event_type: EventType = EventType.ADDED,
    resource: Resource = PODS,
    namespace: str | None = "default",
    **fields: Any,
) -> Event:
    obj = make_object(
        resource.kind or "Thing", name, namespace, api_version=resource.api_version, **fields
    )
    return Event(event_type, obj, resource, source="memory", cluster_id="test-cluster")


class MemorySource(Source):
    """Emits the given events, signals initial sync, then returns (or waits, with ``keep_running``).

    ``current_state`` yields the ADDED/MODIFIED objects not deleted, like a fresh list would.
    """

    name = "memory"

    def __init__(
        self,
        events: Iterable[Event] = (),
        *,
        keep_running: bool = False,
        options: Options | None = None,
    ) -> None:
        super().__init__(options or Options())
        self.events = list(events)
        self.keep_running = keep_running
        self.resyncs = 0
        self.emitted = 0

    async def run(self, ctx: SourceContext) -> None:
        for event in self.events:
            await ctx.emit(event)
            self.emitted += 1
        ctx.initial_sync_complete()
        if self.keep_running:
            await asyncio.Event().wait()

    async def resync(self) -> None:
        self.resyncs += 1

    async def _state(self) -> AsyncIterator[Event]:
        live: dict[str, Event] = {}
        for event in self.events:
            if event.type is EventType.DELETED:
                live.pop(event.uid, None)
            else:
                live[event.uid] = event
        for event in live.values():
            yield event.replace(type=EventType.ADDED, extra=None)

    def current_state(self) -> AsyncIterator[Event]:
        return self._state()


class CaptureSink(Sink):
    """Keeps every delivered event; ``delay`` makes it slow, ``fail_on`` makes it raise."""

    name = "capture"

    def __init__(
        self,
        options: Options | None = None,
        *,
        delay: float = 0.0,
        fail_on: Iterable[str] = (),
        name: str | None = None,
    ) -> None:
        if name:
            self.name = name
        super().__init__(options or Options())
        self.events: list[Event] = []
        self.batches = 0
        self.delay = delay
        self.fail_on = set(fail_on)
        self.synced = asyncio.Event()
        self.closed = False
        self.ctx: SinkContext | None = None
        self._changed = asyncio.Condition()

    async def open(self, ctx: SinkContext) -> None:
        self.ctx = ctx

    async def deliver(self, events: Sequence[Event]) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)  # simulates a slow network, not a synchronisation
        if any(event.name in self.fail_on for event in events):
            raise RuntimeError(f"{self.name} was told to fail")
        self.events.extend(events)
        self.batches += 1
        async with self._changed:
            self._changed.notify_all()

    async def on_synced(self) -> None:
        self.synced.set()

    async def close(self) -> None:
        self.closed = True

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Event]:
        """Wait until at least ``count`` events arrived; return them."""

        async def enough() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.events) >= count)

        await asyncio.wait_for(enough(), timeout)
        return self.events

    @property
    def names(self) -> list[str]:
        return [event.name for event in self.events]


try:  # fixtures only where pytest is installed; the classes above work without it
    import pytest
except ImportError:  # pragma: no cover
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def capture_sink() -> CaptureSink:
        return CaptureSink()

    @pytest.fixture
    def memory_source() -> MemorySource:
        return MemorySource([make_event(f"pod-{i}") for i in range(3)])
