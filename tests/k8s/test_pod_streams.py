"""meshsync_k8s.pod_streams (the source's WorkloadStreams) against the fake API server's
pods/log and pods/exec: the options kubectl sends, WebSocket v5 with v4 fallback, the
exit status, and the API server's own error messages. The same paths against the real
kube-apiserver: tests/realkube/test_interactive.py."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from meshsync_k8s.client import ApiClient
from meshsync_k8s.kubeconfig import load_connection
from meshsync_k8s.pod_streams import (
    EXEC_PROTOCOLS,
    PodStreams,
    WebSocketExec,
    exec_params,
    pod_path,
)
from meshsync_testkit.fake_apiserver import FakeApiServer

from meshsync_core import LogOptions, StreamError, StreamTarget, WorkloadStreams
from meshsync_core import streams as kinds

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ")


@pytest.fixture
async def streams(server: FakeApiServer, kubeconfig: Path) -> AsyncIterator[PodStreams]:
    for name, containers in (("web", ["web", "sidecar"]), ("solo", ["app"])):
        server.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {
                    "nodeName": "node-1",
                    "containers": [{"name": c, "image": "example.invalid/x"} for c in containers],
                },
            }
        )
    client = ApiClient(load_connection(str(kubeconfig), None))
    try:
        yield PodStreams(client)
    finally:
        await client.close()


async def read_all(iterator: AsyncIterator[bytes]) -> str:
    return b"".join([chunk async for chunk in iterator]).decode()


async def test_is_a_workload_streams(streams: PodStreams) -> None:
    assert isinstance(streams, WorkloadStreams)


async def test_logs_tail_timestamps_and_previous(
    server: FakeApiServer, streams: PodStreams
) -> None:
    for line in ("one", "two", "three"):
        server.append_log("default", "web", "web", line)
    server.append_log("default", "web", "web", "before-restart", previous=True)
    target = StreamTarget("default", "web", "web")
    text = await read_all(streams.stream_logs(target, LogOptions(tail_lines=2)))
    assert [STAMP.sub("", line) for line in text.splitlines()] == ["two", "three"]
    assert all(STAMP.match(line) for line in text.splitlines())
    plain = await read_all(streams.stream_logs(target, LogOptions(timestamps=False)))
    assert plain == "one\ntwo\nthree\n"
    assert await read_all(streams.stream_logs(target, LogOptions(tail_lines=0))) == ""
    previous = await read_all(
        streams.stream_logs(target, LogOptions(previous=True, timestamps=False))
    )
    assert previous == "before-restart\n"
    assert (
        "GET",
        "/api/v1/namespaces/default/pods/web/log?container=web&timestamps=true&tailLines=2",
    ) in server.request_log


async def test_follow_gets_appended_lines_and_aclose_ends_it(
    server: FakeApiServer, streams: PodStreams
) -> None:
    server.append_log("default", "solo", "app", "first")
    reader = streams.stream_logs(
        StreamTarget("default", "solo"), LogOptions(follow=True, timestamps=False, tail_lines=5)
    )
    assert await asyncio.wait_for(reader.__anext__(), 10) == b"first\n"
    server.append_log("default", "solo", "app", "second")
    assert await asyncio.wait_for(reader.__anext__(), 10) == b"second\n"
    await reader.aclose()


@pytest.mark.parametrize(
    ("target", "options", "kind", "code", "message"),
    [
        (StreamTarget("default", "nope", "web"), LogOptions(), kinds.NOT_FOUND, 404,
         'pods "nope" not found'),
        (StreamTarget("elsewhere", "web", "web"), LogOptions(), kinds.NOT_FOUND, 404,
         'pods "web" not found'),
        (StreamTarget("default", "web", "nope"), LogOptions(), kinds.INVALID, 400,
         "container nope is not valid for pod web"),
        (StreamTarget("default", "web"), LogOptions(), kinds.INVALID, 400,
         "a container name must be specified for pod web, choose one of: [web sidecar]"),
        (StreamTarget("default", "solo"), LogOptions(previous=True), kinds.INVALID, 400,
         'previous terminated container "app" in pod "solo" not found'),
    ],
    ids=["pod", "namespace", "container", "no-container", "no-previous"],
)  # fmt: skip
async def test_log_errors_keep_the_api_servers_words(
    streams: PodStreams,
    target: StreamTarget,
    options: LogOptions,
    kind: str,
    code: int,
    message: str,
) -> None:
    with pytest.raises(StreamError) as caught:
        await read_all(streams.stream_logs(target, options))
    assert (caught.value.kind, caught.value.code) == (kind, code)
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"cannot read the log of {target.describe()}: ")


async def test_forbidden_log_and_exec(server: FakeApiServer, streams: PodStreams) -> None:
    server.faults.forbid("pods/log")
    server.faults.forbid("pods/exec")
    with pytest.raises(StreamError) as caught:
        await read_all(streams.stream_logs(StreamTarget("default", "solo"), LogOptions()))
    assert caught.value.kind == kinds.FORBIDDEN
    assert 'cannot get resource "pods/log"' in str(caught.value)
    with pytest.raises(StreamError) as caught:
        await streams.open_exec(StreamTarget("default", "solo", "app"), ["/bin/sh"])
    # a refused WebSocket upgrade: the message is the server's, fetched with the same request
    assert (caught.value.kind, caught.value.code) == (kinds.FORBIDDEN, 403)
    assert 'cannot create resource "pods/exec"' in str(caught.value)


async def shell_until(session: WebSocketExec, output: AsyncIterator[bytes], text: str) -> str:
    seen = ""
    while text not in seen:
        seen += (await asyncio.wait_for(output.__anext__(), 10)).decode()
    return seen


async def test_exec_v5_runs_commands_with_stderr_merged_and_reports_exit_codes(
    streams: PodStreams,
) -> None:
    session = await streams.open_exec(StreamTarget("default", "web", "web"), ["/bin/sh"])
    assert isinstance(session, WebSocketExec)
    assert session.protocol == "v5.channel.k8s.io"
    output = session.output()
    await session.send(b"echo hello\n")
    assert "hello" in await shell_until(session, output, "hello")
    await session.send(b"echo oops >&2\n")
    assert "oops" in await shell_until(session, output, "oops")
    await session.send(b"exit 3\n")
    rest = [chunk async for chunk in output]
    assert b"".join(rest).strip() in (b"", b"#", b"$")
    assert session.failure == "command terminated with exit code 3"
    await session.close()
    await session.close()  # twice is fine
    with pytest.raises(StreamError):
        await session.send(b"late\n")


async def test_exec_ok_exit_and_close_ending_stdin(streams: PodStreams) -> None:
    session = await streams.open_exec(StreamTarget("default", "solo", "app"), ["/bin/sh"])
    await session.send(b"echo bye; exit 0\n")
    assert "bye" in await read_all(session.output())
    assert session.failure is None
    await session.close()


async def test_exec_falls_back_to_v4(streams: PodStreams) -> None:
    target = StreamTarget("default", "solo", "app")
    path = pod_path(target, "exec")
    ws = await streams.client.ws_connect(
        path, exec_params(target, ["/bin/sh"], True), ["v4.channel.k8s.io"]
    )
    session = WebSocketExec(ws, target)
    assert session.protocol == "v4.channel.k8s.io" and session.protocol in EXEC_PROTOCOLS
    output = session.output()
    await session.send(b"echo four\n")
    assert "four" in await shell_until(session, output, "four")
    await session.send(b"exit 2\n")
    async for _ in output:
        pass
    assert session.failure == "command terminated with exit code 2"
    await session.close()


async def test_exec_errors(streams: PodStreams) -> None:
    for target, kind, message in [
        (StreamTarget("default", "nope", "app"), kinds.NOT_FOUND, 'pods "nope" not found'),
        (StreamTarget("default", "web", "nope"), kinds.INVALID, "container nope is not valid"),
        (StreamTarget("", "web", "web"), kinds.INVALID, "needs a namespace and a name"),
    ]:
        with pytest.raises(StreamError) as caught:
            await streams.open_exec(target, ["/bin/sh"])
        assert caught.value.kind == kind and message in str(caught.value), str(caught.value)
