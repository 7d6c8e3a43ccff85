"""Meshery's interactive features against the real control plane: a Meshery-shaped client
(meshsync_nats.meshery_client, publishing exactly what Meshery Server publishes) asks our
MeshSync — the k8s source and the NATS sink, a real nats-server between them — for pod logs
and shells, which kube-apiserver serves through kwok's node server (tests/realkube/
kwok_streams.py): logs from files the test writes, exec running /bin/sh on this host in a pty.

Nothing is faked on the Kubernetes side: the log options, the WebSocket exec protocol
(v5.channel.k8s.io), the exit status and the RBAC refusals are the API server's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from meshsync_k8s.source import KubernetesSource
from meshsync_nats.meshery_client import Inbox, MesheryClient, log_request
from meshsync_nats.sink import NatsSink
from meshsync_testkit.nats_server import NatsServer

from meshsync_core import Engine, Options
from tests.k8s.conftest import FAST
from tests.realkube import rbac
from tests.realkube.cluster import ControlPlane, Credentials
from tests.realkube.fixtures import eventually

pytestmark = pytest.mark.timeout(300)

#: Fast retries; watch timeouts a real server keeps (it sends bookmarks about once a minute).
REAL = dataclasses.replace(FAST, inactivity_timeout=90.0, watch_timeout=60.0)
KWOK = {
    "nodeSelector": {"type": "kwok"},
    "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists"}],
}
ROOT = Path(__file__).resolve().parents[2]
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z ")
ALLOW = {"pod_logs": "on", "pod_exec": "on"}


@dataclasses.dataclass
class Running:
    sink: NatsSink
    client: MesheryClient
    engine: Engine

    @property
    def open_sessions(self) -> list[str]:
        assert self.sink.sessions is not None
        return sorted(self.sink.sessions.sessions)


@contextlib.asynccontextmanager
async def meshsync(
    kubeconfig: Path, namespace: str, nats: NatsServer, **options: Any
) -> AsyncIterator[Running]:
    """Our MeshSync (k8s source watching the namespace's pods, NATS sink) and a Meshery."""
    source = KubernetesSource(
        Options(
            kubeconfig=str(kubeconfig),
            namespaces=(namespace,),
            resources=("pods",),
            watch_crds=False,
            meshsync_cr=False,
        ),
        tuning=REAL,
    )
    sink = NatsSink(
        Options(broker_url=nats.url, nats_reconnect_wait=0.1, nats_resend_delay=0.3, **options)
    )
    engine = Engine([source], [sink])
    task = asyncio.create_task(engine.run())
    client = await MesheryClient.connect(nats.url)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while not sink.ready:  # connected and synced: no event spans both
            assert not task.done(), task.result()
            assert loop.time() < deadline, "MeshSync did not become ready"
            await asyncio.sleep(0.05)
        yield Running(sink, client, engine)
    finally:
        await client.close()
        engine.stop("test done")
        await asyncio.wait_for(task, 60)


def make_pod(plane: ControlPlane, namespace: str, name: str, containers: list[str]) -> Any:
    """A pod on kwok's node with log files of its own, Running and serving its log."""
    files = plane.pod_logs(namespace, name, containers)
    plane.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "containers": [{"name": c, "image": "example.invalid/app:1"} for c in containers],
                **KWOK,
            },
        }
    )
    eventually(
        lambda: (plane.api("GET", f"/api/v1/namespaces/{namespace}/pods/{name}").get("status")
                 or {}).get("phase") == "Running",
        60, f"pod {name} Running",
    )  # fmt: skip
    first = containers[0]
    files[first].append("ready-marker")

    def serving() -> bool:  # kwok picks its Logs object up from a watch, a moment later
        status, body = plane.request(
            "GET", f"/api/v1/namespaces/{namespace}/pods/{name}/log?container={first}"
        )
        return status == 200 and b"ready-marker" in body

    eventually(serving, 60, f"kwok serving the log files of {name}")
    return files


