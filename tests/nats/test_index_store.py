"""The published index in a JetStream key-value bucket, against a real nats-server: what is
written is read back, partitions stay apart, delete markers are purged, and a bucket that is
not ours or a server without JetStream is refused with a clear reason."""

from __future__ import annotations

import asyncio
import logging

import nats
import pytest
from meshsync_nats.index_store import FORMAT_KEY, KvIndexStore
from meshsync_testkit.nats_server import NatsServer

from meshsync_core.published_index import IndexRecord, IndexUnusable


def _record(name: str, version: str = "1") -> IndexRecord:
    return IndexRecord("pods.v1.", "Pod", "default", name, version)


async def _store(url: str, **options) -> tuple[nats.NATS, KvIndexStore]:
    nc = await nats.connect(url)

    async def connected() -> bool:
        return nc.is_connected

    store = KvIndexStore(nc, "meshsync-index", 1, connected=connected,
                         log=logging.getLogger("test"), **options)  # fmt: skip
    return nc, store


async def test_writes_are_read_back_by_partition(jetstream_server: NatsServer) -> None:
    nc, store = await _store(jetstream_server.url)
    try:
        assert await store.load("cluster-a") == {}  # creates the bucket
        changes = {f"uid-{i}": _record(f"pod-{i}") for i in range(2500)}  # several blocks
        await store.write("cluster-a", changes)
        await store.write("cluster-b", {"uid-b": _record("other")})
        await store.write("cluster-a", {"uid-0": None, "uid-1": _record("pod-1", "2")})
        loaded = await store.load("cluster-a")
        assert len(loaded) == 2499 and "uid-0" not in loaded
        assert loaded["uid-1"].resource_version == "2"
        assert await store.load("cluster-b") == {"uid-b": _record("other")}
        await store.clear("cluster-a")
        assert await store.load("cluster-a") == {}
        assert await store.load("cluster-b") == {"uid-b": _record("other")}
    finally:
        await store.close()
        await nc.close()


async def test_delete_markers_are_purged(jetstream_server: NatsServer) -> None:
    nc, store = await _store(jetstream_server.url, purge_deletes_after=0)
    try:
        await store.load("c")
        await store.write("c", {f"uid-{i}": _record(f"pod-{i}") for i in range(10)})
        await store.write("c", {f"uid-{i}": None for i in range(8)})
        info = await nc.jsm().stream_info("KV_meshsync-index")
        assert info.state.messages == 11  # 2 records, 8 markers, the format key
        assert len(await store.load("c")) == 2  # starts purging in the background
        for _ in range(200):
            info = await nc.jsm().stream_info("KV_meshsync-index")
            if info.state.messages == 3:
                break
            await asyncio.sleep(0.05)
        assert info.state.messages == 3  # the markers are gone
        assert len(await store.load("c")) == 2
    finally:
        await store.close()
        await nc.close()


async def test_a_bucket_that_is_not_ours_is_refused_and_left_alone(
    jetstream_server: NatsServer,
) -> None:
    nc, store = await _store(jetstream_server.url)
    try:
        kv = await nc.jetstream().create_key_value(bucket="meshsync-index")
        await kv.put("someone.else", b"their data")
        with pytest.raises(IndexUnusable, match="not a MeshSync index"):
            await store.load("c")
        with pytest.raises(IndexUnusable, match="belongs to something else"):
            await store.clear("c")
        assert (await kv.get("someone.else")).value == b"their data"
        with pytest.raises(nats.js.errors.KeyNotFoundError):
            await kv.get(FORMAT_KEY)
    finally:
        await nc.close()


async def test_a_server_without_jetstream_is_unreachable_storage(tmp_path) -> None:
    with NatsServer(tmp_path / "plain") as server:
        nc, store = await _store(server.url)
        try:
            with pytest.raises(IndexUnusable, match="JetStream is not enabled") as caught:
                await store.load("c")
            assert caught.value.reachable is False
        finally:
            await nc.close()
