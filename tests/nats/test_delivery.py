"""Delivery without silent loss: NATS down at start, restarts mid-stream, a full buffer,
JetStream durability, readiness."""

from __future__ import annotations

import asyncio
import logging
import random
import signal

import pytest
from meshsync_nats import wire
from meshsync_nats.sink import NatsSink
from meshsync_testkit.nats_server import NatsServer, free_port

from meshsync_core import ConfigError, Engine
from meshsync_core.testing import MemorySource, make_event
from tests.nats.helpers import (
    ModelSource,
    Running,
    Subscriber,
    log_lines,
    nats_options,
    pod,
    wait_connected,
    wait_until,
)


async def churn(
    source: ModelSource,
    rng: random.Random,
    steps: int,
    pace: float = 0.002,
    prefix: str = "p",
    progress: list[int] | None = None,
) -> None:
    """Random creates, updates and deletes of the objects named ``prefix*`` (pace spaces the
    stream out; ``progress[0]`` counts the steps done)."""
    for step in range(steps):
        roll = rng.random()
        uids = [
            uid for uid, (_, o) in source.model.items() if o["metadata"]["name"].startswith(prefix)
        ]
        if roll < 0.2 or not uids:
            await source.apply(pod(f"{prefix}new-{step}"))
        elif roll < 0.3:
            await source.delete(rng.choice(uids))
        else:
            _, obj = source.model[rng.choice(uids)]
            await source.apply({**obj, "status": {"step": step}})
        if progress is not None:
            progress[0] += 1
        await asyncio.sleep(pace)


async def test_start_with_nats_down_buffers_then_delivers(
    tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="meshsync")
    port = free_port()
    source = ModelSource([pod(f"p{i}") for i in range(20)])
    sink = NatsSink(nats_options(f"127.0.0.1:{port}", nats_resend_delay=1.0))
    server = NatsServer(tmp_path / "nats", port=port)
    subscriber = Subscriber()
    try:
        async with Running(Engine([source], [sink])):
            await source.started()
            await wait_until(
                lambda: len(log_lines(caplog, contains="cannot reach NATS")) >= 2,
                what="retry log lines",
            )
            assert not sink.ready
            await source.apply(pod("p3", status={"phase": "Running"}))
            await source.delete("uid-default-p4")
            server.start()
            await subscriber.connect(server.url)
            await subscriber.wait_for(lambda: subscriber.versions() == source.versions())
            await wait_until(lambda: sink.ready, what="sink ready")
    finally:
        await subscriber.close()
        server.stop()
    line = log_lines(caplog, contains="cannot reach NATS")[0]
    assert f"127.0.0.1:{port}" in line and "retrying" in line


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["restart", "crash"])
async def test_restart_mid_stream_subscriber_converges(tmp_path, sig: int) -> None:
    """The server goes away while changes stream; each phase touches its own objects, so a
    change lost in flight when the server dies would stay visible in the final comparison."""
    server = NatsServer(tmp_path / "nats")
    server.start()
    subscriber = Subscriber()
    await subscriber.connect(server.url)
    source = ModelSource([pod(f"a{i}") for i in range(100)] + [pod(f"b{i}") for i in range(50)])
    sink = NatsSink(nats_options(server.url))
    rng = random.Random(sig)
    try:
        async with Running(Engine([source], [sink])):
            await source.started()
            await wait_connected(sink)
            progress = [0]
            before = asyncio.create_task(churn(source, rng, 400, 0.0005, "a", progress))
            await wait_until(lambda: progress[0] >= 200, what="changes streaming")
            await asyncio.to_thread(server.stop, sig)  # while the "a" changes keep coming
            await before
            await churn(source, rng, 100, 0.001, "b")  # NATS is down
            await asyncio.to_thread(server.start)
            await churn(source, rng, 100, 0.001, "c")  # reconnecting, then live again
            await wait_until(lambda: sink.outage.live, what="sink live again")
            await churn(source, rng, 50, 0.001, "d")
            await subscriber.wait_for(
                lambda: subscriber.versions() == source.versions(), timeout=20
            )
            assert sink.counts["disconnects"] >= 1 and sink.counts["reconnects"] >= 1
    finally:
        await subscriber.close()
        server.stop()


