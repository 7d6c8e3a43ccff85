"""The published index in a JetStream key-value bucket (see ``meshsync_core.published_index``).

One key per object, ``<partition>.<uid>`` (the partition is the cluster id), holding its
:class:`~meshsync_core.published_index.IndexRecord`; a key ``_meshsync.format`` marks the
bucket as ours. The bucket keeps one revision per key (``history=1``) and is created on first
use with ``--nats-index-replicas`` replicas, so it survives the loss of a NATS node like the
stream does.

Writes are plain publishes to the bucket's subjects (``$KV.<bucket>.<key>``), not one
acknowledged ``put`` per key: a batch of 100,000 records costs what publishing them costs, and
acknowledged writes of the format key before and after them tell, by the stream sequence,
whether the bucket stored all of them (a batch with losses is written again). Deleted
objects leave delete markers; markers older than an hour are purged at every start.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js import api as js_api
from nats.js.kv import KeyValue

from meshsync_core.published_index import Changes, IndexRecord, IndexStore, IndexUnusable

FORMAT_KEY = "_meshsync.format"
FORMAT = b"meshsync-published-index/1"
_KEY_UNSAFE = re.compile(r"[^-/_=a-zA-Z0-9]")
#: Delete markers older than this are purged at start (a newer one may still be read by a
#: replica that is loading right now).
PURGE_DELETES_AFTER = 3600


class IndexWriteIncomplete(Exception):
    """Some writes of a batch did not reach the bucket."""


def _token(text: str) -> str:
    """One key token: what a key may not hold (dots split tokens) becomes ``_``."""
    return _KEY_UNSAFE.sub("_", text) or "_"


class KvIndexStore(IndexStore):
    """The index of the NATS sink, in bucket ``bucket`` on the sink's connection."""

    def __init__(
        self,
        nc: NATS,
        bucket: str,
        replicas: int,
        *,
        connected: Callable[[], Awaitable[bool]],
        log: logging.Logger,
    ) -> None:
        self.nc = nc
        self.bucket = bucket
        self.replicas = replicas
        self._connected = connected
        self.log = log
        self.description = f"JetStream key-value bucket {bucket!r}"
        self._kv: KeyValue | None = None
        self._purger: asyncio.Task[None] | None = None

    async def _bucket(self) -> KeyValue:
        if self._kv is not None:
            return self._kv
        if not await self._connected():
            raise IndexUnusable("not connected to NATS", reachable=False)
        js = self.nc.jetstream()
        try:
            kv = await js.key_value(self.bucket)
        except nats.js.errors.BucketNotFoundError:
            kv = await self._create(js)
        except nats.errors.NoRespondersError:
            raise IndexUnusable(
                "JetStream is not enabled on this server", reachable=False
            ) from None
        except nats.js.errors.ServiceUnavailableError:
            raise IndexUnusable(
                "JetStream is not enabled on this server", reachable=False
            ) from None
        self._kv = kv
        return kv

    async def _create(self, js: nats.js.JetStreamContext) -> KeyValue:
        try:
            kv = await js.create_key_value(
                bucket=self.bucket,
                history=1,
                replicas=self.replicas,
                storage=js_api.StorageType.FILE,
                description="MeshSync: what was published of every object (uid -> version)",
            )
        except Exception as exc:  # more replicas than servers, no JetStream, no permission
            raise IndexUnusable(
                f"cannot create the bucket with {self.replicas} replica(s): {exc}",
                reachable=False,
            ) from None
        await kv.put(FORMAT_KEY, FORMAT)
        self.log.info(
            "created JetStream key-value bucket %s (%d replica(s)) for the published index",
            self.bucket, self.replicas,
        )  # fmt: skip
        return kv

    async def load(self, partition: str) -> dict[str, IndexRecord]:
        kv = await self._bucket()
        try:
            marker = await kv.get(FORMAT_KEY)
        except nats.js.errors.KeyNotFoundError:
            marker = None
        if marker is None or marker.value != FORMAT:
            status = await kv.status()
            if status.values:  # something else's keys (or a newer format)
                raise IndexUnusable(f"bucket {self.bucket!r} is not a MeshSync index (version 1)")
            await kv.put(FORMAT_KEY, FORMAT)
            return {}
        records: dict[str, IndexRecord] = {}
        watcher = await kv.watch(f"{_token(partition)}.>", ignore_deletes=True)
        try:
            prefix = len(_token(partition)) + 1
            while True:
                entry = await watcher.updates(timeout=30.0)
                if entry is None:  # the initial values are done
                    break
                if entry.value is None or entry.operation is not None:
                    continue  # a delete or purge marker
                records[entry.key[prefix:]] = IndexRecord.decode(entry.value)
        finally:
            await watcher.stop()
        if self._purger is None:
            self._purger = asyncio.create_task(self._purge_deletes(kv), name="nats:index-purge")
        return records

    async def _purge_deletes(self, kv: KeyValue) -> None:
        try:
            await kv.purge_deletes(olderthan=PURGE_DELETES_AFTER)
        except Exception as exc:  # a housekeeping miss: the markers are purged next start
            self.log.debug("published index: purging old delete markers failed: %s", exc)

    async def write(self, partition: str, changes: Changes) -> None:
        kv = await self._bucket()
        prefix = f"$KV.{self.bucket}.{_token(partition)}."
        publish = self.nc.publish
        deleted = {"KV-Operation": "DEL"}
        # Two acknowledged writes of the format key around the batch: the stream sequence
        # between them tells whether the stream stored every plain publish in between (a stream
        # leader dying mid-batch drops some silently).
        before = await kv.put(FORMAT_KEY, FORMAT)
        for uid, record in changes.items():
            # Plain publishes into the bucket's stream: no round trip per key.
            if record is None:
                await publish(prefix + _token(uid), b"", headers=deleted)
            else:
                await publish(prefix + _token(uid), record.encode())
        after = await kv.put(FORMAT_KEY, FORMAT)
        stored = after - before - 1
        if stored < len(changes):
            # Raised: the whole batch is written again (the same values: idempotent).
            raise IndexWriteIncomplete(
                f"the bucket stored {max(stored, 0)} of {len(changes)} writes "
                "(a stream leader change?)"
            )

    async def clear(self, partition: str) -> None:
        kv = await self._bucket()
        jsm = self.nc.jsm()
        stream = f"KV_{self.bucket}"
        try:
            marker = await kv.get(FORMAT_KEY)
        except nats.js.errors.KeyNotFoundError:
            marker = None
        if marker is None or marker.value != FORMAT:
            # Not ours: leave it alone and keep no index this run.
            raise IndexUnusable(f"bucket {self.bucket!r} belongs to something else")
        await jsm.purge_stream(stream, subject=f"$KV.{self.bucket}.{_token(partition)}.>")

    async def close(self) -> None:
        if self._purger is not None:
            self._purger.cancel()
            await asyncio.gather(self._purger, return_exceptions=True)
