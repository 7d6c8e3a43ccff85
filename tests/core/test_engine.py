"""The engine: fan-out, ordering, isolation of failing components, backpressure, shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from meshsync_core import (
    Engine,
    Event,
    EventType,
    Options,
    Sink,
    Source,
    SourceContext,
    StartupError,
    Transform,
)
from meshsync_core.testing import CaptureSink, MemorySource, make_event


def events(n: int, prefix: str = "pod") -> list[Event]:
    return [make_event(f"{prefix}-{i}") for i in range(n)]


async def test_every_sink_receives_every_event_in_order() -> None:
    a, b = CaptureSink(name="a"), CaptureSink(name="b")
    result = await Engine([MemorySource(events(50))], [a, b]).run()
    assert result.exit_code == 0
    assert a.names == b.names == [f"pod-{i}" for i in range(50)]
    assert a.closed and b.closed
    assert result.stats.delivered["a"] == result.stats.delivered["b"] == 50


async def test_on_synced_runs_after_the_initial_events_were_delivered() -> None:
    class OrderSink(CaptureSink):
        async def on_synced(self) -> None:
            self.seen_at_sync = len(self.events)
            await super().on_synced()

    sink = OrderSink()
    engine = Engine([MemorySource(events(1200))], [sink], batch_size=100)
    await engine.run()
    assert sink.seen_at_sync == 1200
    assert engine.synced.is_set()
    assert engine.stats.initial_sync_seconds is not None


async def test_a_raising_sink_is_isolated_and_counted(caplog) -> None:
    good = CaptureSink(name="good")
    bad = CaptureSink(name="bad", fail_on={"pod-3"})
    result = await Engine([MemorySource(events(10))], [good, bad], batch_size=1).run()
    assert result.exit_code == 0
    assert good.names == [f"pod-{i}" for i in range(10)]
    assert "pod-3" not in bad.names and len(bad.names) == 9
    assert result.stats.errors["bad"] == 1
    assert "sink 'bad' failed to deliver" in caplog.text


async def test_transforms_run_in_order_and_may_drop_or_replace() -> None:
    calls: list[str] = []

    class DropOdd(Transform):
        name = "drop-odd"
        order = 20

        def __call__(self, event: Event) -> Event | None:
            calls.append(self.name)
            return None if int(event.name.split("-")[1]) % 2 else event

    class Tag(Transform):
        name = "tag"
        order = 10

        def __call__(self, event: Event) -> Event | None:
            calls.append(self.name)
            obj = {**event.object, "tagged": True}
            return Event(event.type, obj, event.resource, event.source, event.cluster_id)

    sink = CaptureSink()
    result = await Engine(
        [MemorySource(events(4))], [sink], [DropOdd(Options()), Tag(Options())]
    ).run()
    assert calls[:2] == ["tag", "drop-odd"]
    assert sink.names == ["pod-0", "pod-2"]
    assert all(event.object["tagged"] for event in sink.events)
    assert result.stats.dropped_by_transform["drop-odd"] == 2


async def test_a_raising_transform_loses_only_that_event(caplog) -> None:
    class Picky(Transform):
        name = "picky"

        def __call__(self, event: Event) -> Event | None:
            if event.name == "pod-1":
                raise ValueError("cannot handle pod-1")
            return event

    sink = CaptureSink()
    result = await Engine([MemorySource(events(3))], [sink], [Picky(Options())]).run()
    assert sink.names == ["pod-0", "pod-2"]
    assert result.stats.errors["picky"] == 1
    assert "transform 'picky' failed on pods default/pod-1" in caplog.text


async def test_a_slow_sink_bounds_the_queue_and_slows_the_source() -> None:
    """Backpressure: the source can never be more than queue + batch ahead of the slow sink."""
    queue_size, batch_size = 20, 5
    slow = CaptureSink(name="slow", delay=0.001)
    fast = CaptureSink(name="fast")
    source = MemorySource(events(400))
    lead: list[int] = []

    class Watch(Sink):
        name = "watch"

        async def deliver(self, batch: Sequence[Event]) -> None:
            lead.append(source.emitted - len(slow.events))

    engine = Engine(
        [source], [slow, fast, Watch(Options())], queue_size=queue_size, batch_size=batch_size
    )
    result = await engine.run()
    assert len(slow.events) == len(fast.events) == 400
    assert result.stats.max_queue_depth["slow"] <= queue_size
    # emitted-but-undelivered events are in the queue or in the batch being delivered
    assert max(lead) <= queue_size + batch_size + 1


async def test_stop_after_ends_a_source_that_runs_forever() -> None:
    sink = CaptureSink()
    result = await Engine(
        [MemorySource(events(3), keep_running=True)], [sink], stop_after=0.2
    ).run()
    assert result.exit_code == 0
    assert "--stop-after" in result.reason
    assert sink.names == ["pod-0", "pod-1", "pod-2"] and sink.closed


async def test_once_stops_after_the_initial_state_reached_every_sink() -> None:
    a, b = CaptureSink(name="a"), CaptureSink(name="b", delay=0.001)
    result = await Engine(
        [MemorySource(events(30), keep_running=True)], [a, b], once=True, batch_size=4
    ).run()
    assert result.exit_code == 0
    assert "--once" in result.reason
    assert len(a.events) == len(b.events) == 30


async def test_stop_flushes_queued_events_before_closing() -> None:
    sink = CaptureSink(delay=0.002)
    engine = Engine([MemorySource(events(100), keep_running=True)], [sink], batch_size=10)
    task = asyncio.create_task(engine.run())
    await sink.synced.wait()
    engine.stop("test says stop")
    result = await task
    assert result.reason == "test says stop"
    assert len(sink.events) == 100 and sink.closed


async def test_a_sink_can_request_stop() -> None:
    class StopWhenSynced(CaptureSink):
        async def on_synced(self) -> None:
            assert self.ctx is not None
            self.ctx.request_stop("sink has what it needs")

    sink = StopWhenSynced()
    result = await Engine([MemorySource(events(2), keep_running=True)], [sink]).run()
    assert result.reason == "sink has what it needs"


async def test_startup_error_in_a_sink_gives_exit_2_and_closes_everything() -> None:
    class Unopenable(CaptureSink):
        async def open(self, ctx) -> None:  # type: ignore[override]
            raise StartupError("cannot write to /nope")

    other = CaptureSink(name="other")
    result = await Engine([MemorySource(events(2))], [other, Unopenable(name="bad")]).run()
    assert result.exit_code == 2
    assert result.reason == "cannot write to /nope"
    assert other.events == [] and other.closed


async def test_unexpected_open_failure_is_a_startup_error_naming_the_component() -> None:
    class Broken(Source):
        name = "broken"

        async def open(self) -> None:
            raise OSError("connection refused")

    result = await Engine([Broken(Options())], [CaptureSink()]).run()
    assert result.exit_code == 2
    assert result.reason == "broken: connection refused"


async def test_every_source_failing_ends_the_run_with_exit_1(caplog) -> None:
    class Crashing(Source):
        name = "crashing"

        async def run(self, ctx) -> None:  # type: ignore[override]
            await ctx.emit(make_event("only"))
            raise RuntimeError("lost the cluster")

    sink = CaptureSink()
    result = await Engine([Crashing(Options())], [sink]).run()
    assert result.exit_code == 1
    assert "lost the cluster" in result.reason
    assert sink.names == ["only"]
    assert "source 'crashing' failed" in caplog.text


async def test_on_synced_says_which_sources_failed_before_their_initial_sync() -> None:
    class Crashing(Source):
        name = "crashing"

        async def run(self, ctx) -> None:  # type: ignore[override]
            await ctx.emit(make_event("half"))
            raise RuntimeError("lost the cluster")

    class CrashingLater(Crashing):
        name = "crashing-later"

        async def run(self, ctx) -> None:  # type: ignore[override]
            ctx.initial_sync_complete()
            raise RuntimeError("lost the cluster later")

    seen: list[frozenset[str]] = []

    class Checking(CaptureSink):
        async def on_synced(self) -> None:
            assert self.ctx is not None
            seen.append(self.ctx.incomplete_sources)
            await super().on_synced()

    fine = MemorySource([make_event("ok")], keep_running=True)
    sources = [Crashing(Options()), CrashingLater(Options()), fine]
    engine = Engine(sources, [Checking()], once=True)
    result = await engine.run()
    assert result.exit_code == 0 and result.reason == "initial sync complete (--once)"
    assert seen == [frozenset({"crashing"})]

    seen.clear()
    await Engine([MemorySource([make_event("ok")])], [Checking()]).run()
    assert seen == [frozenset()]


async def test_sinks_reach_sources_for_current_state_and_resync() -> None:
    class Redact(Transform):
        name = "redact"

        def __call__(self, event: Event) -> Event | None:
            obj = {**event.object, "secret": "[REDACTED]"}
            return Event(event.type, obj, event.resource, event.source, event.cluster_id)

    history = [
        make_event("a"),
        make_event("b"),
    ]
    history.append(Event(EventType.DELETED, history[0].object, history[0].resource))
    source = MemorySource(history, keep_running=True)
    sink = CaptureSink()
    engine = Engine([source], [sink], [Redact(Options())])
    task = asyncio.create_task(engine.run())
    await sink.synced.wait()
    assert sink.ctx is not None and sink.ctx.synced
    state = [event async for event in sink.ctx.current_state()]
    await sink.ctx.request_resync()
    engine.stop()
    await task
    assert [(e.type, e.name, e.object["secret"]) for e in state] == [
        (EventType.ADDED, "b", "[REDACTED]")
    ]
    assert source.resyncs == 1


async def test_readiness_needs_synced_sources_and_ready_sinks() -> None:
    class NotReady(CaptureSink):
        @property
        def ready(self) -> bool:
            return False

    ready_sink, unready_sink = CaptureSink(name="r"), NotReady(name="u")
    e1 = Engine([MemorySource(events(1), keep_running=True)], [ready_sink], stop_after=5)
    e2 = Engine([MemorySource(events(1), keep_running=True)], [unready_sink], stop_after=5)
    assert not e1.ready
    t1, t2 = asyncio.create_task(e1.run()), asyncio.create_task(e2.run())
    await ready_sink.synced.wait()
    await unready_sink.synced.wait()
    assert e1.ready and not e2.ready
    e1.stop()
    e2.stop()
    await asyncio.gather(t1, t2)


async def test_a_sink_can_fail_the_run_with_a_reason() -> None:
    class Fatal(CaptureSink):
        async def on_synced(self) -> None:
            assert self.ctx is not None
            self.ctx.request_stop("disk full", exit_code=1)

    result = await Engine([MemorySource(events(2), keep_running=True)], [Fatal()]).run()
    assert (result.exit_code, result.reason) == (1, "disk full")


async def test_a_sink_that_cannot_finish_on_close_fails_the_run() -> None:
    class CannotFinish(CaptureSink):
        async def close(self) -> None:
            raise StartupError("snapshot not written: No space left on device")

    result = await Engine([MemorySource(events(2))], [CannotFinish(), CaptureSink(name="ok")]).run()
    assert result.exit_code == 2
    assert result.reason == "snapshot not written: No space left on device"


async def test_sinks_can_tell_whether_any_source_lists_its_state() -> None:
    class NoState(Source):
        name = "nostate"

        async def run(self, ctx) -> None:  # type: ignore[override]
            ctx.initial_sync_complete()

    with_state, without = CaptureSink(name="a"), CaptureSink(name="b")
    await Engine([MemorySource(events(1))], [with_state]).run()
    await Engine([NoState(Options())], [without]).run()
    assert with_state.ctx is not None and with_state.ctx.supports_current_state
    assert without.ctx is not None and not without.ctx.supports_current_state


async def test_events_after_the_initial_sync_never_overtake_the_marker() -> None:
    """Even with full queues, on_synced sees exactly the events emitted before the signal."""

    class ThenMore(MemorySource):
        async def run(self, ctx: SourceContext) -> None:  # type: ignore[override]
            for event in self.events:
                await ctx.emit(event)
            ctx.initial_sync_complete()
            for i in range(50):
                await ctx.emit(make_event(f"after-{i}"))

    class Marks(CaptureSink):
        async def on_synced(self) -> None:
            self.at_sync = list(self.names)
            await super().on_synced()

    for queue_size in (1, 3, 1000):
        sink = Marks(delay=0.0005)
        await Engine(
            [ThenMore(events(20, "before"))], [sink, CaptureSink(name="other")],
            queue_size=queue_size, batch_size=2,
        ).run()  # fmt: skip
        assert sink.at_sync == [f"before-{i}" for i in range(20)], queue_size
        assert len(sink.events) == 70