async def test_full_buffer_drops_are_counted_then_resync_converges(
    tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="meshsync")
    server = NatsServer(tmp_path / "nats")
    server.start()
    subscriber = Subscriber()
    await subscriber.connect(server.url)
    source = ModelSource([pod(f"p{i}") for i in range(30)])
    sink = NatsSink(nats_options(server.url, nats_buffer_size=5))
    try:
        async with Running(Engine([source], [sink])):
            await source.started()
            await wait_connected(sink)
            await subscriber.wait_for(lambda: subscriber.versions() == source.versions())
            await asyncio.to_thread(server.stop)
            await wait_until(lambda: not sink.nc.is_connected, what="disconnect seen")
            for i in range(30):
                _, obj = source.model[f"uid-default-p{i}"]
                await source.apply({**obj, "status": {"phase": "Changed"}})
            await source.delete("uid-default-p0")
            await wait_until(lambda: sink.pending.dropped > 0, what="drops")
            await asyncio.to_thread(server.start)
            await subscriber.wait_for(
                lambda: subscriber.versions() == source.versions(), timeout=20
            )
    finally:
        await subscriber.close()
        server.stop()
    assert source.resyncs >= 1
    assert log_lines(caplog, contains="buffer full")
    assert log_lines(caplog, contains="asking the sources to resync")


async def test_jetstream_survives_restart_with_zero_missing_events(tmp_path) -> None:
    server = NatsServer(tmp_path / "nats", jetstream=True)
    server.start()
    source = ModelSource([pod(f"p{i}") for i in range(20)])
    sent: list[str] = []
    original_emit = source._emit

    async def recording_emit(event):  # the source's own record of every change it made
        sent.append(f"{event.uid}|{event.resource_version}|{event.type.value}")
        await original_emit(event)

    source._emit = recording_emit  # type: ignore[method-assign]
    sink = NatsSink(nats_options(server.url, nats_jetstream=True, nats_stream="MESHSYNC_TEST"))
    rng = random.Random(7)
    try:
        async with Running(Engine([source], [sink])) as run:
            await source.started()
            await wait_connected(sink)
            progress = [0]
            changes = asyncio.create_task(churn(source, rng, 300, 0.002, progress=progress))
            await wait_until(lambda: progress[0] >= 100, what="changes streaming")
            await asyncio.to_thread(server.restart)  # while changes keep coming
            await changes
            await wait_until(
                lambda: sink.nc.is_connected and sink.outage.live and not sink.pending,
                timeout=20,
                what="all pending published",
            )
            await run.stop()
        reader = Subscriber()
        await reader.connect(server.url)
        assert reader.nc is not None
        jsm = reader.nc.jsm()
        info = await jsm.stream_info("MESHSYNC_TEST")
        assert info.config.subjects == [wire.SUBJECT_CORE]
        stored = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await jsm.get_msg("MESHSYNC_TEST", seq)
            stored.append(msg.headers["Nats-Msg-Id"])
        await reader.close()
    finally:
        server.stop()
    assert len(sent) > 300
    assert sink.counts["disconnects"] >= 1 and sink.counts["reconnects"] >= 1
    assert sink.counts["buffered"] > 0  # changes did arrive while the server was away
    assert sorted(set(sent) - set(stored)) == []  # zero missing
    assert len(stored) == len(set(stored))  # de-duplicated by Nats-Msg-Id


async def test_ready_needs_connection_and_initial_sync(nats_server: NatsServer) -> None:
    source = ModelSource([pod("a")])
    sink = NatsSink(nats_options(nats_server.url))
    assert not sink.ready
    async with Running(Engine([source], [sink])):
        await source.started()
        await wait_until(lambda: sink.ready, what="ready")
        await asyncio.to_thread(nats_server.stop)
        await wait_until(lambda: not sink.ready, what="not ready while disconnected")


async def test_initial_sync_larger_than_buffer_loses_nothing_when_nats_is_up(
    nats_server: NatsServer,
) -> None:
    """open() connects before the sources start, and a backlog slows the source down instead
    of overflowing: nothing is dropped, no resync is needed."""
    subscriber = Subscriber()
    await subscriber.connect(nats_server.url)
    source = ModelSource([pod(f"p{i}") for i in range(500)])
    sink = NatsSink(nats_options(nats_server.url, nats_buffer_size=10))
    async with Running(Engine([source], [sink], queue_size=8)):
        await source.started()
        await subscriber.wait_for(lambda: subscriber.versions() == source.versions())
    await subscriber.close()
    assert sink.pending.dropped == 0 and source.resyncs == 0
    assert sink.metrics.value("published_total") == 500
    assert sink.metrics.value("connected") == 1


