"""Helpers for testing MeshSync plugins: event factories, an in-memory source, a capturing sink.

Import what you need; the ``capture_sink`` and ``memory_source`` fixtures built on them come
with ``meshsync-testkit``, whose pytest plugin pytest loads by itself::

    from meshsync_core import Engine, Options
    from meshsync_core.testing import MemorySource, make_deleted, make_event

    async def test_my_sink():
        web = make_event("web")
        sink = MySink(Options())
        result = await Engine([MemorySource([web, make_deleted(web)])], [sink]).run()
        assert result.exit_code == 0

Every :func:`make_event` call makes a new object (a new uid). To say something *later* about the
same object, derive the event from the first one with :func:`make_modified` or
:func:`make_deleted` (or pass the same ``uid=``).
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, TypeVar

from meshsync_core.components import Options, Sink, SinkContext, Source, SourceContext
from meshsync_core.events import Event, EventType, Resource

#: The Pod resource (``pods.v1.``, namespaced): :func:`make_event`'s default.
PODS = Resource(group="", version="v1", plural="pods", kind="Pod", namespaced=True)
#: The Namespace resource (``namespaces.v1.``), for cluster-scoped test objects.
NAMESPACES = Resource(
    group="", version="v1", plural="namespaces", kind="Namespace", namespaced=False
)
_uids = itertools.count(1)


T = TypeVar("T")


class _Deadline:
    """What the two waits share: the bound, and the message when it passes."""

    def __init__(self, timeout: float, what: object) -> None:
        self.timeout = timeout
        self.what = what
        self.at = time.monotonic() + timeout

    def poll(self, condition: Callable[[], T], proc: subprocess.Popen[Any] | None) -> T:
        """The condition's value; raises when it is false and the time is up (or proc ended)."""
        value = condition()
        if not value:
            self.check(proc)
        return value

    def check(self, proc: subprocess.Popen[Any] | None) -> None:
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            output = f"{out or ''}{err or ''}"
            raise AssertionError(
                f"the process exited ({proc.returncode}) before {self.what}:\n{output}"
            )
        if time.monotonic() > self.at:
            raise AssertionError(f"timed out after {self.timeout:g} s waiting for {self.what}")


async def wait_until(
    condition: Callable[[], T],
    timeout: float = 10.0,
    what: object = "",
    *,
    proc: subprocess.Popen[Any] | None = None,
) -> T:
    """Poll ``condition`` until it returns something true, and return that; fail after
    ``timeout`` seconds, or at once when ``proc`` exits first (with its output).

    For state with no event to await: another process's, a server thread's. Await an event
    instead wherever there is one.
    """
    deadline = _Deadline(timeout, what or condition)
    while not (value := deadline.poll(condition, proc)):
        await asyncio.sleep(0.02)
    return value


def wait_until_sync(
    condition: Callable[[], T],
    timeout: float = 10.0,
    what: object = "",
    *,
    proc: subprocess.Popen[Any] | None = None,
) -> T:
    """:func:`wait_until` for code without an event loop (blocking between polls)."""
    deadline = _Deadline(timeout, what or condition)
    while not (value := deadline.poll(condition, proc)):
        time.sleep(0.05)
    return value


def new_uid() -> str:
    """A fresh uid, ``00000000-0000-0000-0000-000000000001`` and counting."""
    return f"00000000-0000-0000-0000-{next(_uids):012d}"


