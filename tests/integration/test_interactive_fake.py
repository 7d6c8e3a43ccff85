"""Meshery's interactive features end to end against the fake API server: a Meshery-shaped
client (meshsync_nats.meshery_client) -> a real nats-server -> our NATS sink -> the k8s
source -> the fake's pods/log and pods/exec (WebSocket v5). And ``meshsync demo`` showing a
log stream and a shell when asked with ``meshsync request``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from meshsync_k8s.source import KubernetesSource
from meshsync_nats.meshery_client import MesheryClient, log_request
from meshsync_nats.sink import NatsSink
from meshsync_testkit.fake_apiserver import FakeApiServer
from meshsync_testkit.nats_server import NatsServer

from meshsync_core import Engine, Options
from tests.k8s.conftest import FAST
from tests.nats.helpers import Subscriber

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z ")
MESHSYNC = [sys.executable, "-m", "meshsync_core"]


@contextlib.asynccontextmanager
async def meshsync(
    tmp_path: Path, nats: NatsServer, **options: Any
) -> AsyncIterator[tuple[FakeApiServer, MesheryClient]]:
    server = FakeApiServer(bookmark_interval=0.2)
    await server.start()
    server.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-0", "namespace": "default"},
            "spec": {
                "nodeName": "node-1",
                "containers": [{"name": "web", "image": "example.invalid/web"}],
            },
        }
    )
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
    source = KubernetesSource(
        Options(kubeconfig=str(kubeconfig), resources=("pods",), watch_crds=False), tuning=FAST
    )
    sink = NatsSink(Options(broker_url=nats.url, nats_reconnect_wait=0.1, **options))
    engine = Engine([source], [sink])
    task = asyncio.create_task(engine.run())
    client = await MesheryClient.connect(nats.url)
    try:
        while not sink.ready:  # connected and synced: no single event to await
            assert not task.done(), task.result()
            await asyncio.sleep(0.02)
        yield server, client
    finally:
        await client.close()
        engine.stop("test done")
        await asyncio.wait_for(task, 30)
        await server.stop()


async def test_a_meshery_client_follows_logs_and_runs_a_shell(
    tmp_path: Path,
    nats_server: NatsServer,
) -> None:
    async with meshsync(tmp_path, nats_server, pod_logs="on", pod_exec="on") as (server, client):
        for line in ("one", "two", "three"):
            server.append_log("default", "web-0", "web", line)
        logs = await client.logs_inbox()
        active = await client.sessions_inbox()
        request = log_request("r1", "default", "web-0", "web", follow=True, tail_lines=2)
        await client.request_logs(request)
        text = ""
        while "three" not in text:
            message = await logs.get()
            assert message["ObjectType"] == "log-stream", message
            assert message["Object"]["primary"] == "web-0"
            text += message["Object"]["data"]
        assert [STAMP.sub("", line) for line in text.splitlines()] == ["two", "three"]
        server.append_log("default", "web-0", "web", "appended")
        assert "appended" in (await logs.get())["Object"]["data"]

        shell = await client.open_exec("default", "web-0", "web", "s1")
        await shell.wait_open(active)
        await shell.send("echo $HOSTNAME-expanded")  # by the shell: not an echo of the input
        await shell.read_until("web-0-expanded")
        await shell.send("exit 5")
        error = None
        while error is None or error["ObjectType"] != "error":
            error = await shell.inbox.get()
        assert error["Object"] == "command terminated with exit code 5"

        await client.stop_logs(request)
        await client.request_active()
        while (await active.get())["Object"]:
            await client.request_active()

        server.faults.forbid("pods/exec")
        refused = await client.open_exec("default", "web-0", "web", "s2")
        message = await refused.inbox.get()
        assert message["ObjectType"] == "error"
        assert 'cannot create resource "pods/exec"' in message["Object"]


def _stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.stderr.read() if process.stderr else ""


def test_demo_shows_a_log_stream_and_a_shell_when_asked(
    tmp_path: Path,
    nats_server: NatsServer,
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"KUBECONFIG", "BROKER_URL"}}
    demo = subprocess.Popen(
        [*MESHSYNC, "demo", "--output", "nats", "--broker-url", nats_server.url,
         "--churn-interval", "0.3s", "--stop-after", "90s"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    try:
        assert demo.stderr is not None
        banner = ""
        while "meshsync request logs" not in banner:  # the demo says what to try
            line = demo.stderr.readline()
            assert line, f"demo ended early: {banner}"
            banner += line
        pod = re.search(r"meshsync request logs (\S+) ", banner)
        assert pod, banner

        async def synced() -> None:  # the demo publishes its cluster: it is serving requests
            subscriber = Subscriber()
            await subscriber.connect(nats_server.url)
            await subscriber.wait_count(1, timeout=60)
            await subscriber.close()

        asyncio.run(synced())
        logs = subprocess.Popen(
            [*MESHSYNC, "request", "logs", pod.group(1), "--follow", "--tail", "2",
             "--broker-url", nats_server.url],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        try:
            assert logs.stdout is not None
            lines = [logs.stdout.readline() for _ in range(3)]
            # the pod's log, timestamped: the last two lines (its start-up "ready" line while it
            # is young), then the access-log lines the demo's pods keep writing
            assert all(STAMP.match(line) for line in lines), lines
            assert '"GET /' in lines[-1], lines
        finally:
            assert "Traceback" not in _stop(logs)
        shell = subprocess.run(
            [*MESHSYNC, "request", "exec", pod.group(1), "--container", "app",
             "--broker-url", nats_server.url, "echo", "hello-from-the-demo"],
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip
        assert shell.returncode == 0, shell.stderr
        assert "hello-from-the-demo" in shell.stdout
    finally:
        assert "Traceback" not in _stop(demo)
