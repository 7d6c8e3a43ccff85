"""``meshsync request``: the command, in its own process, against a MeshSync whose NATS sink
serves the fake workload streams of tests/nats/fake_streams.py."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from meshsync_testkit.nats_server import NatsServer

from tests.nats.test_sessions import ALLOW, interactive, shop

MESHSYNC = [str(Path(sys.executable).with_name("meshsync"))]  # the installed script


async def meshsync_request(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *MESHSYNC,
        "request",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_logs_prints_the_tail_and_ends_with_the_session(nats_server: NatsServer) -> None:
    async with interactive(nats_server, shop(), **ALLOW) as env:
        code, out, err = await meshsync_request(
            "logs",
            "shop/web-0",
            "--container",
            "web",
            "--tail",
            "2",
            "--broker-url",
            nats_server.url,
        )
        assert (code, out) == (0, "two\nthree\n"), err
        assert env.open_sessions == []


async def test_logs_follow_until_interrupted_sends_stop(nats_server: NatsServer) -> None:
    streams = shop()
    async with interactive(nats_server, streams, **ALLOW) as env:
        process = await asyncio.create_subprocess_exec(
            *MESHSYNC,
            "request",
            "logs",
            "shop/web-0",
            "--container",
            "web",
            "-f",
            "--tail",
            "1",
            "--broker-url",
            nats_server.url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        assert await asyncio.wait_for(process.stdout.readline(), 30) == b"three\n"
        streams.log("shop", "web-0", "web").append("four\n")
        assert await asyncio.wait_for(process.stdout.readline(), 30) == b"four\n"
        process.send_signal(2)  # Ctrl-C: Meshery's stop is sent
        await asyncio.wait_for(process.wait(), 30)
        await asyncio.wait_for(_until(lambda: not env.open_sessions), 10)


async def test_logs_error_is_printed_with_exit_1(nats_server: NatsServer) -> None:
    async with interactive(nats_server, shop(), **ALLOW):
        code, out, err = await meshsync_request(
            "logs", "shop/nope", "--broker-url", nats_server.url
        )
        assert code == 1 and out == ""
        assert 'pods "nope" not found' in err


async def test_exec_with_a_command_and_from_stdin(nats_server: NatsServer) -> None:
    async with interactive(nats_server, shop(), **ALLOW) as env:
        code, out, err = await meshsync_request(
            "exec",
            "shop/web-0",
            "--container",
            "web",
            "--broker-url",
            nats_server.url,
            "echo",
            "hello",
        )
        assert code == 0, err
        assert "hello\r\n" in out
        code, out, err = await meshsync_request(
            "exec",
            "shop/web-0",
            "--container",
            "web",
            "--broker-url",
            nats_server.url,
            stdin=b"echo one\necho two\n",
        )
        assert code == 0, err
        assert "one\r\n" in out and "two\r\n" in out
        code, out, err = await meshsync_request(
            "exec", "shop/db-0", "--container", "db", "--broker-url", nats_server.url, "exit", "4"
        )
        assert code == 1 and "command terminated with exit code 4" in err
        await asyncio.wait_for(_until(lambda: not env.open_sessions), 10)


async def test_sessions_lists_the_open_ones(nats_server: NatsServer) -> None:
    async with interactive(nats_server, shop(), **ALLOW) as env:
        active = await env.client.sessions_inbox()
        shell = await env.client.open_exec("shop", "web-0", "web", "id1")
        await shell.wait_open(active)
        code, out, _ = await meshsync_request("sessions", "--broker-url", nats_server.url)
        assert (code, out) == (0, "exec.shop.web-0.web.id1\n")


async def _until(predicate) -> None:  # type: ignore[no-untyped-def]
    while not predicate():
        await asyncio.sleep(0.02)  # in-process state: nothing to await
