"""The published index: what the sinks last published of every object, kept where it outlives
the process.

Why: a MeshSync that restarts (a crash, an OOM kill, a rolling update) otherwise forgets what it
had published, so an object deleted while no MeshSync ran never gets a ``DELETED`` and the
consumer keeps it forever. With the index a source compares the cluster with what was published
and emits only the difference: ``DELETED`` for what vanished, ``MODIFIED`` for what changed,
``ADDED`` for what is new, nothing for the rest.

Who does what:

* a sink offers the storage (:meth:`Sink.index_store`; the NATS sink: a JetStream key-value
  bucket), or ``--published-index-file`` names a local file (:class:`FileIndexStore`);
* the engine records what that sink has published - after ``deliver`` returns, or when the sink
  confirms it (:meth:`SinkContext.published`) - in batches written in the background, never on
  the event path (:class:`PublishedIndex`);
* a source reads it once at start (:meth:`SourceContext.published_state`) and diffs its first
  list against it.

A lost index write costs a duplicate event after a restart, never a missing one: a record is
written only after its event was published. A corrupt, foreign or unreachable index is one
warning, and the run goes on as without one (everything announced as ``ADDED``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson

from meshsync_core.errors import MeshSyncError
from meshsync_core.events import CHANGE_TYPES, Event, EventType
from meshsync_core.logs import RateLimitedLog

log = logging.getLogger("meshsync.index")

#: The partition for events without a cluster id.
DEFAULT_PARTITION = "default"


def partition_of(cluster_id: str) -> str:
    """The index partition of a cluster: its id, or ``default`` when it has none."""
    return cluster_id or DEFAULT_PARTITION


class IndexUnusable(MeshSyncError):
    """The stored index cannot be read (corrupt, written by something else, unreachable)."""

    def __init__(self, message: str, *, reachable: bool = True) -> None:
        super().__init__(message)
        #: False when the storage itself is not there (JetStream off): stop recording too.
        self.reachable = reachable


@dataclass(frozen=True, slots=True)
class IndexRecord:
    """One published object: enough to recognise it unchanged and to announce its deletion."""

    #: The event's ``Resource.key`` (``deployments.v1.apps``).
    resource: str
    kind: str
    namespace: str
    name: str
    resource_version: str

    @classmethod
    def of(cls, event: Event) -> IndexRecord:
        """The record of a published event (from its identity: the object is not decoded)."""
        res = event.resource
        return cls(res.key, res.kind, event.namespace, event.name, event.resource_version)

    def encode(self) -> bytes:
        """A compact JSON array (about 100 bytes for a Pod)."""
        return orjson.dumps(
            [self.resource, self.kind, self.namespace, self.name, self.resource_version]
        )

    @classmethod
    def decode(cls, data: bytes | str) -> IndexRecord:
        """Raises :class:`IndexUnusable` for anything :meth:`encode` did not write."""
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise IndexUnusable("a record is not JSON") from None
        shaped = isinstance(value, list) and len(value) == 5
        if not (shaped and all(isinstance(v, str) for v in value)):
            raise IndexUnusable("a record is not a MeshSync index record")
        return cls(*value)


#: What a store writes in one go: uid -> its record, or None for a deleted object.
Changes = Mapping[str, "IndexRecord | None"]


class IndexStore(ABC):
    """Where an index lives. Implement it in a sink package and return it from
    :meth:`Sink.index_store`; records are grouped in partitions (one per cluster)."""

    #: What and where it is, for log lines ("JetStream key-value bucket meshsync-index").
    description: str = "an index store"

    @abstractmethod
    async def load(self, partition: str) -> dict[str, IndexRecord]:
        """Every record of the partition by uid; empty when nothing was stored yet.

        Raise :class:`IndexUnusable` when what is stored is not a MeshSync index or is damaged.
        """

    @abstractmethod
    async def write(self, partition: str, changes: Changes) -> None:
        """Store these records (None: forget the uid). Raise any exception on failure; the
        changes are kept and written again with the next batch."""

    @abstractmethod
    async def clear(self, partition: str) -> None:
        """Forget the partition (after it could not be read), so that it is rebuilt."""

    async def close(self) -> None:  # noqa: B027 - optional, unlike the others
        """Release what the store holds (the engine calls it after the last write)."""


class PublishedIndex:
    """The engine's side: records published events and writes them in batches.

    ``record`` only updates a dict (a few hundred nanoseconds per event); a background task
    writes what accumulated every ``flush_interval`` seconds, or sooner when ``batch_limit``
    records wait, so the change stream never waits for the storage. Until ``hold`` is set (the
    engine's initial sync), it writes only full batches: the storage's work (a JetStream server
    storing a message per object) then competes with the initial sync only for very large
    clusters, and the index is complete about a second after the sync.
    """

    def __init__(
        self,
        store: IndexStore,
        *,
        flush_interval: float = 1.0,
        batch_limit: int = 100_000,
        hold: asyncio.Event | None = None,
    ) -> None:
        self.store = store
        self.flush_interval = flush_interval
        self.batch_limit = batch_limit
        self.hold = hold
        #: (partition, uid) -> record or None, not yet written; a newer change replaces an older.
        self._pending: dict[tuple[str, str], IndexRecord | None] = {}
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()
        self.enabled = True
        self.written = 0
        self.write_failures = 0
        self._limited = RateLimitedLog(log)

    @property
    def pending(self) -> int:
        """Records recorded and not yet written."""
        return len(self._pending)

    async def load(self, partition: str) -> dict[str, IndexRecord] | None:
        """The partition's records, or None (with one warning) when they cannot be used."""
        if not self.enabled:
            return None
        started = time.monotonic()
        try:
            records = await self.store.load(partition)
        except IndexUnusable as exc:
            await self._unusable(partition, str(exc), exc.reachable)
            return None
        except Exception as exc:  # a store bug or an I/O error: the run goes on without
            await self._unusable(partition, f"{type(exc).__name__}: {exc}", True)
            return None
        log.info(
            "published index: %d object(s) of partition %s read from %s in %.2fs",
            len(records), partition, self.store.description, time.monotonic() - started,
        )  # fmt: skip
        return records

    async def _unusable(self, partition: str, why: str, reachable: bool) -> None:
        """One warning; clear what is ours so that this run rebuilds it. The caller then
        behaves as without an index."""
        log.warning(
            "published index in %s cannot be used (%s): announcing every object as ADDED, "
            "as without an index", self.store.description, why,
        )  # fmt: skip
        if not reachable:
            self.enabled = False  # nothing could be written there either
            return
        try:
            await self.store.clear(partition)  # rebuilt from what this run publishes
        except Exception as exc:
            log.warning("published index: cannot clear %s (%s): not keeping it", partition, exc)
            self.enabled = False

    def record(self, events: Iterable[Event]) -> None:
        """Note events as published (changes only; markers and uid-less objects are skipped)."""
        if not self.enabled:
            return
        pending = self._pending
        deleted = EventType.DELETED
        for event in events:
            if event.type not in CHANGE_TYPES:
                continue
            uid = event.uid
            if not uid:
                continue
            key = (event.cluster_id or DEFAULT_PARTITION, uid)
            pending[key] = None if event.type is deleted else IndexRecord.of(event)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_loop(), name="published-index")
        if len(pending) >= self.batch_limit:
            self._wake.set()

    async def _flush_loop(self) -> None:
        while self.enabled:
            # Woken by a full batch, or the interval passed: write what accumulated. (Not
            # asyncio.wait_for: before Python 3.12 it can drop the cancellation close() sends.)
            woken = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait([woken], timeout=self.flush_interval)
            finally:
                woken.cancel()
            self._wake.clear()
            held = self.hold is not None and not self.hold.is_set()
            if held and len(self._pending) < self.batch_limit:
                continue  # the initial sync goes first (see the class docstring)
            await self.flush()

    async def flush(self, *, retry_for: float = 0.0) -> None:
        """Write everything recorded so far (a failed write is kept for the next one); with
        ``retry_for``, keep trying that many seconds (at shutdown, while a JetStream stream
        elects a new leader)."""
        deadline = time.monotonic() + retry_for
        await self._flush_once()
        while self._pending and self.enabled and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            await self._flush_once()

    async def _flush_once(self) -> None:
        async with self._write_lock:
            if not self._pending or not self.enabled:
                return
            pending, self._pending = self._pending, {}
            by_partition: dict[str, dict[str, IndexRecord | None]] = {}
            for (partition, uid), record in pending.items():
                by_partition.setdefault(partition, {})[uid] = record
            for partition, changes in by_partition.items():
                try:
                    await self.store.write(partition, changes)
                    self.written += len(changes)
                except Exception as exc:
                    self.write_failures += 1
                    # Newer changes recorded meanwhile win over these older ones.
                    for uid, record in changes.items():
                        self._pending.setdefault((partition, uid), record)
                    self._limited.warning(
                        "published index: cannot write to %s (%s); retrying",
                        self.store.description, exc, key="write",
                    )  # fmt: skip

    async def close(self) -> None:
        """Write what is left, stop the background task and close the store."""
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self.flush()
        try:
            await self.store.close()
        except Exception as exc:
            log.warning("published index: closing %s failed: %s", self.store.description, exc)


