"""JetStream mode against a 3-node nats-server cluster: ``kill -9`` of the stream leader and of
the node the sink is connected to, during steady churn, loses and duplicates nothing, and the
client fails over between the servers of a multi-URL ``BROKER_URL``."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import nats
import nats.js.errors
import pytest
from meshsync_nats import wire
from meshsync_nats.index_store import KvIndexStore
from meshsync_nats.sink import NatsSink
from nats.js import api as js_api

from meshsync_core import ConfigError, Engine
from tests.nats.cluster import NatsCluster, wait_stream_leader
from tests.nats.helpers import (
    CLUSTER_ID,
    ModelSource,
    Running,
    log_lines,
    nats_options,
    pod,
    wait_until,
)

STREAM = "MESHSYNC_HA"

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    nodes = NatsCluster(tmp_path / "cluster")
    try:
        nodes.start()
        yield nodes
    finally:
        nodes.stop()


def recording(source: ModelSource) -> list[str]:
    """The source's own record of every change it emits, as ``Nats-Msg-Id`` values."""
    sent: list[str] = []
    original_emit = source._emit

    async def recording_emit(event):
        sent.append(f"{event.uid}|{event.resource_version}|{event.type.value}")
        await original_emit(event)

    source._emit = recording_emit  # type: ignore[method-assign]
    return sent


async def steady_churn(
    source: ModelSource,
    stop: asyncio.Event,
    progress: list[int],
    pace: float = 0.003,
    max_steps: int = 30_000,
) -> None:
    """Creates, updates and deletes at a steady pace until ``stop`` (or ``max_steps``)."""
    rng = random.Random(4)
    for step in range(max_steps):
        if stop.is_set():
            return
        uids = list(source.model)
        roll = rng.random()
        if roll < 0.15 or len(uids) < 5:
            await source.apply(pod(f"new-{step}"))
        elif roll < 0.25:
            await source.delete(rng.choice(uids))
        else:
            _, obj = source.model[rng.choice(uids)]
            await source.apply({**obj, "status": {"step": step}})
        progress[0] += 1
        await asyncio.sleep(pace)


def connected_node(cluster: NatsCluster, sink: NatsSink) -> str:
    url = sink.nc.connected_url
    assert url is not None
    return cluster.node_at(url.geturl()).name


async def read_stream(nc: nats.NATS, stream: str, timeout: float = 60.0) -> list[str]:
    """Every message of the stream, in stream order, through an ephemeral pull consumer:
    their ``Nats-Msg-Id`` headers."""
    js = nc.jetstream()
    info = await js.stream_info(stream)
    total = info.state.messages
    sub = await js.pull_subscribe(
        wire.SUBJECT_CORE,
        stream=stream,
        config=js_api.ConsumerConfig(
            ack_policy=js_api.AckPolicy.NONE, deliver_policy=js_api.DeliverPolicy.ALL
        ),
    )
    ids: list[str] = []
    sequences: list[int] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(ids) < total:
        assert loop.time() < deadline, f"read {len(ids)} of {total} messages in {timeout}s"
        try:
            batch = await sub.fetch(500, timeout=5.0)
        except (nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError):
            continue  # the consumer's leader is still being elected: ask again
        for msg in batch:
            assert msg.headers is not None
            ids.append(msg.headers["Nats-Msg-Id"])
            sequences.append(msg.metadata.sequence.stream)
    await sub.unsubscribe()
    assert sequences == sorted(sequences)
    return ids


def per_object(ids: list[str]) -> dict[str, list[str]]:
    by_uid: dict[str, list[str]] = defaultdict(list)
    for msg_id in ids:
        by_uid[msg_id.split("|", 1)[0]].append(msg_id)
    return by_uid


async def test_kill_9_stream_leader_and_connected_node_during_churn_loses_nothing(
    cluster: NatsCluster,
) -> None:
    source = ModelSource([pod(f"p{i}") for i in range(50)])
    sent = recording(source)
    sink = NatsSink(
        nats_options(
            cluster.urls,  # comma-separated, as BROKER_URL takes a cluster
            nats_jetstream=True,
            nats_stream=STREAM,
            nats_stream_replicas=3,
            nats_index_replicas=3,
            nats_ack_timeout=2.0,
        )
    )
    observer = await nats.connect(
        servers=cluster.urls.split(","), reconnect_time_wait=0.1, max_reconnect_attempts=-1
    )
    stop = asyncio.Event()
    progress = [0]

    async def published_more(count: int, what: str) -> None:
        """Wait until ``count`` more changes were acknowledged by the stream."""
        target = sink.counts["published"] + count
        await wait_until(lambda: sink.counts["published"] >= target, 60, what)

    try:
        async with Running(Engine([source], [sink], published_index=True)) as run:
            await source.started()
            await wait_until(lambda: sink.ready and sink.outage.live, 30, "sink connected, synced")
            info = await observer.jsm().stream_info(STREAM)
            assert info.config.num_replicas == 3
            first = await wait_stream_leader(observer, STREAM, current=2)
            churn = asyncio.create_task(steady_churn(source, stop, progress))
            await published_more(300, "changes flowing")

            # 1. kill -9 the stream leader while changes keep coming
            await asyncio.to_thread(cluster.kill, first)
            second_leader = await wait_stream_leader(observer, STREAM, not_on=first)
            await published_more(300, "changes acknowledged by the new leader")
            await asyncio.to_thread(cluster.restart, first)
            await wait_stream_leader(observer, STREAM, current=2)  # the node caught up

            # 2. kill -9 the node the sink is connected to (another one than the first)
            victim = connected_node(cluster, sink)
            if victim == first:
                victim = second_leader
            disconnects = sink.counts["disconnects"]
            await asyncio.to_thread(cluster.kill, victim)
            await wait_until(lambda: sink.counts["disconnects"] > disconnects, 30, "disconnect")
            await wait_until(lambda: sink.nc.is_connected, 30, "failover to another server")
            assert connected_node(cluster, sink) != victim
            await wait_stream_leader(observer, STREAM, not_on=victim)
            await published_more(300, "changes acknowledged after the failover")
            await asyncio.to_thread(cluster.restart, victim)

            stop.set()
            await asyncio.wait_for(churn, 30)
            result = await run.stop()  # flushes: anything undelivered fails the run
        assert result.exit_code == 0, result
        await asyncio.to_thread(cluster.wait_meta_leader)  # all three nodes back, one leader
        await wait_stream_leader(observer, STREAM, current=2)
        stored = await read_stream(observer, STREAM)
        # the published index, in a bucket with 3 replicas too, went through the same kills
        await wait_stream_leader(observer, "KV_meshsync-index", current=2)  # caught up too
        index_info = await observer.jsm().stream_info("KV_meshsync-index")
        assert index_info.config.num_replicas == 3
        indexed = await index_versions(observer, source.versions())
    finally:
        stop.set()
        await observer.close()

    assert progress[0] > 900
    assert sink.counts["disconnects"] >= 1 and sink.counts["reconnects"] >= 1
    assert sink.counts["ack_failures"] > 0  # the leader change did cost acks, then resends
    assert len(stored) == len(set(stored)), "duplicates in the stream"
    missing = set(sent) - set(stored)
    assert not missing, f"{len(missing)} of {len(sent)} changes missing, e.g. {sorted(missing)[:5]}"
    assert set(stored) == set(sent)
    assert per_object(stored) == per_object(sent), "per-object order differs"
    assert indexed == source.versions(), "the index differs from what was last published"