async def collect_log(inbox: Inbox, until: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """log-stream messages until their data holds ``until``."""
    messages: list[dict[str, Any]] = []
    text = ""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while until not in text:
        message = await inbox.get(max(deadline - loop.time(), 0.001))
        messages.append(message)
        if message["ObjectType"] == "log-stream":
            text += message["Object"]["data"]
        elif message["ObjectType"] == "error":
            raise AssertionError(f"error from MeshSync: {message['Object']}")
    return messages


def log_text(messages: list[dict[str, Any]]) -> str:
    return "".join(m["Object"]["data"] for m in messages if m["ObjectType"] == "log-stream")


async def round_trip(client: MesheryClient, active: Inbox) -> list[str]:
    """Ask for the session list and wait for it: whatever MeshSync sent before has arrived."""
    await client.request_active()
    while True:
        message = await active.get(30)
        if message["ObjectType"] == "active-exec":
            return list(message["Object"])


async def test_follow_tail_previous_stop_and_duplicate(
    real_cluster: ControlPlane,
    real_kubeconfig: Path,
    real_namespace: str,
    nats_server: NatsServer,
) -> None:
    files = make_pod(real_cluster, real_namespace, "web", ["web", "sidecar"])
    files["web"].append("one", "two", "three")
    files["web"].append("from-before", previous=True)
    async with meshsync(real_kubeconfig, real_namespace, nats_server, **ALLOW) as run:
        logs = await run.client.logs_inbox()
        active = await run.client.sessions_inbox()
        request = log_request("req-1", real_namespace, "web", "web", follow=True, tail_lines=2)
        await run.client.request_logs(request)
        first = await collect_log(logs, "three\n")
        text = log_text(first)
        lines = text.splitlines()
        assert [STAMP.sub("", line) for line in lines] == ["two", "three"]  # tail 2
        assert all(STAMP.match(line) for line in lines)  # timestamps=true, as Go asks
        message = first[0]
        assert list(message) == ["ObjectType", "EventType", "Request", "Object"]
        assert (message["ObjectType"], message["EventType"], message["Request"]) == (
            "log-stream", "ADDED", None,
        )  # fmt: skip
        assert {k: v for k, v in message["Object"].items() if k != "data"} == {
            "id": "req-1",
            "primary": "web",
            "secondary": "web",
        }
        assert f"logs.{real_namespace}.web.web" in await round_trip(run.client, active)

        # appended while followed
        await asyncio.to_thread(files["web"].append, "four", "five")
        assert "five" in log_text(await collect_log(logs, "five\n"))

        # a duplicate while it runs is ignored: one more line arrives once, for req-1
        await run.client.request_logs({**request, "id": "req-2"})
        await round_trip(run.client, active)
        await asyncio.to_thread(files["web"].append, "six")
        sixth = await collect_log(logs, "six\n")
        assert {m["Object"]["id"] for m in sixth} == {"req-1"}
        await round_trip(run.client, active)
        assert logs.empty()

        # stop ends it: the session list empties and later lines go nowhere
        await run.client.stop_logs(request)
        while f"logs.{real_namespace}.web.web" in await round_trip(run.client, active):
            pass
        await asyncio.to_thread(files["web"].append, "after-stop")
        await round_trip(run.client, active)
        assert logs.empty()

        # previous: the earlier instance's log, read to its end (no follow): the session ends
        await run.client.request_logs(
            log_request("req-3", real_namespace, "web", "web", previous=True, tail_lines=10)
        )
        assert "from-before" in log_text(await collect_log(logs, "from-before\n"))
        eventually(lambda: not run.open_sessions, 30, "the previous-log session ended")


async def test_log_errors_are_the_api_servers_own(
    real_cluster: ControlPlane,
    real_kubeconfig: Path,
    real_namespace: str,
    nats_server: NatsServer,
) -> None:
    make_pod(real_cluster, real_namespace, "web", ["web", "sidecar"])
    async with meshsync(real_kubeconfig, real_namespace, nats_server, **ALLOW) as run:
        logs = await run.client.logs_inbox()
        cases = {
            "pod": (log_request("p", real_namespace, "nope", "web"), 'pods "nope" not found'),
            "container": (
                log_request("c", real_namespace, "web", "nope"),
                "container nope is not valid for pod web",
            ),
            "namespace": (log_request("n", "no-such-ns", "web", "web"), 'pods "web" not found'),
            "no container": (
                log_request("d", real_namespace, "web"),
                "a container name must be specified for pod web",
            ),
        }
        for request, _ in cases.values():
            await run.client.request_logs(request)
        errors = {}
        for _ in cases:
            message = await logs.get(30)
            assert message["ObjectType"] == "error" and message["EventType"] == ""
            errors[message["Object"]["id"]] = message["Object"]["data"]
        for (request, expected), rid in zip(cases.values(), "pcnd", strict=True):
            assert request["id"] == rid
            assert expected in errors[rid], (rid, errors[rid])
        assert run.open_sessions == []


async def test_exec_runs_commands_and_reports_the_exit_status(
    real_cluster: ControlPlane,
    real_kubeconfig: Path,
    real_namespace: str,
    nats_server: NatsServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="meshsync")
    make_pod(real_cluster, real_namespace, "shell", ["app"])
    async with meshsync(real_kubeconfig, real_namespace, nats_server, **ALLOW) as run:
        active = await run.client.sessions_inbox()
        shell = await run.client.open_exec(real_namespace, "shell", "app", "uuid-1")
        await shell.wait_open(active)
        await shell.send('echo "mark-$((6*7))-$KWOK_EXEC"')
        out = await shell.read_until("mark-42-1")  # computed by the shell: not the echo
        assert shell.session_id == f"exec.{real_namespace}.shell.app.uuid-1"
        await shell.send("printf 'a\\nb\\n' | wc -l")
        assert re.search(r"\b2\r?\n", await shell.read_until("2\r\n"))
        await shell.send("exit 3")
        message = None
        while message is None or message["ObjectType"] != "error":
            message = await shell.inbox.get(30)
        assert (message["ObjectType"], message["EventType"], message["Request"]) == (
            "error", "", None,
        )  # fmt: skip
        # kube-apiserver's Status as kwok words it (a kubelet says NonZeroExitCode, which
        # becomes kubectl's "command terminated with exit code 3": tests/nats)
        assert re.search(r"exit (code|status) 3$", message["Object"]), message["Object"]
        while shell.session_id in await round_trip(run.client, active):
            pass
        assert "mark" in out
    audit = [r.getMessage() for r in caplog.records if "uuid-1" in r.getMessage()]
    assert any("v5.channel.k8s.io" in line for line in audit), audit  # kubectl's protocol
    assert any("ended" in line and "byte(s) in" in line for line in audit), audit
    assert not any("mark-" in r.getMessage() for r in caplog.records)  # no keystrokes logged


async def test_session_list_limits_and_stop(
    real_cluster: ControlPlane,
    real_kubeconfig: Path,
    real_namespace: str,
    nats_server: NatsServer,
) -> None:
    make_pod(real_cluster, real_namespace, "web", ["web"])
    async with meshsync(
        real_kubeconfig,
        real_namespace,
        nats_server,
        max_sessions=2,
        session_idle_timeout=1.5,
        **ALLOW,
    ) as run:
        active = await run.client.sessions_inbox()
        logs = await run.client.logs_inbox()
        request = log_request("l", real_namespace, "web", "web", follow=True)
        await run.client.request_logs(request)
        shell = await run.client.open_exec(real_namespace, "web", "web", "x")
        await shell.wait_open(active)
        listed = await round_trip(run.client, active)
        assert listed == sorted([f"logs.{real_namespace}.web.web", shell.session_id])
        # a third session is over --max-sessions
        third = await run.client.open_exec(real_namespace, "web", "web", "y")
        refused = await third.inbox.get(30)
        assert refused["ObjectType"] == "error"
        assert "too many sessions open (2, --max-sessions)" in refused["Object"]
        # the shell, left idle, is closed (the log session has no idle limit)
        closing = await shell.inbox.get(30)
        while closing["ObjectType"] != "error":
            closing = await shell.inbox.get(30)
        assert closing["Object"] == "session closed: idle for 1.5s"
        assert await round_trip(run.client, active) == [f"logs.{real_namespace}.web.web"]
        await run.client.stop_logs(request)
        while await round_trip(run.client, active):
            pass
        assert logs.empty()


async def test_rbac_403_without_the_optional_rules_and_a_shell_with_them(
    real_cluster: ControlPlane,
    real_namespace: str,
    nats_server: NatsServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    make_pod(real_cluster, real_namespace, "web", ["web"])
    # the shipped reader role minus pods/log and the wildcard (which matches it too)
    reader = rbac.without_rules(rbac.plain_manifests(), wildcard=True, resources=("pods/log",))
    installed = rbac.install(real_cluster, reader, real_namespace)
    try:
        token = installed.token()
        rbac.wait_authorized(real_cluster, f"/api/v1/namespaces/{real_namespace}/pods", token=token)
        kubeconfig = real_cluster.kubeconfig(
            tmp_path / "sa.kubeconfig", Credentials("meshsync", token=token)
        )
        async with meshsync(kubeconfig, real_namespace, nats_server, **ALLOW) as run:
            logs = await run.client.logs_inbox()
            for attempt in range(2):
                await run.client.request_logs(
                    log_request(f"l{attempt}", real_namespace, "web", "web")
                )
                message = await logs.get(30)
                assert message["ObjectType"] == "error"
                assert "forbidden" in message["Object"]["data"]
                assert 'cannot get resource "pods/log"' in message["Object"]["data"]
                shell = await run.client.open_exec(real_namespace, "web", "web", f"e{attempt}")
                refused = await shell.inbox.get(30)
                assert refused["ObjectType"] == "error" and "forbidden" in refused["Object"]
                assert 'resource "pods/exec"' in refused["Object"]
            eventually(lambda: not run.open_sessions, 30)
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len([w for w in warnings if "refuses exec" in w]) == 1
        assert len([w for w in warnings if "refuses logs" in w]) == 1

        # deploy/kubernetes/meshsync-exec.yaml, bound to the same account: a shell works
        exec_rbac = rbac._pick(
            [*yaml.safe_load_all((ROOT / "deploy/kubernetes/meshsync-exec.yaml").read_text()),
             reader.service_account],
            "deploy/kubernetes/meshsync-exec.yaml",
        )  # fmt: skip
        extra = rbac.install(real_cluster, exec_rbac, real_namespace)
        try:
            eventually(
                lambda: rbac.server_allows(
                    real_cluster,
                    *rbac.service_account_user(real_namespace, "meshsync"),
                    "", "pods/exec", "create",
                ),
                30, "the exec binding in force",
            )  # fmt: skip
            async with meshsync(kubeconfig, real_namespace, nats_server, **ALLOW) as run:
                active = await run.client.sessions_inbox()
                shell = await run.client.open_exec(real_namespace, "web", "web", "ok")
                await shell.wait_open(active)
                await shell.send('echo "allowed-$((1+1))"')
                await shell.read_until("allowed-2")
        finally:
            extra.remove()
    finally:
        installed.remove()


async def test_defaults_refuse_a_shell_without_nats_auth(
    real_cluster: ControlPlane,
    real_kubeconfig: Path,
    real_namespace: str,
    nats_server: NatsServer,
) -> None:
    make_pod(real_cluster, real_namespace, "web", ["web"])
    async with meshsync(real_kubeconfig, real_namespace, nats_server) as run:  # no opt-in
        shell = await run.client.open_exec(real_namespace, "web", "web")
        message = await shell.inbox.get(30)
        assert message["ObjectType"] == "error"
        assert "exec is not served by this MeshSync" in message["Object"]
        assert run.open_sessions == []


async def test_the_wildcard_rule_reads_logs_but_opens_no_shell(
    real_cluster: ControlPlane,
    real_namespace: str,
    nats_server: NatsServer,
    tmp_path: Path,
) -> None:
    """The shipped reader role as it is: its custom-resources wildcard matches pods/log (get)
    and pods/exec (get). This API server (1.35+) wants create for a WebSocket exec too, so the
    shell is refused; older ones accept get (see docs/nats.md)."""
    files = make_pod(real_cluster, real_namespace, "web", ["web"])
    files["web"].append("visible")
    installed = rbac.install(real_cluster, rbac.plain_manifests(), real_namespace)
    try:
        token = installed.token()
        rbac.wait_authorized(real_cluster, f"/api/v1/namespaces/{real_namespace}/pods", token=token)
        kubeconfig = real_cluster.kubeconfig(
            tmp_path / "sa.kubeconfig", Credentials("meshsync", token=token)
        )
        async with meshsync(kubeconfig, real_namespace, nats_server, **ALLOW) as run:
            logs = await run.client.logs_inbox()
            await run.client.request_logs(
                log_request("l", real_namespace, "web", "web", tail_lines=1)
            )
            assert "visible" in log_text(await collect_log(logs, "visible\n"))
            shell = await run.client.open_exec(real_namespace, "web", "web", "e")
            refused = await shell.inbox.get(30)
            assert refused["ObjectType"] == "error"
            assert 'cannot create resource "pods/exec"' in refused["Object"], refused["Object"]
    finally:
        installed.remove()
