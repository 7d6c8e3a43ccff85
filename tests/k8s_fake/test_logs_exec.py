"""Pod logs and exec on the fake apiserver: the real kubectl, and raw HTTP/WebSocket checks
shared with the real cluster's suite (tests/realkube/pod_streams_checks.py), so every
expectation there is one the fake meets too. The rest covers what only the fake has: its
programmatic API, the built-in interpreter, exec handlers, and the kubelet's exit-code Status
that kwok does not produce.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import pathlib
from collections.abc import Iterator

import aiohttp
import pytest
from meshsync_testkit.fake_apiserver import FakeApiServer
from meshsync_testkit.fake_apiserver.pod_streams import ExecError, ExecSession

from tests.realkube import pod_streams_checks as checks
from tests.realkube.pod_streams_checks import TIMEOUT, V4, V5, StreamTarget, exec_session

NAMESPACE = "default"
POD = "streams"
UNSCHEDULED = "nowhere"


def pod(name: str, containers: list[str], node: str | None = "node-1") -> dict:
    spec: dict = {
        "containers": [
            {"name": c, "image": "busybox", "env": [{"name": "GREETING", "value": "hello"}]}
            for c in containers
        ]
    }
    if node:
        spec["nodeName"] = node  # no scheduler here: a pod is on a node when it says so
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }


@pytest.fixture
def fake() -> Iterator[FakeApiServer]:
    """A server in its own thread (kubectl blocks; the aiohttp checks run on the test's loop)."""
    with FakeApiServer.in_thread() as server:
        server.create(pod(POD, ["app", "side"]))
        server.create(pod(UNSCHEDULED, ["app"], node=None))
        server.append_log(NAMESPACE, POD, "app", "one")
        yield server


@pytest.fixture
def target(fake: FakeApiServer) -> StreamTarget:
    def append(container: str, text: str, at: datetime.datetime | None = None) -> None:
        fake.append_log(NAMESPACE, POD, container, text, timestamp=at)

    def append_previous(container: str, text: str) -> None:
        fake.append_log(NAMESPACE, POD, container, text, previous=True)

    return StreamTarget("fake", fake.url, None, NAMESPACE, POD, UNSCHEDULED, append,
                        append_previous)  # fmt: skip


@pytest.fixture
def kubeconfig(fake: FakeApiServer, tmp_path: pathlib.Path) -> str:
    return str(fake.write_kubeconfig(tmp_path / "kubeconfig"))


# -- shared with the real cluster's suite -------------------------------------------------------


async def test_log_errors(target: StreamTarget) -> None:
    await checks.check_log_errors(target)


async def test_log_options(target: StreamTarget) -> None:
    await checks.check_log_options(target)


async def test_log_follow(target: StreamTarget) -> None:
    await checks.check_follow(target)


async def test_exec_framing(target: StreamTarget) -> None:
    await checks.check_exec_framing(target)


async def test_exec_stdin(target: StreamTarget) -> None:
    await checks.check_exec_stdin(target)


async def test_exec_tty(target: StreamTarget) -> None:
    await checks.check_exec_tty(target)


async def test_exec_errors(target: StreamTarget) -> None:
    await checks.check_exec_errors(target)


def test_kubectl_logs(target: StreamTarget, kubectl_path: str, kubeconfig: str) -> None:
    checks.check_kubectl_logs(target, kubectl_path, kubeconfig)


def test_kubectl_exec(target: StreamTarget, kubectl_path: str, kubeconfig: str) -> None:
    checks.check_kubectl_exec(target, kubectl_path, kubeconfig)


def test_kubectl_logs_follow_ends_with_the_pod(
    target: StreamTarget, fake: FakeApiServer, kubectl_path: str, kubeconfig: str
) -> None:
    """As on a kubelet (not kwok, which never ends a follow): the stream ends when the pod is
    deleted, and kubectl exits 0."""
    proc = checks.check_kubectl_follow(target, kubectl_path, kubeconfig)
    try:
        fake.delete(pod(POD, []))
        assert proc.wait(TIMEOUT) == 0
        assert proc.stdout is not None and proc.stdout.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


# -- the fake's own: exit codes as a kubelet reports them -------------------------------------


async def test_exit_codes_as_a_kubelet_reports_them(target: StreamTarget) -> None:
    """v5 answers with the apiserver translator's Status, v4 with the node's (containerd's
    message); kwok reports both as InternalError instead (see the real suite)."""
    async with target.session() as s:
        url = target.exec_path("/bin/sh", "-c", "exit 3", container="app", stdout="true")
        v5 = await exec_session(s, url, [V5])
        v4 = await exec_session(s, url, [V4])
    causes = {"causes": [{"reason": "ExitCode", "message": "3"}]}
    assert v5.frames[-1] == (
        3,
        json.dumps(
            {
                "metadata": {},
                "status": "Failure",
                "message": "command terminated with non-zero exit code: command terminated "
                "with exit code 3",
                "reason": "NonZeroExitCode",
                "details": causes,
            },
            separators=(",", ":"),
        ).encode(),
    )
    assert json.loads(v4.frames[-1][1]) == {
        "status": "Failure",
        "message": "command terminated with non-zero exit code: error executing command "
        "[/bin/sh -c exit 3], exit code 3",
        "reason": "NonZeroExitCode",
        "details": causes,
    }


def test_kubectl_exec_exit_code(target: StreamTarget, kubectl_path: str, kubeconfig: str) -> None:
    run = checks.kubectl(kubectl_path, kubeconfig, NAMESPACE, "exec", POD, "-c", "app", "--",
                         "sh", "-c", "echo before; exit 7")  # fmt: skip
    assert (run.returncode, run.stdout) == (7, "before\n"), run
    assert run.stderr == "command terminated with exit code 7\n", run.stderr
    run = checks.kubectl(kubectl_path, kubeconfig, NAMESPACE, "exec", POD, "-c", "app", "--",
                         "nosuch")  # fmt: skip
    assert run.returncode == 1, run
    assert 'exec: "nosuch": executable file not found in $PATH' in run.stderr, run.stderr


def test_kubectl_exec_stdin_to_cat(
    target: StreamTarget, kubectl_path: str, kubeconfig: str
) -> None:
    """`cat` ends when kubectl closes stdin (v5's close signal); on kwok it would hang (kwok
    never closes the command's stdin)."""
    run = checks.kubectl(kubectl_path, kubeconfig, NAMESPACE, "exec", "-i", POD, "-c", "app",
                         "--", "cat", stdin="line 1\nline 2\n")  # fmt: skip
    assert (run.returncode, run.stdout) == (0, "line 1\nline 2\n"), run
    script = "echo $GREETING; printenv HOSTNAME\nexit 4\n"  # `sh` runs what it reads
    run = checks.kubectl(kubectl_path, kubeconfig, NAMESPACE, "exec", "-i", POD, "-c", "app",
                         "--", "sh", stdin=script)  # fmt: skip
    assert (run.returncode, run.stdout) == (4, "hello\nstreams\n"), run


# -- the built-in interpreter ----------------------------------------------------------------


async def run_sh(target: StreamTarget, script: str, **query: str) -> checks.Session:
    async with target.session() as s:
        url = target.exec_path(
            "/bin/sh", "-c", script, container="app", stdout="true", stderr="true", **query
        )
        return await exec_session(s, url, [V5])


@pytest.mark.parametrize(
    ("script", "stdout", "stderr", "code"),
    [
        ("echo a b; echo -n c; echo d", "a b\ncd\n", "", 0),
        ("echo 'single $GREETING' \"double $GREETING\"", "single $GREETING double hello\n", "", 0),
        ("nosuch; echo $?", "127\n", "sh: 1: nosuch: not found\n", 0),
        ("false && echo no; false || echo yes; true && echo also", "yes\nalso\n", "", 0),
        ("echo out; echo err >&2; exit 5", "out\n", "err\n", 5),
        ("printenv GREETING HOSTNAME; printenv NOPE", "hello\nstreams\n", "", 1),
        ("pwd; hostname", "/\nstreams\n", "", 0),
        ("echo 'open", "", "sh: 1: Syntax error: Unterminated quoted string\n", 2),
        ("exit 300", "", "", 44),
        ("echo kept # a comment", "kept\n", "", 0),
    ],
)
async def test_interpreter(
    target: StreamTarget, script: str, stdout: str, stderr: str, code: int
) -> None:
    run = await run_sh(target, script)
    assert (run.data(1).decode(), run.data(2).decode()) == (stdout, stderr), run
    final = json.loads(run.frames[-1][1])
    if code:
        assert final["reason"] == "NonZeroExitCode", final
        assert final["details"]["causes"] == [{"reason": "ExitCode", "message": str(code)}]
    else:
        assert final == {"metadata": {}, "status": "Success"}


async def test_env_comes_from_the_pod_spec(target: StreamTarget) -> None:
    run = await run_sh(target, "env")
    env = dict(line.split("=", 1) for line in run.data(1).decode().splitlines())
    assert env["GREETING"] == "hello" and env["HOSTNAME"] == POD and "PATH" in env, env


# -- exec handlers ---------------------------------------------------------------------------


async def test_exec_handler(target: StreamTarget, fake: FakeApiServer) -> None:
    seen: list[ExecSession] = []

    async def handler(session: ExecSession) -> int:
        seen.append(session)
        data = await session.read()
        await session.write(data.upper())
        await session.write_stderr("done\n")
        return 9

    fake.set_exec_handler(NAMESPACE, POD, handler, container="side")
    async with target.session() as s:
        url = target.exec_path("anything", "--flag", container="side", stdin="true",
                               stdout="true", stderr="true")  # fmt: skip
        run = await exec_session(s, url, [V5], [b"\x00shout\n", b"\xff\x00"])
        assert (run.data(1), run.data(2)) == (b"SHOUT\n", b"done\n")
        assert json.loads(run.frames[-1][1])["details"]["causes"][0]["message"] == "9"
        (session,) = seen
        assert (session.pod, session.container) == (POD, "side")
        assert session.command == ["anything", "--flag"]
        # other containers keep the interpreter
        run = await exec_session(s, target.exec_path("echo", "x", container="app",
                                                     stdout="true"), [V5])  # fmt: skip
        assert run.data(1) == b"x\n"

        def failing(session: ExecSession) -> int:
            raise ExecError("no such process")

        fake.set_exec_handler(NAMESPACE, POD, failing)
        run = await exec_session(s, target.exec_path("x", container="app", stdout="true"), [V5])
        inner = "Internal error occurred: error executing command in container: no such process"
        assert json.loads(run.frames[-1][1]) == {
            "metadata": {},
            "status": "Failure",
            "message": f"Internal error occurred: {inner}",
            "reason": "InternalError",
            "details": {"causes": [{"message": inner}]},
            "code": 500,
        }
        fake.set_exec_handler(NAMESPACE, POD, None)
        run = await exec_session(s, target.exec_path("echo", "y", container="app",
                                                     stdout="true"), [V5])  # fmt: skip
        assert run.data(1) == b"y\n"


async def test_client_going_away_cancels_the_command(
    target: StreamTarget, fake: FakeApiServer
) -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    async def handler(session: ExecSession) -> int:
        loop.call_soon_threadsafe(started.set)
        try:
            await asyncio.Event().wait()  # runs until the session ends
        except asyncio.CancelledError:
            loop.call_soon_threadsafe(cancelled.set)
            raise
        return 0

    fake.set_exec_handler(NAMESPACE, POD, handler)
    async with target.session() as s:
        url = target.exec_path("forever", container="app", stdout="true")
        async with s.ws_connect(url, protocols=[V5]) as ws:
            await asyncio.wait_for(started.wait(), TIMEOUT)
            await ws.close()
    await asyncio.wait_for(cancelled.wait(), TIMEOUT)


# -- the programmatic log API ------------------------------------------------------------------


async def test_restart_container_ends_follow_and_keeps_previous(
    target: StreamTarget, fake: FakeApiServer
) -> None:
    async with target.session() as s:
        async with s.get(target.path("log", container="app", follow="true")) as response:
            assert await asyncio.wait_for(response.content.readline(), TIMEOUT) == b"one\n"
            fake.restart_container(NAMESPACE, POD, "app")
            assert await asyncio.wait_for(response.content.read(), TIMEOUT) == b""
        fake.append_log(NAMESPACE, POD, "app", "after\nthe restart")
        assert fake.log_lines(NAMESPACE, POD, "app") == ["after", "the restart"]
        assert fake.log_lines(NAMESPACE, POD, "app", previous=True) == ["one"]
        _, _, body = await checks.get(s, target.path("log", container="app", previous="1"))
        assert body == b"one\n"
        fake.clear_logs(NAMESPACE, POD)
        assert fake.log_lines(NAMESPACE, POD, "app") == []
        assert fake.log_lines(NAMESPACE, POD, "app", previous=True) is None


async def test_follow_with_limit_bytes_ends_at_the_limit(target: StreamTarget) -> None:
    async with target.session() as s:
        url = target.path("log", container="app", follow="true", limitBytes=10)
        async with s.get(url) as response:
            assert await asyncio.wait_for(response.content.readline(), TIMEOUT) == b"one\n"
            target.append("app", "0123456789")
            assert await asyncio.wait_for(response.content.read(), TIMEOUT) == b"012345"


async def test_follow_ends_when_the_server_stops() -> None:
    server = FakeApiServer()
    await server.start()
    server.create(pod(POD, ["app"]))
    async with aiohttp.ClientSession() as s:
        url = f"{server.url}/api/v1/namespaces/{NAMESPACE}/pods/{POD}/log?follow=true"
        async with s.get(url) as response:
            server.append_log(NAMESPACE, POD, "app", "last words")
            assert await asyncio.wait_for(response.content.readline(), TIMEOUT) == b"last words\n"
            await server.stop()
            assert await asyncio.wait_for(response.content.read(), TIMEOUT) == b""


async def test_forbidden_like_rbac(target: StreamTarget, fake: FakeApiServer) -> None:
    """`faults.forbid("pods/log")` / `("pods/exec")`: the real RBAC's 403 (the user differs)."""
    fake.faults.forbid("pods/log")
    fake.faults.forbid("pods/exec")
    user = "system:serviceaccount:meshsync:meshsync"
    async with target.session() as s:
        code, _, body = await checks.get(s, target.path("log", container="app"))
        url = target.exec_path("echo", container="app", stdout="true")
        ws_code, _, ws_body = await checks.upgrade_refused(s, url, **{"Sec-WebSocket-Protocol": V5})
    for got, verb, resource in ((body, "get", "pods/log"), (ws_body, "get", "pods/exec")):
        assert json.loads(got) == checks.status(
            403,
            "Forbidden",
            f'pods "{POD}" is forbidden: User "{user}" cannot {verb} resource "{resource}" in '
            f'API group "" in the namespace "{NAMESPACE}"',
            {"name": POD, "kind": "pods"},
        )
    assert code == ws_code == 403
