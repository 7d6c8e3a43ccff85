"""The health/readiness/metrics endpoint and JSON logs."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from meshsync_core import Engine, Event, Options, SourceContext
from meshsync_core.health import HealthServer
from meshsync_core.testing import CaptureSink, MemorySource, make_event
from tests.core.conftest import MeshSyncCLI


class GatedSource(MemorySource):
    """Emits its events, then finishes the initial sync only when the test opens the gate."""

    def __init__(self, events: list[Event]) -> None:
        super().__init__(events, keep_running=True)
        self.gate = asyncio.Event()
        self.emitted_all = asyncio.Event()

    async def run(self, ctx: SourceContext) -> None:
        for event in self.events:
            await ctx.emit(event)
        self.metrics.inc("widgets_seen_total", len(self.events), kind="Widget")
        self.emitted_all.set()
        await self.gate.wait()
        ctx.initial_sync_complete()
        await asyncio.Event().wait()


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


async def test_readyz_flips_when_the_initial_sync_is_delivered_and_metrics_move() -> None:
    source = GatedSource([make_event(f"p{i}") for i in range(5)])
    sink = CaptureSink(name="cap")
    engine = Engine([source], [sink])
    server = HealthServer(engine, "127.0.0.1", 0)
    await server.start()
    run = asyncio.create_task(engine.run())
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with aiohttp.ClientSession() as session:
            await source.emitted_all.wait()
            await sink.wait_for(5)
            status, body = await get(session, f"{base}/readyz")
            assert status == 503
            assert "source 'memory' has not finished its initial sync" in body
            assert (await get(session, f"{base}/healthz"))[0] == 200
            status, metrics = await get(session, f"{base}/metrics")
            assert status == 200
            assert 'meshsync_events_emitted_total{source="memory",type="ADDED"} 5.0' in metrics
            assert 'meshsync_events_delivered_total{sink="cap",type="ADDED"} 5.0' in metrics
            assert 'meshsync_widgets_seen_total{kind="Widget",plugin="memory"} 5.0' in metrics
            assert 'meshsync_queue_capacity{sink="cap"} 4096.0' in metrics
            assert "meshsync_ready 0.0" in metrics

            source.gate.set()
            await sink.synced.wait()
            assert await get(session, f"{base}/readyz") == (200, "ready\n")
            metrics = (await get(session, f"{base}/metrics"))[1]
            assert "meshsync_ready 1.0" in metrics
            assert "meshsync_initial_sync_duration_seconds" in metrics
            assert "meshsync_last_event_age_seconds" in metrics
    finally:
        engine.stop()
        await run
        await server.stop()


async def test_healthz_reports_a_sink_stuck_in_one_delivery() -> None:
    release = asyncio.Event()
    entered = asyncio.Event()

    class Stuck(CaptureSink):
        async def deliver(self, events):  # type: ignore[no-untyped-def]
            entered.set()
            await release.wait()

    engine = Engine([MemorySource([make_event("a")], keep_running=True)], [Stuck(name="stuck")])
    server = HealthServer(engine, "127.0.0.1", 0, stuck_after=0.0)
    await server.start()
    run = asyncio.create_task(engine.run())
    try:
        await entered.wait()
        async with aiohttp.ClientSession() as session:
            status, body = await get(session, f"http://127.0.0.1:{server.port}/healthz")
        assert status == 503 and "stuck: sink(s) stuck" in body
    finally:
        release.set()
        engine.stop()
        await run
        await server.stop()


async def test_a_busy_health_port_is_a_clear_startup_error() -> None:
    engine = Engine([MemorySource()], [CaptureSink()])
    first = HealthServer(engine, "127.0.0.1", 0)
    await first.start()
    try:
        from meshsync_core.api import serve

        options = Options(health_port=first.port, health_host="127.0.0.1")
        result = await serve(Engine([MemorySource()], [CaptureSink()]), options)
        assert result.exit_code == 2
        assert f"cannot serve health and metrics on 127.0.0.1:{first.port} (address in use)" in (
            result.reason
        )
    finally:
        await first.stop()


def test_json_logs_are_one_object_per_line(cli: MeshSyncCLI) -> None:
    result = cli.run(
        "run", "--source", "ticker", "--output", "exploding", "--output", "console",
        "--once", "--log-format", "json", "--log-level", "debug",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert any(r["logger"] == "meshsync.plugins" for r in records)  # plugin-load warnings too
    assert {"time", "level", "logger", "message"} <= set(records[0])
    failure = next(r for r in records if "failed to deliver" in r["message"])
    assert failure["logger"] == "meshsync.exploding"
    assert failure["level"] == "error"
    assert "RuntimeError: exploding sink always fails" in failure["message"]
    assert any(r.get("exception") and "Traceback" in r["exception"] for r in records)  # debug
    assert any(r["message"] == "stopped: initial sync complete (--once)" for r in records)


def test_a_rate_limited_log_says_a_repeated_line_once_a_minute(caplog) -> None:
    import logging

    from meshsync_core import RateLimitedLog

    caplog.set_level(logging.DEBUG, logger="meshsync.test")
    limited = RateLimitedLog(logging.getLogger("meshsync.test"), interval=60.0, max_keys=2)
    for _ in range(100):
        limited.warning("cannot reach %s", "nats", key="reach")
    limited.log(logging.ERROR, "another problem")
    levels = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert levels.count((logging.WARNING, "cannot reach nats")) == 1
    assert levels.count((logging.DEBUG, "cannot reach nats")) == 99  # repeats: debug only
    assert (logging.ERROR, "another problem") in levels  # another key: said at once
