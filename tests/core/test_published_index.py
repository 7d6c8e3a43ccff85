"""The core's published index: records what the owning sink published, in background batches;
a local file store that survives torn writes; damaged or foreign indexes degrade to the old
behaviour with one warning."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

import pytest

from meshsync_core import Engine, Event, Options, Sink, Source, SourceContext
from meshsync_core.published_index import (
    Changes,
    FileIndexStore,
    IndexRecord,
    IndexStore,
    IndexUnusable,
    PublishedIndex,
)
from meshsync_core.testing import (
    CaptureSink,
    make_deleted,
    make_event,
    make_modified,
    wait_until,
)

RECORD = IndexRecord("pods.v1.", "Pod", "default", "web", "7")


async def test_the_file_store_replays_puts_and_deletes(tmp_path: Path) -> None:
    store = FileIndexStore(tmp_path / "index")
    assert await store.load("c1") == {}  # missing: empty, not an error
    await store.write("c1", {"u1": RECORD, "u2": RECORD})
    await store.write("c2", {"u9": RECORD})
    await store.write("c1", {"u2": None})
    assert await store.load("c1") == {"u1": RECORD}
    assert await store.load("c2") == {"u9": RECORD}


async def test_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "index"
    store = FileIndexStore(path)
    await store.write("c1", {"u1": RECORD})
    with path.open("ab") as file:
        file.write(b'["c1","u2",["pods.v1.","Pod","def')  # killed in the middle of a write
    assert await store.load("c1") == {"u1": RECORD}


@pytest.mark.parametrize(
    "content",
    [b'{"format":"something-else"}\n', b"not json at all\n", b"\x00\x01\x02\n"],
    ids=["foreign", "text", "binary"],
)
async def test_a_foreign_file_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "index"
    path.write_bytes(content)
    with pytest.raises(IndexUnusable, match="not a MeshSync published index"):
        await FileIndexStore(path).load("c1")


async def test_a_damaged_line_is_refused_and_clear_starts_afresh(tmp_path: Path) -> None:
    path = tmp_path / "index"
    store = FileIndexStore(path)
    await store.write("c1", {"u1": RECORD})
    with path.open("ab") as file:
        file.write(b'["c1","u2",{"bad":1}]\n')
    with pytest.raises(IndexUnusable, match="line 3 is damaged"):
        await store.load("c1")
    await store.clear("c1")
    assert await store.load("c1") == {}


async def test_the_file_is_compacted_when_mostly_history(tmp_path: Path) -> None:
    path = tmp_path / "index"
    store = FileIndexStore(path)
    for version in range(3000):  # one object changed 3000 times
        await store.write("c1", {"u1": IndexRecord("pods.v1.", "Pod", "ns", "web", str(version))})
    assert len(path.read_bytes().splitlines()) == 3001
    assert (await store.load("c1"))["u1"].resource_version == "2999"
    assert len(path.read_bytes().splitlines()) == 2  # header + the live record
    assert (await store.load("c1"))["u1"].resource_version == "2999"


def test_records_decode_only_what_encode_wrote() -> None:
    assert IndexRecord.decode(RECORD.encode()) == RECORD
    for bad in (b"{}", b"[1,2,3,4,5]", b'["a","b"]', b"\xff"):
        with pytest.raises(IndexUnusable):
            IndexRecord.decode(bad)


class MemoryStore(IndexStore):
    """An in-memory store that can be told to fail."""

    description = "memory"

    def __init__(self) -> None:
        self.data: dict[str, dict[str, IndexRecord]] = {}
        self.writes: list[dict[str, IndexRecord | None]] = []
        self.fail_writes = 0
        self.unusable: IndexUnusable | None = None
        self.cleared: list[str] = []

    async def load(self, partition: str) -> dict[str, IndexRecord]:
        if self.unusable is not None:
            raise self.unusable
        return dict(self.data.get(partition, {}))

    async def write(self, partition: str, changes: Changes) -> None:
        if self.fail_writes:
            self.fail_writes -= 1
            raise OSError("disk full")
        self.writes.append(dict(changes))
        records = self.data.setdefault(partition, {})
        for uid, record in changes.items():
            if record is None:
                records.pop(uid, None)
            else:
                records[uid] = record

    async def clear(self, partition: str) -> None:
        self.cleared.append(partition)
        self.data.pop(partition, None)


async def test_records_are_batched_and_the_newest_change_wins() -> None:
    store = MemoryStore()
    index = PublishedIndex(store, flush_interval=60)
    added = make_event(name="web", cluster_id="c1")
    index.record([added, make_modified(added)])
    other = make_event(name="db", cluster_id="c1")
    index.record([other])
    assert store.writes == []  # nothing written on the event path
    await index.flush()
    assert len(store.writes) == 1 and len(store.writes[0]) == 2
    assert store.data["c1"][added.uid].resource_version != added.resource_version  # MODIFIED won
    index.record([make_deleted(added)])
    await index.close()
    assert store.data["c1"] == {other.uid: IndexRecord.of(other)}


async def test_a_failed_write_is_retried_with_newer_changes_winning(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="meshsync")
    store = MemoryStore()
    store.fail_writes = 1
    index = PublishedIndex(store, flush_interval=60)
    added = make_event(name="web", cluster_id="c1")
    index.record([added])
    await index.flush()  # fails: kept
    assert store.writes == [] and index.write_failures == 1
    deleted = make_deleted(added)
    index.record([deleted])
    await index.flush()
    assert store.data["c1"] == {}  # the delete, newer, won over the failed add
    assert sum("cannot write" in r.getMessage() for r in caplog.records) == 1


async def test_an_unusable_index_is_one_warning_and_cleared(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="meshsync")
    store = MemoryStore()
    store.unusable = IndexUnusable("a record is not JSON")
    index = PublishedIndex(store)
    assert await index.load("c1") is None
    assert store.cleared == ["c1"] and index.enabled
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "a record is not JSON" in warnings[0]


async def test_an_unreachable_index_stops_recording(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="meshsync")
    store = MemoryStore()
    store.unusable = IndexUnusable("JetStream is not enabled", reachable=False)
    index = PublishedIndex(store)
    assert await index.load("c1") is None
    assert not index.enabled and store.cleared == []
    index.record([make_event(name="web")])
    await index.close()
    assert store.writes == []


class RestoringSource(Source):
    """Emits its objects once and keeps what ``published_state`` returned."""

    name = "restoring"

    def __init__(self, events: Sequence[Event]) -> None:
        super().__init__(Options())
        self.events = list(events)
        self.restored: dict[str, IndexRecord] | None = None

    async def run(self, ctx: SourceContext) -> None:
        self.restored = await ctx.published_state("c1")
        for event in self.events:
            await ctx.emit(event)
        ctx.initial_sync_complete()
        await asyncio.Event().wait()


async def _run(sinks: Sequence[Sink], source: RestoringSource, **engine_options) -> None:
    engine = Engine([source], sinks, once=True, **engine_options)
    result = await asyncio.wait_for(engine.run(), 10)
    assert result.exit_code == 0, result.reason


async def test_the_engine_hands_the_index_of_the_last_run_to_the_source(tmp_path: Path) -> None:
    events = [make_event(name=f"pod-{i}", cluster_id="c1") for i in range(3)]
    first = RestoringSource(events)
    await _run(
        [CaptureSink()], first, published_index=True, published_index_file=str(tmp_path / "i")
    )
    assert first.restored == {}
    second = RestoringSource([])
    await _run(
        [CaptureSink()], second, published_index=True, published_index_file=str(tmp_path / "i")
    )
    assert second.restored == {e.uid: IndexRecord.of(e) for e in events}
    off = RestoringSource([])
    await _run(
        [CaptureSink()], off, published_index=False, published_index_file=str(tmp_path / "i")
    )
    assert off.restored is None  # --no-published-index: the source announces everything


class FailingSink(CaptureSink):
    """Raises for every batch: nothing it was given was published."""

    async def deliver(self, events: Sequence[Event]) -> None:
        raise RuntimeError("down")


async def test_only_what_the_sink_delivered_is_recorded(tmp_path: Path) -> None:
    events = [make_event(name="pod-0", cluster_id="c1")]
    await _run([FailingSink()], RestoringSource(events), published_index=True,
               published_index_file=str(tmp_path / "i"))  # fmt: skip
    second = RestoringSource([])
    await _run([CaptureSink()], second, published_index=True,
               published_index_file=str(tmp_path / "i"))  # fmt: skip
    assert second.restored == {}


class ConfirmingStoreSink(CaptureSink):
    """Keeps the index in its own store and confirms only what it says went out."""

    confirms_publication = True

    def __init__(self, store: IndexStore, confirm: bool) -> None:
        super().__init__()
        self.store = store
        self.confirm = confirm

    def index_store(self) -> IndexStore:
        return self.store

    async def deliver(self, events: Sequence[Event]) -> None:
        await super().deliver(events)
        if self.confirm:
            assert self.ctx is not None
            self.ctx.published(events)


@pytest.mark.parametrize("confirm", [True, False])
async def test_a_confirming_sink_decides_what_is_recorded(confirm: bool) -> None:
    store = MemoryStore()
    events = [make_event(name="pod-0", cluster_id="c1")]
    await _run([ConfirmingStoreSink(store, confirm)], RestoringSource(events), published_index=True)
    assert bool(store.data.get("c1")) is confirm


class SnapshotSink(CaptureSink):
    needs_full_state = True


async def test_a_sink_that_needs_every_object_turns_the_index_off(tmp_path: Path) -> None:
    source = RestoringSource([])
    await _run([CaptureSink(), SnapshotSink(name="snap")], source, published_index=True,
               published_index_file=str(tmp_path / "i"))  # fmt: skip
    assert source.restored is None


async def test_the_index_has_metrics(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from meshsync_core.health import EngineCollector

    events = [make_event(name=f"pod-{i}", cluster_id="c1") for i in range(3)]
    engine = Engine([RestoringSource(events)], [CaptureSink()], once=True, published_index=True,
                    published_index_file=str(tmp_path / "i"))  # fmt: skip
    assert (await asyncio.wait_for(engine.run(), 10)).exit_code == 0
    registry = CollectorRegistry()
    registry.register(EngineCollector(engine))
    text = generate_latest(registry).decode()
    assert "meshsync_published_index_written_total 3.0" in text
    assert "meshsync_published_index_write_failures_total 0.0" in text
    assert "meshsync_published_index_pending 0.0" in text


async def test_writes_wait_for_the_initial_sync_unless_a_batch_is_full() -> None:
    store = MemoryStore()
    synced = asyncio.Event()
    index = PublishedIndex(store, flush_interval=0.01, batch_limit=5, hold=synced)
    index.record([make_event(name=f"pod-{i}", cluster_id="c1") for i in range(3)])
    # Nothing to await for "not written": let several flush intervals pass.
    for _ in range(5):
        await asyncio.sleep(index.flush_interval)
    assert store.writes == []
    index.record([make_event(name=f"more-{i}", cluster_id="c1") for i in range(2)])  # 5: full
    await wait_until(lambda: store.writes, 5, "the full batch written")
    assert len(store.writes) == 1 and len(store.writes[0]) == 5
    synced.set()
    index.record([make_event(name="after", cluster_id="c1")])
    await wait_until(lambda: len(store.writes) == 2, 5, "the next interval's write")
    await index.close()
