"""A MeshSync that is SIGKILLed and started again emits only what changed while it was down,
DELETED included, from the published index in a JetStream key-value bucket (issue 15, part 1).

Tried as a user would: publish to NATS, SIGKILL meshsync, delete / change / add ConfigMaps,
start meshsync again - the subscriber hears of every one of those changes, and of nothing else.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
from meshsync_nats.index_store import FORMAT_KEY
from meshsync_testkit.fake_apiserver import FakeApiServer, demo_cluster
from meshsync_testkit.nats_server import NatsServer

from tests.nats.helpers import Subscriber, wait_indexed, wait_until

BUCKET = "meshsync-index"
PLURALS = ("configmaps", "pods", "services", "namespaces", "nodes")


def _start(tmp_path: Path, kubeconfig: Path, nats_url: str, *extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHSYNC_")}
    env["MESHSYNC_HEALTH_PORT"] = "0"
    return subprocess.Popen(
        [sys.executable, "-m", "meshsync_core", "run", "--kubeconfig", str(kubeconfig),
         "--output", "nats", "--broker-url", nats_url, *extra],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.terminate()
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err


def _cluster(server: FakeApiServer) -> dict[str, str]:
    return {
        o["metadata"]["uid"]: o["metadata"]["resourceVersion"]
        for plural in PLURALS
        for o in server.objects(plural)
    }


def _picture(sub: Subscriber) -> dict[str, str]:
    kinds = {plural[:-1] for plural in PLURALS}
    return {
        uid: version
        for uid, version in sub.versions().items()
        if sub.view[uid]["kind"].lower() in kinds
    }


def _churn_while_down(
    server: FakeApiServer,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Delete one ConfigMap, change another, add a third; return them."""
    configmaps = server.objects("configmaps")
    gone, changed = configmaps[0], configmaps[1]
    server.delete(gone)
    changed.setdefault("data", {})["while"] = "down"
    changed = server.update(changed)
    added = server.create(
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "added-while-down", "namespace": "default"}}
    )  # fmt: skip
    return gone, changed, added


@pytest.fixture
def cluster(tmp_path: Path):
    with FakeApiServer.in_thread() as server:
        server.load(demo_cluster())
        yield server, server.write_kubeconfig(tmp_path / "kubeconfig")


@dataclass
class Killed:
    """A first run published everything, its index is complete, and it was SIGKILLed; the
    subscriber stays connected."""

    server: FakeApiServer
    kubeconfig: Path
    url: str
    sub: Subscriber
    workdir: Path

    async def restart(
        self,
        done: Callable[[], bool],
        what: str,
        *flags: str,
        then: Callable[[], Awaitable[None]] | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """Start meshsync again until ``done`` (and ``then`` returned); the messages it
        published and its stderr."""
        heard = len(self.sub.messages)
        second = _start(self.workdir, self.kubeconfig, self.url, *flags)
        try:
            await wait_until(done, 30, what)
            if then is not None:
                await then()
        finally:
            err = _stop(second)
        return self.sub.messages[heard:], err

    def everything_again(self) -> Callable[[], bool]:
        heard, total = len(self.sub.messages), len(_cluster(self.server))
        return lambda: len(self.sub.messages) >= heard + total


@pytest.fixture
async def killed(tmp_path: Path, cluster) -> AsyncIterator[Killed]:
    server, kubeconfig = cluster
    with NatsServer(tmp_path / "nats", jetstream=True) as nats_server:
        sub = Subscriber()
        await sub.connect(nats_server.url)
        try:
            first = _start(tmp_path, kubeconfig, nats_server.url)
            try:
                await wait_until(
                    lambda: _picture(sub) == _cluster(server), 30, "the first run's sync"
                )
                await wait_indexed(nats_server.url, set(_cluster(server)))
                first.send_signal(signal.SIGKILL)
                first.wait(timeout=10)
            finally:
                _stop(first)
            yield Killed(server, kubeconfig, nats_server.url, sub, tmp_path)
        finally:
            await sub.close()


async def test_sigkill_then_restart_emits_only_what_changed_meanwhile(killed: Killed) -> None:
    gone, changed, added = _churn_while_down(killed.server)
    after, err = await killed.restart(
        lambda: _picture(killed.sub) == _cluster(killed.server) and len(killed.sub.messages) >= 3,
        "the restart's diff",
    )
    changes = sorted((m["EventType"], m["Object"]["metadata"]["uid"]) for m in after)
    # exactly these: the unchanged objects are not announced again
    assert changes == sorted([
        ("DELETED", gone["metadata"]["uid"]),
        ("MODIFIED", changed["metadata"]["uid"]),
        ("ADDED", added["metadata"]["uid"]),
    ]), err  # fmt: skip
    assert "published index" in err and "Traceback" not in err


async def test_without_the_index_a_restart_reannounces_everything_as_go_does(
    killed: Killed,
) -> None:
    gone, _changed, _added = _churn_while_down(killed.server)
    after, _err = await killed.restart(
        killed.everything_again(), "the re-announcement", "--no-published-index"
    )
    assert {m["EventType"] for m in after} == {"ADDED"}
    # Go's hole, kept behind the flag: the delete made while down is never heard of
    assert gone["metadata"]["uid"] in killed.sub.view


async def test_a_corrupt_index_is_one_warning_and_the_old_behaviour(killed: Killed) -> None:
    nc = await nats.connect(killed.url)
    try:
        kv = await nc.jetstream().key_value(BUCKET)
        key = next(k for k in await kv.keys() if k != FORMAT_KEY)
        await kv.put(key, b"\x00not a record")
    finally:
        await nc.close()

    async def rebuilt() -> None:  # from what this run published
        await wait_indexed(killed.url, set(_cluster(killed.server)))

    after, err = await killed.restart(
        killed.everything_again(), "the re-announcement", then=rebuilt
    )
    assert {m["EventType"] for m in after} == {"ADDED"}
    warnings = [line for line in err.splitlines() if "cannot be used" in line]
    assert len(warnings) == 1, err
    assert "Traceback" not in err
