"""The three things a plugin can contribute: sources, transforms and sinks.

A plugin returns these *classes* from its hooks (see :mod:`meshsync_core.hookspecs`); the engine
instantiates the ones the user selected with the parsed :class:`Options`. Each base class has
do-nothing defaults for everything but the one method that defines it, so a minimal sink is a
class with a ``name`` and a ``deliver`` method.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Protocol

from meshsync_core.events import Event
from meshsync_core.metrics import ComponentMetrics
from meshsync_core.published_index import IndexRecord, IndexStore
from meshsync_core.streams import WorkloadStreams


class Options(Mapping[str, Any]):
    """Parsed option values by their Python name (``broker_url``), read-only.

    Every selected component receives the same object, so a plugin can read the core's options
    (``stop_after``) as well as its own. In a run started by the CLI every installed option is
    present with its parsed value or default; in tests, ``Options(sqlite_path="x")`` holds only
    what you give it, so read with ``options.get("name", default)``.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any] | None = None, **more: Any) -> None:
        self._values = {**(values or {}), **more}

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Options({sorted(self._values)})"


class SourceContext(Protocol):
    """What the engine gives a running source (``Source.run(ctx)``); ``log`` is the source's
    logger."""

    log: logging.Logger

    async def emit(self, event: Event) -> None:
        """Hand one event on. Waits while the slowest sink's queue is full (backpressure)."""

    def initial_sync_complete(self) -> None:
        """Say that every object that existed at start has been emitted. Call once."""

    async def published_state(self, partition: str) -> dict[str, IndexRecord] | None:
        """What was last published of this partition (a cluster: ``partition_of(cluster_id)``),
        by uid, or None when no index is kept or it could not be read (one warning).

        Read it before emitting and diff against it: emit ``DELETED`` for records whose object
        is gone, ``MODIFIED`` for a changed resourceVersion, ``ADDED`` for objects without a
        record, and nothing for the unchanged ones (see :mod:`meshsync_core.published_index`).
        Each call reads the storage afresh (a new leader reads what the old one wrote).
        """


class SinkContext(Protocol):
    """What the engine gives a sink in ``open(ctx)``: ways to reach the sources and to end the run.

    Keep it (``self.ctx = ctx``) to use it later; ``log`` is the sink's logger.
    """

    log: logging.Logger

    def published(self, events: Sequence[Event]) -> None:
        """For a sink with ``confirms_publication``: these events have really gone out (the
        server acknowledged them), so the published index may record them. Others ignore it."""

    async def flush_published(self) -> None:
        """Write what the published index recorded so far; call it in ``close`` before closing
        a connection the index store uses."""

    def request_stop(self, reason: str, exit_code: int = 0) -> None:
        """Ask the engine to shut down (flush and close every sink); non-zero = the run failed.

        Returns at once; the shutdown happens after the current ``deliver`` returns.
        """

    @property
    def supports_current_state(self) -> bool:
        """Whether any source can list its current state (``current_state`` yields anything)."""

    async def request_resync(self) -> None:
        """Ask every source to re-list; the sinks then see the current state again.

        The events arrive through ``deliver`` like any others (the Kubernetes source: ``ADDED``
        for every current object, ``MODIFIED`` for changed ones, ``DELETED`` for vanished ones);
        ``on_synced`` is not called again. Returns when the sources have re-listed (the
        Kubernetes source waits up to 120 s), so do not await it inside ``deliver``: the re-list
        waits for room in your own queue.
        """

    def current_state(self) -> AsyncIterator[Event]:
        """Every object the sources see now, as ``ADDED`` events, passed through the transforms.

        Use it as ``async for event in ctx.current_state():``. The Kubernetes source lists the
        API server afresh; the events do not go through ``deliver``.
        """

    @property
    def synced(self) -> bool:
        """True once every source has finished its initial sync (or failed)."""

    @property
    def incomplete_sources(self) -> frozenset[str]:
        """Sources that failed before finishing their initial sync.

        A source that raises does not hold the others back: it counts as synced, so
        ``on_synced`` still runs. Its initial state was then not completely delivered; a sink
        that removes what the initial sync did not mention checks this first.
        """

    @property
    def workload_streams(self) -> WorkloadStreams | None:
        """Logs of and shells in the workloads a source watches, or None if no source offers
        them (see :mod:`meshsync_core.streams`).

        The first source whose :meth:`Source.workload_streams` returns one. Read it when a
        request comes (sources are open by then), not in ``__init__``.
        """