_FILE_HEADER = {"format": "meshsync-published-index", "version": 1}


class FileIndexStore(IndexStore):
    """A local file: a header line, then one JSON line per change, replayed on load.

    Appending keeps a write proportional to the changes; the file is rewritten compactly at
    load when it holds more than twice as many lines as live records. A torn last line (the
    process killed in the middle of a write) is ignored.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.description = f"file {str(self.path)!r}"

    async def load(self, partition: str) -> dict[str, IndexRecord]:
        """Replay the file (in a thread); a missing file is an empty index."""
        return await asyncio.to_thread(self._load, partition)

    def _load(self, partition: str) -> dict[str, IndexRecord]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise IndexUnusable(f"cannot read it: {exc.strerror or exc}") from None
        lines = data.split(b"\n")
        if data and not data.endswith(b"\n"):
            lines.pop()  # torn by a kill during the last append: that change is re-sent
        if not lines or not lines[0]:
            return {}
        try:
            header = orjson.loads(lines[0])
        except orjson.JSONDecodeError:
            header = None
        if header != _FILE_HEADER:
            raise IndexUnusable("the file is not a MeshSync published index (version 1)")
        every: dict[str, dict[str, IndexRecord]] = {}
        count = 0
        for number, line in enumerate(lines[1:], start=2):
            if not line:
                continue
            count += 1
            try:
                part, uid, value = orjson.loads(line)
                record = None if value is None else IndexRecord(*value)
            except (orjson.JSONDecodeError, TypeError, ValueError):
                raise IndexUnusable(f"line {number} is damaged") from None
            records = every.setdefault(part, {})
            if record is None:
                records.pop(uid, None)
            else:
                records[uid] = record
        if count > 2 * sum(map(len, every.values())) + 1000:
            self._rewrite(every)
        return every.get(partition, {})

    def _rewrite(self, every: Mapping[str, Mapping[str, IndexRecord]]) -> None:
        lines = [orjson.dumps(_FILE_HEADER)]
        for part, records in every.items():
            lines += [_line(part, uid, record) for uid, record in records.items()]
        temp = self.path.with_name(self.path.name + ".tmp")
        temp.write_bytes(b"\n".join(lines) + b"\n")
        os.replace(temp, self.path)

    async def write(self, partition: str, changes: Changes) -> None:
        """Append one line per change, in one ``write`` call (in a thread)."""
        await asyncio.to_thread(self._append, partition, changes)

    def _append(self, partition: str, changes: Changes) -> None:
        lines = [_line(partition, uid, record) for uid, record in changes.items()]
        with self.path.open("ab") as file:
            if file.tell() == 0:
                file.write(orjson.dumps(_FILE_HEADER) + b"\n")
            file.write(b"\n".join(lines) + b"\n")  # one write call: torn only by a crash

    async def clear(self, partition: str) -> None:
        """Start the file afresh: a damaged file cannot be split by partition."""
        await asyncio.to_thread(self._rewrite, {})


def _line(partition: str, uid: str, record: IndexRecord | None) -> bytes:
    value = None if record is None else [
        record.resource, record.kind, record.namespace, record.name, record.resource_version
    ]  # fmt: skip
    return orjson.dumps([partition, uid, value])
