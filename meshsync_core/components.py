"""The three things a plugin can contribute: sources, transforms and sinks.

A plugin returns these *classes* from its hooks (see :mod:`meshsync_core.hookspecs`); the engine
instantiates the ones the user selected with the parsed :class:`Options`. Each base class has
do-nothing defaults for everything but the one method that defines it, so a minimal sink is a
class with a ``name`` and a ``deliver`` method.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar, Protocol

from meshsync_core.events import Event
from meshsync_core.metrics import ComponentMetrics


class Options(Mapping[str, Any]):
    """Parsed option values by their Python name (``broker_url``), read-only.

    Every selected component receives the same object, so a plugin can read the core's options
    (``stop_after``) as well as its own.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any] | None = None, **more: Any) -> None:
        self._values = {**(values or {}), **more}

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Options({sorted(self._values)})"

    def with_values(self, **changes: Any) -> Options:
        return Options(self._values, **changes)


class SourceContext(Protocol):
    """What the engine gives a running source."""

    log: logging.Logger

    async def emit(self, event: Event) -> None:
        """Hand one event on. Waits while the slowest sink's queue is full (backpressure)."""

    def initial_sync_complete(self) -> None:
        """Say that every object that existed at start has been emitted. Call once."""


class SinkContext(Protocol):
    """What the engine gives a sink: ways to reach the sources and to end the run."""

    log: logging.Logger

    def request_stop(self, reason: str, exit_code: int = 0) -> None:
        """Ask the engine to shut down (flush and close every sink); non-zero = the run failed."""

    @property
    def supports_current_state(self) -> bool:
        """Whether any source can list its current state (``current_state`` yields anything)."""

    async def request_resync(self) -> None:
        """Ask every source to re-list; the sinks then see the current state again."""

    def current_state(self) -> AsyncIterator[Event]:
        """Every object the sources see now, as ``ADDED`` events, passed through the transforms."""

    @property
    def synced(self) -> bool:
        """True once every source has finished its initial sync."""


class Component:
    """Common part of sources, transforms and sinks."""

    #: The name users select it by (``--source k8s``, ``--output nats``).
    name: ClassVar[str] = ""
    #: Other accepted names (``broker`` for ``nats``).
    aliases: ClassVar[tuple[str, ...]] = ()
    #: One line for ``meshsync plugins list`` and ``--help``.
    description: ClassVar[str] = ""

    def __init__(self, options: Options) -> None:
        """Read and validate options here; raise :class:`~meshsync_core.errors.ConfigError`."""
        self.options = options
        self.log = logging.getLogger(f"meshsync.{self.name or type(self).__name__}")
        #: The component's own Prometheus counters/gauges (exported as ``meshsync_<name>``).
        self.metrics = ComponentMetrics(self.name or type(self).__name__)


class Source(Component):
    """Produces events. ``run`` emits until it is cancelled (or returns when it has no more)."""

    async def open(self) -> None:
        """Connect and check that the source can work; raise ``StartupError`` if it cannot."""

    async def run(self, ctx: SourceContext) -> None:
        raise NotImplementedError

    async def resync(self) -> None:
        """Re-list everything; the default does nothing (a source with nothing to re-list)."""

    def current_state(self) -> AsyncIterator[Event] | None:
        """An async iterator over every current object as ``ADDED`` events, or None if unsupported.

        Implementations should read the state fresh (a paginated list) rather than keep every
        object in memory.
        """
        return None

    async def close(self) -> None:
        """Release connections. Called once, after ``run`` has ended."""


class Transform(Component):
    """Filters, reshapes or enriches events between sources and sinks.

    Transforms run in ascending ``order`` (then by name), once per event, before fan-out to the
    sinks. They are synchronous because they run for every object; keep them cheap.
    """

    #: Position in the chain: lower runs first.
    order: ClassVar[int] = 100

    @classmethod
    def enabled(cls, options: Options) -> bool:
        """Whether this transform takes part in a run with these options (default: always)."""
        return True

    def __call__(self, event: Event) -> Event | None:
        """Return the event (the same or a new one), or None to drop it."""
        raise NotImplementedError


class Sink(Component):
    """Delivers events somewhere. Each sink has its own bounded queue and worker task."""

    async def open(self, ctx: SinkContext) -> None:
        """Prepare to deliver (connect, create files); raise ``StartupError`` if you cannot."""

    async def deliver(self, events: Sequence[Event]) -> None:
        """Deliver a batch of change events, in order. Raising here loses this batch only."""
        raise NotImplementedError

    async def on_synced(self) -> None:
        """Called once, in order, after every source's initial state has been delivered."""

    @property
    def ready(self) -> bool:
        """Whether the sink can deliver right now (for readiness probes)."""
        return True

    async def close(self) -> None:
        """Flush and release. Called once at shutdown, after the last ``deliver``."""


#: ``SourceContext.emit`` as a plain callable, for code that is handed only the emit function.
Emit = Callable[[Event], Awaitable[None]]
