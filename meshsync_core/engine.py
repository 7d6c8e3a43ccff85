"""The asyncio engine: sources -> transforms -> one bounded queue per sink -> sinks.

Data flow for one event::

    source.run() --ctx.emit(e)--> transforms --+--> queue[sink A] --> worker A --> A.deliver([...])
                     (in order, may drop) +--> queue[sink B] --> worker B --> B.deliver([...])

``emit`` waits while any sink queue is full, so the slowest sink slows the sources down instead
of memory growing. Each sink worker takes whatever is queued (up to ``batch_size``) and delivers
it as one batch. A transform or sink that raises is logged with its name and counted; the event
(transform) or batch (sink) is lost for it alone and everything else goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshsync_core.components import Sink, Source, Transform
from meshsync_core.errors import MeshSyncError, StartupError
from meshsync_core.events import Event, EventType, synced_marker
from meshsync_core.memory import release_free_memory
from meshsync_core.published_index import FileIndexStore, IndexRecord, IndexStore, PublishedIndex
from meshsync_core.streams import WorkloadStreams

log = logging.getLogger("meshsync.engine")
_monotonic = time.monotonic

_STOP = object()  # queue sentinel: no more events for this sink
#: Events each sink may have waiting (``--queue-size``), and how many ``deliver`` gets at once.
DEFAULT_QUEUE_SIZE = 4096
DEFAULT_BATCH_SIZE = 500


@dataclass
class EngineStats:
    """Counters a run keeps; the metrics endpoint and tests read them."""

    emitted: Counter[tuple[str, str]] = field(default_factory=Counter)  # (source, event type)
    delivered: Counter[str] = field(default_factory=Counter)  # per sink
    delivered_by_type: Counter[tuple[str, str]] = field(default_factory=Counter)  # (sink, type)
    dropped_by_transform: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # per component name
    max_queue_depth: Counter[str] = field(default_factory=Counter)  # per sink
    initial_sync_seconds: float | None = None
    last_event_at: float = 0.0  # time.monotonic() of the last emitted event


@dataclass
class RunResult:
    """How a run ended: ``exit_code`` 0 for a clean stop."""

    exit_code: int
    reason: str
    stats: EngineStats


class _SinkLane:
    """One sink, its queue and its worker task."""

    def __init__(self, sink: Sink, queue_size: int) -> None:
        self.sink = sink
        self.queue: asyncio.Queue[object] = asyncio.Queue(maxsize=queue_size)
        self.task: asyncio.Task[None] | None = None
        self.name = sink.name or type(sink).__name__
        #: time.monotonic() when the current deliver() call started, 0 when idle.
        self.delivering_since = 0.0
        #: Set while the SYNCED marker waits for room in a full queue.
        self.marker_put: asyncio.Future[None] | None = None
        #: Counter keys per event type, built once rather than per delivered event.
        self.stat_keys = {etype: (self.name, etype.value) for etype in EventType}
        #: Set when this sink's deliveries feed the published index after ``deliver`` returns.
        self.index: PublishedIndex | None = None


class _SourceContext:
    def __init__(self, engine: Engine, source: Source) -> None:
        self._engine = engine
        self._name = source.name
        self.log = source.log
        self._synced = False
        self._stat_keys = {etype: (source.name, etype.value) for etype in EventType}

    async def emit(self, event: Event) -> None:
        # The hot path: runs once per object. Keep it free of anything that could be per batch.
        engine = self._engine
        if not event.source:
            event.source = self._name
        stats = engine.stats
        stats.emitted[self._stat_keys[event.type]] += 1
        stats.last_event_at = _monotonic()
        if engine.transforms:
            event = engine.apply_transforms(event)  # type: ignore[assignment]
            if event is None:
                return
        for lane in engine.lanes:
            queue = lane.queue
            if lane.marker_put is None and not queue.full():
                queue.put_nowait(event)  # no coroutine when there is room
                continue
            if lane.marker_put is not None:
                await lane.marker_put  # the SYNCED marker goes in before any later event
            await queue.put(event)
        engine._since_yield += 1
        if engine._since_yield >= 256:
            # A source that never waits on I/O would otherwise starve the sink workers.
            engine._since_yield = 0
            await asyncio.sleep(0)

    def initial_sync_complete(self) -> None:
        if self._synced:
            return
        self._synced = True
        self._engine._source_synced(self._name)

    async def published_state(self, partition: str) -> dict[str, IndexRecord] | None:
        index = self._engine.index
        return None if index is None else await index.load(partition)


class _SinkContext:
    def __init__(self, engine: Engine, sink: Sink) -> None:
        self._engine = engine
        self._sink = sink
        self.log = sink.log

    def published(self, events: Sequence[Event]) -> None:
        engine = self._engine
        if engine.index is not None and engine.index_sink is self._sink:
            engine.index.record(events)

    async def flush_published(self) -> None:
        engine = self._engine
        if engine.index is not None and engine.index_sink is self._sink:
            await engine.index.flush()

    def request_stop(self, reason: str, exit_code: int = 0) -> None:
        self._engine.stop(reason, exit_code)

    @property
    def supports_current_state(self) -> bool:
        return any(
            type(source).current_state is not Source.current_state
            for source in self._engine.sources
        )

    async def request_resync(self) -> None:
        await asyncio.gather(*(source.resync() for source in self._engine.sources))

    async def current_state(self) -> AsyncIterator[Event]:
        for source in self._engine.sources:
            iterator = source.current_state()
            if iterator is None:
                continue
            async for event in iterator:
                if not event.source:
                    event.source = source.name
                transformed = self._engine.apply_transforms(event)
                if transformed is not None:
                    yield transformed

    @property
    def synced(self) -> bool:
        return self._engine.synced.is_set()

    @property
    def incomplete_sources(self) -> frozenset[str]:
        return frozenset(self._engine.incomplete_sources)

    @property
    def workload_streams(self) -> WorkloadStreams | None:
        for source in self._engine.sources:
            streams = source.workload_streams()
            if streams is not None:
                return streams
        return None


class Engine:
    """Runs given source, transform and sink instances until stopped.

    ``stop_after`` (seconds) ends the run cleanly; so do :meth:`stop`, SIGINT and SIGTERM (when
    ``handle_signals``), a sink calling ``ctx.request_stop``, every source returning, and with
    ``once`` every sink having received the initial state.
    """

    def __init__(
        self,
        sources: Sequence[Source],
        sinks: Sequence[Sink],
        transforms: Sequence[Transform] = (),
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        batch_size: int = DEFAULT_BATCH_SIZE,
        stop_after: float | None = None,
        shutdown_timeout: float = 30.0,
        handle_signals: bool = False,
        once: bool = False,
        published_index: bool = False,
        published_index_file: str | None = None,
    ) -> None:
        if not sources:
            raise ValueError("the engine needs at least one source")
        self.sources = list(sources)
        self.transforms = sorted(transforms, key=lambda t: (t.order, t.name))
        self.lanes = [_SinkLane(sink, queue_size) for sink in sinks]
        self.batch_size = batch_size
        self.stop_after = stop_after
        self.shutdown_timeout = shutdown_timeout
        self.handle_signals = handle_signals
        self.once = once
        self._lanes_synced = 0
        self.stats = EngineStats()
        self.synced = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._stop_reason = ""
        self._exit_code = 0
        self._unsynced = {source.name for source in self.sources}
        #: Sources that failed before finishing their initial sync.
        self.incomplete_sources: set[str] = set()
        self._since_yield = 0
        self._started_at = 0.0
        self._shutting_down = False
        self._index_wanted = published_index
        self._index_file = published_index_file
        #: The published index of this run (None: not kept), and the sink whose output it follows.
        self.index: PublishedIndex | None = None
        self.index_sink: Sink | None = None

    # -- public ----------------------------------------------------------------------------

    def stop(self, reason: str = "stop requested", exit_code: int = 0) -> None:
        """Ask the run to end; safe to call from signal handlers and several times.

        The first reason is kept; a non-zero ``exit_code`` (a sink that could not do its job)
        makes the run fail even if the stop was requested cleanly before.
        """
        if exit_code and not self._exit_code:
            self._exit_code = exit_code
            self._stop_reason = reason
        if not self._stop_requested.is_set():
            if not self._exit_code or exit_code:
                self._stop_reason = reason
            self._stop_requested.set()

    @property
    def stopping(self) -> bool:
        """True once the run has begun to end, for whatever reason."""
        return self._stop_requested.is_set() or self._shutting_down

    @property
    def ready(self) -> bool:
        """Every source has synced and every sink says it can deliver."""
        return self.synced.is_set() and all(lane.sink.ready for lane in self.lanes)

    def not_ready_reasons(self) -> list[str]:
        reasons = [f"source {name!r} has not finished its initial sync" for name in self._unsynced]
        reasons += [
            f"sink {lane.name!r} is not ready" for lane in self.lanes if not lane.sink.ready
        ]
        return reasons

    def stuck_sinks(self, after: float) -> list[str]:
        """Sinks whose current ``deliver`` call has been running for more than ``after`` s."""
        now = time.monotonic()
        return [
            lane.name
            for lane in self.lanes
            if lane.delivering_since and now - lane.delivering_since > after
        ]

    def apply_transforms(self, event: Event) -> Event | None:
        for transform in self.transforms:
            try:
                result = transform(event)
            except Exception:
                self.stats.errors[transform.name] += 1
                log_failure(
                    transform.log, "transform %r failed on %s", transform.name, event.describe()
                )
                return None
            if result is None:
                self.stats.dropped_by_transform[transform.name] += 1
                return None
            event = result
        return event

    async def run(self) -> RunResult:
        """Open everything, run until a stop condition, then flush and close every sink.

        A stop requested while the components are still opening (a signal while the API server
        is slow to answer) ends the run there: what was opened is closed again.
        """
        self._started_at = time.monotonic()
        try:
            opened = await self._open_unless_stopped()
        except MeshSyncError as exc:
            self._shutting_down = True
            await self._close_all()
            return RunResult(exc.exit_code, str(exc), self.stats)
        if not opened:
            self._shutting_down = True
            await self._close_all()
            self._log_stop()
            return RunResult(self._exit_code, self._stop_reason, self.stats)
        for lane in self.lanes:
            lane.task = asyncio.create_task(self._sink_worker(lane), name=f"sink:{lane.name}")
        source_tasks = [
            asyncio.create_task(self._run_source(source), name=f"source:{source.name}")
            for source in self.sources
        ]
        removers = self._install_signal_handlers() if self.handle_signals else []
        try:
            stop_wait = asyncio.create_task(self._stop_requested.wait())
            sources_done: asyncio.Future[list[Any]] = asyncio.gather(
                *source_tasks, return_exceptions=True
            )
            waited: list[asyncio.Future[Any]] = [stop_wait, sources_done]
            await asyncio.wait(
                waited,
                timeout=self.stop_after,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not self._stop_requested.is_set():
                if sources_done.done():
                    failed = [r for r in sources_done.result() if isinstance(r, BaseException)]
                    if failed and len(failed) == len(source_tasks):
                        self._exit_code = 1
                        self._stop_reason = f"every source failed: {failed[0]}"
                    else:
                        self._stop_reason = "sources finished"
                else:
                    self._stop_reason = f"--stop-after {self.stop_after:g}s elapsed"
            stop_wait.cancel()
        finally:
            self._shutting_down = True
            for remove in removers:
                remove()
            for task in source_tasks:
                task.cancel()
            await asyncio.gather(*source_tasks, return_exceptions=True)
            await self._drain_sinks()
            if self.index is not None:
                # while the sinks' connections are still open
                await self.index.flush(retry_for=min(10.0, self.shutdown_timeout))
            await self._close_all()
            if self.index is not None:
                await self.index.close()
        self._log_stop()
        return RunResult(self._exit_code, self._stop_reason, self.stats)

    # -- internals -------------------------------------------------------------------------

    def _log_stop(self) -> None:
        if self._exit_code:
            log.error("stopped: %s", self._stop_reason)
        else:
            log.info("stopped: %s", self._stop_reason)

    async def _open_unless_stopped(self) -> bool:
        """Open every component; False if a stop was requested first (opening is abandoned)."""
        if self._stop_requested.is_set():
            return False
        opening = asyncio.ensure_future(self._open_all())
        stop_wait = asyncio.ensure_future(self._stop_requested.wait())
        try:
            await asyncio.wait([opening, stop_wait], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_wait.cancel()
            if not opening.done():
                opening.cancel()
            await asyncio.gather(opening, stop_wait, return_exceptions=True)
        if opening.cancelled():
            return False
        error = opening.exception()
        if error is not None:
            raise error
        return True

    async def _open_all(self) -> None:
        # Sources first: their problems (a kubeconfig, an unreachable API server) are what the
        # user must hear about first, before any sink has created files or connections.
        for source in self.sources:
            log.debug("opening source %r", source.name)
            await _open_component(source, source.open())
        for lane in self.lanes:
            log.debug("opening sink %r", lane.name)
            await _open_component(lane.sink, lane.sink.open(_SinkContext(self, lane.sink)))
        names = ", ".join(t.name for t in self.transforms) or "none"
        log.debug("transforms in order: %s", names)
        self._choose_index()

    def _choose_index(self) -> None:
        """Keep the published index in the first sink's store (or ``--published-index-file``)."""
        if not self._index_wanted or not self.lanes:
            return
        full = [lane.name for lane in self.lanes if lane.sink.needs_full_state]
        if full:
            log.info(
                "no published index: sink %s writes complete snapshots and needs every object "
                "at start", ", ".join(map(repr, full)),
            )  # fmt: skip
            return
        store: IndexStore | None = None
        owner = self.lanes[0]
        if self._index_file:
            store = FileIndexStore(self._index_file)
        else:
            for lane in self.lanes:
                store = lane.sink.index_store()
                if store is not None:
                    owner = lane
                    break
        if store is None:
            log.debug("no published index: no sink keeps one (see --published-index-file)")
            return
        self.index = PublishedIndex(store, hold=self.synced)
        self.index_sink = owner.sink
        if not owner.sink.confirms_publication:
            owner.index = self.index
        log.info("published index: %s, following sink %r", store.description, owner.name)

    async def _close_all(self) -> None:
        components: list[Source | Sink] = [*self.sources, *(lane.sink for lane in self.lanes)]
        for component in components:
            try:
                await component.close()
            except MeshSyncError as exc:  # the component could not finish its job: say why
                self.stats.errors[component.name] += 1
                component.log.error("%s", exc)
                self.stop(str(exc), exc.exit_code or 1)
            except Exception:
                self.stats.errors[component.name] += 1
                log_failure(component.log, "%r failed to close", component.name)
                self.stop(f"{component.name!r} failed to close", 1)

    async def _run_source(self, source: Source) -> None:
        ctx = _SourceContext(self, source)
        try:
            await source.run(ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.stats.errors[source.name] += 1
            log_failure(source.log, "source %r failed", source.name)
            if source.name in self._unsynced:
                self.incomplete_sources.add(source.name)
            self._source_synced(source.name)  # a dead source must not hold readiness back
            raise exc

    def _source_synced(self, name: str) -> None:
        if name not in self._unsynced:
            return
        self._unsynced.discard(name)
        if not self._unsynced:
            self.stats.initial_sync_seconds = time.monotonic() - self._started_at
            self.synced.set()
            if not self.once:  # a long run: keep what the sync freed from staying in RSS
                # a second later, so that the sinks first hear about the sync
                asyncio.get_running_loop().call_later(1.0, release_free_memory)
            marker = synced_marker(name)
            for lane in self.lanes:
                try:
                    lane.queue.put_nowait(marker)
                except asyncio.QueueFull:
                    # Queue full: a task waits for room, and emit() waits for that task, so no
                    # event emitted after initial_sync_complete() can overtake the marker.
                    lane.marker_put = asyncio.ensure_future(self._put_marker(lane, marker))

    async def _put_marker(self, lane: _SinkLane, marker: Event) -> None:
        await lane.queue.put(marker)
        lane.marker_put = None

    async def _sink_worker(self, lane: _SinkLane) -> None:
        queue, sink, stats = lane.queue, lane.sink, self.stats
        batch: list[Event] = []
        while True:
            depth = queue.qsize()
            if depth > stats.max_queue_depth[lane.name]:
                stats.max_queue_depth[lane.name] = depth
            item = await queue.get()
            stop = item is _STOP
            synced = False
            if not stop:
                if item.type is EventType.SYNCED:  # type: ignore[attr-defined]
                    synced = True
                else:
                    batch.append(item)  # type: ignore[arg-type]
                while not stop and not synced and len(batch) < self.batch_size and queue.qsize():
                    item = queue.get_nowait()
                    if item is _STOP:
                        stop = True
                    elif item.type is EventType.SYNCED:  # type: ignore[attr-defined]
                        synced = True
                    else:
                        batch.append(item)  # type: ignore[arg-type]
            if batch:
                lane.delivering_since = time.monotonic()
                try:
                    await sink.deliver(batch)
                    stats.delivered[lane.name] += len(batch)
                    if lane.index is not None:
                        lane.index.record(batch)
                    for event in batch:
                        stats.delivered_by_type[lane.stat_keys[event.type]] += 1
                except Exception:
                    stats.errors[lane.name] += 1
                    log_failure(
                        sink.log, "sink %r failed to deliver %d event(s)", lane.name, len(batch)
                    )
                lane.delivering_since = 0.0
                batch = []
            if synced:
                try:
                    await sink.on_synced()
                except Exception:
                    stats.errors[lane.name] += 1
                    log_failure(sink.log, "sink %r failed in on_synced", lane.name)
                self._lanes_synced += 1
                if self.once and self._lanes_synced == len(self.lanes):
                    self.stop("initial sync complete (--once)")
            if stop:
                return

    async def _drain_sinks(self) -> None:
        """Let every sink deliver what is queued, bounded by ``shutdown_timeout``."""

        async def finish(lane: _SinkLane) -> None:
            await lane.queue.put(_STOP)
            if lane.task is not None:
                await lane.task

        lanes = [lane for lane in self.lanes if lane.task is not None]
        try:
            await asyncio.wait_for(
                asyncio.gather(*(finish(lane) for lane in lanes)), timeout=self.shutdown_timeout
            )
        except asyncio.TimeoutError:
            log.error("sinks did not finish within %gs; closing anyway", self.shutdown_timeout)
            for lane in lanes:
                if lane.task is not None:
                    lane.task.cancel()
            await asyncio.gather(
                *(lane.task for lane in lanes if lane.task), return_exceptions=True
            )

    def _install_signal_handlers(self) -> list[Callable[[], object]]:
        loop = asyncio.get_running_loop()
        removers: list[Callable[[], object]] = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(
                    signum, self.stop, f"received {signal.Signals(signum).name}"
                )
                removers.append(functools.partial(loop.remove_signal_handler, signum))
        return removers


def log_failure(logger: logging.Logger, message: str, *args: object) -> None:
    """Log the exception being handled as one line; its traceback only at debug level.

    Users see which plugin failed and why; plugin authors get the traceback with DEBUG=true.
    """
    exc = sys.exc_info()[1]
    reason = f"{type(exc).__name__}: {exc}" if exc is not None else "unknown error"
    logger.error(message + ": %s", *args, reason)
    logger.debug("traceback of the failure above", exc_info=True)


async def _open_component(component: Source | Sink, opening: object) -> None:
    try:
        await opening  # type: ignore[misc]
    except MeshSyncError:
        raise
    except Exception as exc:
        raise StartupError(f"{component.name}: {exc}") from exc