async def test_once_run_flushes_everything_before_exit(nats_server: NatsServer) -> None:
    subscriber = Subscriber()
    await subscriber.connect(nats_server.url)
    source = MemorySource([make_event(f"p{i}") for i in range(200)])
    sink = NatsSink(nats_options(nats_server.url))
    result = await asyncio.wait_for(Engine([source], [sink], once=True).run(), 30)
    assert result.exit_code == 0
    await subscriber.wait_count(200)
    await subscriber.close()


async def test_several_servers_one_down(nats_server: NatsServer) -> None:
    dead = f"127.0.0.1:{free_port()}"
    subscriber = Subscriber()
    await subscriber.connect(nats_server.url)
    source = ModelSource([pod("a")])
    sink = NatsSink(nats_options(f"{dead},{nats_server.url}"))
    async with Running(Engine([source], [sink])):
        await subscriber.wait_count(1)
    await subscriber.close()


async def test_jetstream_mode_without_jetstream_says_so(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="meshsync")
    sink = NatsSink(nats_options(nats_server.url, nats_jetstream=True))
    async with Running(Engine([ModelSource([pod("a")])], [sink])):
        await wait_until(
            lambda: bool(log_lines(caplog, logging.ERROR, "JetStream is not available")),
            what="JetStream error line",
        )
        assert sink.counts["published"] == 0  # kept, not lost: retried once JetStream works
        assert not sink.ready
        await wait_until(lambda: len(sink.pending) == 1, what="change kept in the buffer")


async def test_bad_stream_retention_is_a_config_error(nats_server: NatsServer) -> None:
    options = nats_options(nats_server.url, nats_jetstream=True, nats_stream_retention="forever")
    with pytest.raises(ConfigError, match="--nats-stream-retention") as info:  # when built
        NatsSink(options)
    assert info.value.exit_code == 2


async def test_jetstream_stream_created_with_requested_settings(
    jetstream_server: NatsServer,
) -> None:
    sink = NatsSink(
        nats_options(
            jetstream_server.url,
            nats_jetstream=True,
            nats_stream="MESHSYNC_CUSTOM",
            nats_stream_retention="interest",
            nats_stream_max_age=3600.0,
        )
    )
    async with Running(Engine([ModelSource([pod("a")])], [sink])):
        await wait_connected(sink)
        info = await sink.nc.jsm().stream_info("MESHSYNC_CUSTOM")
    assert info.config.retention == "interest"
    assert info.config.max_age == 3600.0
    assert info.config.subjects == [wire.SUBJECT_CORE]
    assert info.config.duplicate_window == 120.0


class _EchoLessConnection:
    """Stands in for ``sink.nc``: connected, keeps what is published, echoes nothing."""

    is_connected = True

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []

    async def publish(self, subject: str, data: bytes) -> None:
        self.published.append((subject, data))


async def test_confirmer_ends_when_cancelled_as_its_marker_comes_back() -> None:
    """``close()`` cancels the confirmer and waits for it. The final flush's round trip often
    brings the confirmer's marker back in the same read, so the cancel lands just as that echo
    completes its wait: the confirmer must end all the same. (``asyncio.wait_for`` before Python
    3.12 returns the result then and drops the cancel: the loop went back to sleep and SIGTERM
    left ``meshsync run`` hanging in ``close()``.)"""
    sink = NatsSink(nats_options("127.0.0.1:1"))
    connection = _EchoLessConnection()
    sink.nc = connection  # type: ignore[assignment]
    sink.confirmation.subject = "_INBOX.test"
    confirmer = asyncio.create_task(sink.confirmation.run())
    sink.confirmation.note_sent(make_event("a"))
    sink.confirmation.wake()
    await wait_until(lambda: sink.confirmation.waiting, what="the confirmer's marker")
    subject, token = connection.published[-1]
    assert subject == "_INBOX.test"

    class Echo:
        data = token

    await sink._on_marker(Echo())  # type: ignore[arg-type]
    confirmer.cancel()  # close(), in the same step of the loop as the echo
    done, _ = await asyncio.wait([confirmer], timeout=2.0)
    assert confirmer in done, "the confirmer ignored its cancellation: close() would hang"
    assert confirmer.cancelled()