async def index_versions(nc: nats.NATS, wanted: dict[str, str]) -> dict[str, str]:
    """uid -> resourceVersion as the published index bucket holds them, once they equal
    ``wanted`` or after 30 s: reads may be served by a replica still catching up."""
    store = KvIndexStore(nc, "meshsync-index", 3, connected=_true, log=logging.getLogger("t"))
    versions: dict[str, str] = {}
    for _ in range(150):
        try:
            records = await store.load(CLUSTER_ID)
        except Exception:  # the bucket's leader is still being elected
            records = {}
        versions = {uid: record.resource_version for uid, record in records.items()}
        if versions == wanted:
            break
        await asyncio.sleep(0.2)
    await store.close()
    return versions


async def _true() -> bool:
    return True


class _LeaderChangeMidBatch:
    """A JetStream context whose stream loses the first publish of one object (its leader died
    with it) and stores everything after it: what a new leader elected mid-batch looks like."""

    def __init__(self, lost_uid: str) -> None:
        self.lost_uid = lost_uid
        self.stored: list[str] = []
        self._lost_once = False

    async def publish_async(self, subject, payload, wait_stall=None, headers=None):
        msg_id = headers["Nats-Msg-Id"]
        future = asyncio.get_running_loop().create_future()
        if msg_id.startswith(f"{self.lost_uid}|") and not self._lost_once:
            self._lost_once = True
            future.set_exception(nats.js.errors.ServiceUnavailableError())
        else:
            self.stored.append(msg_id)
            future.set_result(js_api.PubAck(stream=STREAM, seq=len(self.stored)))
        return future


async def test_a_change_lost_mid_batch_is_resent_before_the_same_objects_next_change() -> None:
    """JetStream acks each message on its own: when the stream leader dies after the first
    change of an object and a new one takes the second, the first must not be skipped (a lost
    event) nor stored after the second (a stale final state). A later change of an object is
    published only once the earlier one is stored."""
    from meshsync_core.testing import make_event, make_modified

    a1 = make_event("a", uid="uid-a", resource_version="1")
    b1 = make_event("b", uid="uid-b", resource_version="1")
    a2 = make_modified(a1)
    c1 = make_event("c", uid="uid-c", resource_version="1")
    sink = NatsSink(nats_options("127.0.0.1:4222", nats_jetstream=True, nats_ack_timeout=1.0))
    fake = _LeaderChangeMidBatch("uid-a")
    sink.js_publisher.context = fake

    class Connected:
        is_connected = True
        max_payload = 1024 * 1024

    sink.nc = Connected()  # type: ignore[assignment]
    resend = await sink.js_publisher.publish([a1, b1, a2, c1])
    assert [e.resource_version for e in resend if e.uid == "uid-a"] == ["1", "2"]
    assert [e.uid for e in resend] == ["uid-a", "uid-a", "uid-c"]
    assert fake.stored == ["uid-b|1|ADDED"]  # a2 was held back behind a1
    assert sink.counts["published"] == 1 and sink.counts["ack_failures"] == 1


async def test_more_replicas_than_servers_is_one_error_line_and_nothing_lost(
    jetstream_server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="meshsync")
    sink = NatsSink(nats_options(jetstream_server.url, nats_jetstream=True, nats_stream_replicas=3))
    async with Running(Engine([ModelSource([pod("a")])], [sink])):
        await wait_until(
            lambda: bool(log_lines(caplog, logging.ERROR, "cannot create JetStream stream")),
            what="error line",
        )
        assert not sink.ready
        await wait_until(lambda: len(sink.pending) == 1, what="change kept in the buffer")
    line = log_lines(caplog, logging.ERROR, "cannot create JetStream stream")[0]
    assert "MESHSYNC with 3 replica(s)" in line


def test_replicas_out_of_range_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--nats-stream-replicas"):
        NatsSink(nats_options("127.0.0.1:4222", nats_jetstream=True, nats_stream_replicas=7))
