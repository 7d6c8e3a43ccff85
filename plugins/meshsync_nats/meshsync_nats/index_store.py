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
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import api as js_api
from nats.js.kv import KeyValue

from meshsync_core import Changes, IndexRecord, IndexStore, IndexUnusable
from meshsync_nats.protocol import CRLF, block_writer, hpub_header, pub_header

FORMAT_KEY = "_meshsync.format"
FORMAT = b"meshsync-published-index/1"
_KEY_UNSAFE = re.compile(r"[^-/_=a-zA-Z0-9]")
#: Delete markers older than this are purged at start (a newer one may still be read by a
#: replica that is loading right now).
PURGE_DELETES_AFTER = 3600


class IndexWriteIncomplete(Exception):
    """Some writes of a batch did not reach the bucket."""


#: Records per block handed to nats-py at once (about 170 KB).
_CHUNK = 1000
_DELETE_HEADERS = b"NATS/1.0\r\nKV-Operation: DEL\r\n\r\n"


def _pub_block(prefix: str, items: list[tuple[str, IndexRecord | None]]) -> tuple[bytes, int]:
    """The NATS protocol for publishing these records (PUB, or HPUB with the KV delete header),
    exactly what ``publish`` would write for each, and the payload bytes in it; subjects are
    made of safe tokens."""
    parts: list[bytes] = []
    size = 0
    for uid, record in items:
        subject = (prefix + _token(uid)).encode()
        if record is None:
            parts += (hpub_header(subject, _DELETE_HEADERS, 0), _DELETE_HEADERS, CRLF)
        else:
            payload = record.encode()
            size += len(payload)
            parts += (pub_header(subject, len(payload)), payload, CRLF)
    return b"".join(parts), size


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
        purge_deletes_after: float = PURGE_DELETES_AFTER,
    ) -> None:
        self.nc = nc
        self.bucket = bucket
        self.replicas = replicas
        self._connected = connected
        self.purge_deletes_after = purge_deletes_after
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
        records, markers = await self._read_all(_token(partition))
        if markers and self._purger is None:
            self._purger = asyncio.create_task(self._purge(markers), name="nats:index-purge")
        return records

    async def _read_all(self, partition: str) -> tuple[dict[str, IndexRecord], list[Msg]]:
        """Every live key of the partition through one ephemeral push consumer (last value per
        key, no acks): about 4x faster than nats-py's ``KeyValue.watch``, which builds an
        ``Entry`` and goes through a queue per key."""
        prefix = f"$KV.{self.bucket}.{partition}."
        records: dict[str, IndexRecord] = {}
        markers: list[Msg] = []
        done = asyncio.get_running_loop().create_future()
        expected = [-1]
        received = [0]
        cut = len(prefix)
        decode = IndexRecord.decode

        async def on_message(msg: Msg) -> None:
            received[0] += 1
            if msg.headers:  # a delete or purge marker carries a KV-Operation header
                markers.append(msg)
            else:
                try:
                    records[msg.subject[cut:]] = decode(msg.data)
                except IndexUnusable as exc:
                    if not done.done():
                        done.set_exception(exc)
            if received[0] == expected[0] and not done.done():
                done.set_result(None)

        inbox = self.nc.new_inbox()
        sub = await self.nc.subscribe(inbox, cb=on_message, pending_msgs_limit=-1,
                                      pending_bytes_limit=-1)  # fmt: skip
        jsm = self.nc.jsm()
        stream = f"KV_{self.bucket}"
        consumer = None
        try:
            consumer = await jsm.add_consumer(
                stream,
                deliver_subject=inbox,
                deliver_policy=js_api.DeliverPolicy.LAST_PER_SUBJECT,
                ack_policy=js_api.AckPolicy.NONE,
                filter_subject=prefix + ">",
                inactive_threshold=60.0,  # gone by itself should this process die meanwhile
            )
            expected[0] = consumer.num_pending or 0
            if received[0] >= expected[0] and not done.done():
                done.set_result(None)
            while not done.done():
                before = received[0]
                await asyncio.wait([done], timeout=30.0)
                if not done.done() and received[0] == before:
                    raise IndexUnusable(f"reading the bucket stalled at {before} of {expected[0]}")
            done.result()
        finally:
            await sub.unsubscribe()
            if consumer is not None:
                with contextlib.suppress(Exception):
                    await jsm.delete_consumer(stream, consumer.name)
        return records, markers

    async def _purge(self, markers: list[Msg]) -> None:
        """Purge delete markers older than an hour (not nats-py's ``purge_deletes``: it leaves
        its watcher running, which then queues every later write of the bucket in memory)."""
        jsm = self.nc.jsm()
        stream = f"KV_{self.bucket}"
        now = time.time()
        try:
            for msg in markers:
                if now - msg.metadata.timestamp.timestamp() >= self.purge_deletes_after:
                    await jsm.purge_stream(stream, subject=msg.subject)
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
        send = block_writer(self.nc)
        if send is None:  # a nats-py without it: one publish per key (about 6x the CPU)
            for uid, record in changes.items():
                if record is None:
                    await publish(prefix + _token(uid), b"", headers=deleted)
                else:
                    await publish(prefix + _token(uid), record.encode())
        else:
            items = list(changes.items())
            for start in range(0, len(items), _CHUNK):
                if not self.nc.is_connected:
                    raise IndexWriteIncomplete("disconnected from NATS")
                # Plain publishes into the bucket's stream, written into nats-py's output
                # buffer as one block: no round trip per key and no coroutine per key (26 -> 4
                # us of CPU per record, measured: docs/performance.md).
                chunk = items[start : start + _CHUNK]
                block, size = _pub_block(prefix, chunk)
                await send(block, len(chunk), size)
            await self.nc.flush()
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