class Component:
    """Common part of sources, transforms and sinks."""

    #: The name users select it by (``--source k8s``, ``--output nats``); required.
    name: ClassVar[str] = ""
    #: Other accepted names (``broker`` for ``nats``).
    aliases: ClassVar[tuple[str, ...]] = ()
    #: One line saying what it does, listed by ``meshsync plugins list --json`` (``descriptions``).
    description: ClassVar[str] = ""

    def __init__(self, options: Options) -> None:
        """Read and validate options here; raise :class:`~meshsync_core.errors.ConfigError`.

        Only components the user selected are constructed. Call ``super().__init__(options)``:
        it sets ``self.options``, ``self.log`` (logger ``meshsync.<name>``) and ``self.metrics``
        (a :class:`~meshsync_core.metrics.ComponentMetrics`). Do no I/O here; connect in
        ``open``.
        """
        self.options = options
        self.log = logging.getLogger(f"meshsync.{self.name or type(self).__name__}")
        #: The component's own Prometheus counters/gauges (exported as ``meshsync_<name>``).
        self.metrics = ComponentMetrics(self.name or type(self).__name__)


class Source(Component):
    """Produces events. ``run`` emits until it is cancelled (or returns when it has no more)."""

    async def open(self) -> None:
        """Connect and check that the source can work; raise ``StartupError`` if it cannot."""

    async def run(self, ctx: SourceContext) -> None:
        """Emit events with ``await ctx.emit(event)``; call ``ctx.initial_sync_complete()`` once.

        Run until cancelled (shutdown cancels it) or return when there is nothing more. If it
        raises, the error is logged; the run ends with exit code 1 only when every source failed.
        """
        raise NotImplementedError

    async def resync(self) -> None:
        """Re-list everything; the default does nothing (a source with nothing to re-list)."""

    @property
    def role(self) -> str:
        """What this replica does now, for ``/readyz``: ``""`` (the default: nothing to say),
        or a short line such as ``leader`` or ``standby (not publishing)``."""
        return ""

    def current_state(self) -> AsyncIterator[Event] | None:
        """An async iterator over every current object as ``ADDED`` events, or None if unsupported.

        Implementations should read the state fresh (a paginated list) rather than keep every
        object in memory.
        """
        return None

    def workload_streams(self) -> WorkloadStreams | None:
        """Logs of and shells in what this source watches, for sinks; None (the default) if
        the source offers none. Called after ``open``; see :mod:`meshsync_core.streams`.

        The Kubernetes source returns one reading ``pods/<name>/log`` and opening
        ``pods/<name>/exec`` with its own credentials, so what a sink may ask is bounded by
        the source's RBAC permissions.
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

    #: True if the sink tells the engine itself what has really gone out
    #: (:meth:`SinkContext.published`); otherwise a batch counts as published once ``deliver``
    #: returned without raising.
    confirms_publication: ClassVar[bool] = False
    #: True if the sink must receive every object at start (it writes complete snapshots from
    #: what it received): a run with such a sink keeps no published index.
    needs_full_state: ClassVar[bool] = False

    def index_store(self) -> IndexStore | None:
        """Where this sink keeps the published index (called after ``open``), or None.

        The engine uses the first selected sink's store (``--published-index-file`` overrides),
        records what that sink publishes, and hands it to the sources at start so that a
        restart emits only what changed meanwhile. See :mod:`meshsync_core.published_index`.
        """
        return None

    async def open(self, ctx: SinkContext) -> None:
        """Prepare to deliver (connect, create files); raise ``StartupError`` if you cannot.

        Called once, before the first ``deliver``. Any other exception also becomes a start-up
        error (exit code 2, one line naming your sink).
        """

    async def deliver(self, events: Sequence[Event]) -> None:
        """Deliver a batch of change events (``ADDED``, ``MODIFIED``, ``DELETED``), in order.

        Batches hold 1 to 500 events. Raising here loses this batch only, for this sink only (it
        is logged and counted in ``meshsync_errors``); retry inside if you must not lose it.
        The engine never calls a sink's methods concurrently: the next ``deliver`` (or
        ``on_synced``, ``close``) waits for this one. It runs on the event loop: blocking I/O
        here stalls every source and sink, so run it with ``await asyncio.to_thread(...)``.
        """
        raise NotImplementedError

    async def on_synced(self) -> None:
        """Called once, after every source's initial state has been delivered to this sink.

        Everything that existed when the run started has then been passed to ``deliver`` (as
        ``ADDED``), and every later event comes after this call. It is not called again after a
        re-list. Raising here is logged and counted, and the run goes on.
        """

    @property
    def ready(self) -> bool:
        """Whether the sink can deliver right now (``/readyz`` and ``meshsync_ready``)."""
        return True

    async def close(self) -> None:
        """Flush and release. Called once at shutdown, after the last ``deliver``.

        Also called when start-up failed, possibly without ``open`` having run: check what
        you opened. Raise :class:`~meshsync_core.errors.MeshSyncError` to make the run fail with
        that message (e.g. a final write failed).
        """


#: ``SourceContext.emit`` as a plain callable, for code that is handed only the emit function.
Emit = Callable[[Event], Awaitable[None]]