def make_object(
    kind: str = "Pod",
    name: str = "web",
    namespace: str | None = "default",
    resource_version: str = "1",
    api_version: str = "v1",
    *,
    uid: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A minimal Kubernetes-looking object: ``apiVersion``, ``kind``, ``metadata`` and ``fields``.

    ``metadata`` holds ``name``, ``uid`` (a new one per call unless given), ``resourceVersion``
    and, unless ``namespace`` is None or empty, ``namespace``. Extra keyword arguments become
    top-level fields (``spec={...}``, ``data={...}``).
    """
    metadata: dict[str, Any] = {
        "name": name,
        "uid": uid or new_uid(),
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
    *,
    uid: str | None = None,
    resource_version: str = "1",
    cluster_id: str = "test-cluster",
    **fields: Any,
) -> Event:
    """An event (``ADDED`` by default) for a new object of ``resource``, from source ``memory``.

    Each call makes a new uid, so two calls describe two different objects; pass ``uid=`` or use
    :func:`make_modified` / :func:`make_deleted` for later changes to the same one. For a
    cluster-scoped ``resource`` (``namespaced=False``, like :data:`NAMESPACES`) the object gets
    no namespace and ``event.namespace`` is ``""``. Extra keyword arguments become top-level
    fields of the object (``spec={...}``).
    """
    obj = make_object(
        resource.kind or "Thing",
        name,
        namespace if resource.namespaced else None,
        resource_version,
        resource.api_version,
        uid=uid,
        **fields,
    )
    return Event(event_type, obj, resource, source="memory", cluster_id=cluster_id)


def _next_version(resource_version: str) -> str:
    return str(int(resource_version) + 1) if resource_version.isdigit() else f"{resource_version}+1"


def make_modified(event: Event, **fields: Any) -> Event:
    """A ``MODIFIED`` event for the same object as ``event`` (same uid, name, namespace).

    The resourceVersion goes up by one (``"1"`` -> ``"2"``) and keyword arguments replace or add
    top-level fields (``spec={...}``); ``event`` itself is left unchanged.
    """
    obj = dict(event.object)
    metadata = dict(event.metadata)
    metadata["resourceVersion"] = _next_version(event.resource_version)
    obj.update(fields, metadata=metadata)
    return event.replace(type=EventType.MODIFIED, object=obj)


def make_deleted(event: Event, *, minimal: bool = False) -> Event:
    """The ``DELETED`` event for the object of ``event`` (same uid, name and namespace).

    By default it carries the last state with a new resourceVersion, as a watch reports a
    deletion. With ``minimal=True`` it carries only ``apiVersion``, ``kind`` and
    ``metadata`` (name, namespace, uid, resourceVersion), as the Kubernetes source reports an
    object it found gone when re-listing: a sink must not need more than that to delete.
    """
    obj = dict(event.object)
    metadata = dict(event.metadata)
    metadata["resourceVersion"] = _next_version(event.resource_version)
    if minimal:
        keep = ("name", "namespace", "uid", "resourceVersion")
        metadata = {key: metadata[key] for key in keep if key in metadata}
        obj = {key: obj[key] for key in ("apiVersion", "kind") if key in obj}
    obj["metadata"] = metadata
    return event.replace(type=EventType.DELETED, object=obj)


class MemorySource(Source):
    """Emits ``events`` in order, signals its initial sync, then returns.

    A run with only this source therefore ends by itself (reason ``"sources finished"``); each
    sink still gets every event and ``on_synced()`` before ``close()``. With
    ``keep_running=True`` it waits after the initial sync until the run is stopped
    (``engine.stop()``, ``stop_after=``), like a real source that keeps watching.

    ``current_state()`` yields the objects of ``events`` that were not deleted, as ``ADDED``,
    like a fresh list would. ``resync()`` only counts calls in ``resyncs``; ``emitted`` counts
    the events handed to the engine.
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
        """Emit every event, call ``ctx.initial_sync_complete()``, then return (or wait)."""
        for event in self.events:
            await ctx.emit(event)
            self.emitted += 1
        ctx.initial_sync_complete()
        if self.keep_running:
            await asyncio.Event().wait()

    async def resync(self) -> None:
        """Count the call; nothing is emitted again."""
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
        """The last state of every object not deleted in ``events``, as ``ADDED`` events."""
        return self._state()


class CaptureSink(Sink):
    """Keeps every delivered event in ``events``, for assertions.

    ``delay`` (seconds) makes every ``deliver`` slow; a batch holding an event whose name is in
    ``fail_on`` makes ``deliver`` raise. ``name`` overrides the sink name (``capture``), to run
    several side by side. After a run: ``events``, ``names`` (their object names), ``batches``
    (``deliver`` calls that succeeded), ``synced`` (an ``asyncio.Event`` set by ``on_synced``),
    ``synced_after`` (how many events came before ``on_synced``), ``closed``, and ``ctx`` (the
    :class:`~meshsync_core.components.SinkContext` ``open`` got).
    """

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
            self.name = name  # type: ignore[misc]  # per instance: several side by side
        super().__init__(options or Options())
        self.events: list[Event] = []
        self.batches = 0
        self.delay = delay
        self.fail_on = set(fail_on)
        self.synced = asyncio.Event()
        self.synced_after: int | None = None
        self.closed = False
        self.ctx: SinkContext | None = None
        self._changed = asyncio.Condition()

    async def open(self, ctx: SinkContext) -> None:
        """Keep ``ctx`` as ``self.ctx``."""
        self.ctx = ctx

    async def deliver(self, events: Sequence[Event]) -> None:
        """Wait ``delay``, raise if told to, else append the batch to ``events``."""
        if self.delay:
            await asyncio.sleep(self.delay)  # simulates a slow network, not a synchronisation
        if any(event.name in self.fail_on for event in events):
            raise RuntimeError(f"{self.name} was told to fail")
        self.events.extend(events)
        self.batches += 1
        async with self._changed:
            self._changed.notify_all()

    async def on_synced(self) -> None:
        """Set ``synced`` (and ``synced_after``)."""
        self.synced_after = len(self.events)
        self.synced.set()

    async def close(self) -> None:
        """Set ``closed``."""
        self.closed = True

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Event]:
        """Wait until at least ``count`` events arrived and return ``events``.

        Raises ``TimeoutError`` (``asyncio.TimeoutError`` before Python 3.11) after ``timeout``
        seconds.
        """

        async def enough() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.events) >= count)

        await asyncio.wait_for(enough(), timeout)
        return self.events

    @property
    def names(self) -> list[str]:
        """The object name of every captured event, in delivery order."""
        return [event.name for event in self.events]
