"""What Meshery Server checks before it trusts a MeshSync, against the ``meshery-meshsync``
command as Meshery Operator runs it (no arguments, everything from the environment):

* the NATS monitor's ``/connz`` lists a client named exactly ``meshsync`` ("Connected");
* ``BROKER_URL=nats://<token>@host:port``, the way the Operator passes its broker's token, works,
  and a wrong token gives one clear error line (the token itself never printed);
* ``/healthz`` and ``/readyz`` answer as the Deployment's probes expect;
* no message, on any subject, ever carries ``EventType: "ERROR"`` (Meshery Server type-asserts
  such an Object to a Go error and panics), even while the API server misbehaves.

The API server is ``meshsync_testkit.fake_apiserver`` (its faults on demand); NATS is a real
``nats-server`` with token authentication and its HTTP monitor.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
import yaml
from meshsync_testkit.fake_apiserver import FakeApiServer, demo_cluster
from meshsync_testkit.nats_server import NatsServer, free_port

from meshsync_core.health import DEFAULT_PORT
from tests.integration.meshery_checks import (
    clean_env,
    connz_names,
    http_get,
    meshery_meshsync,
    monitored_nats,
    operator_token,
    probe_ok,
    start,
    stop,
    token_url,
    wait_until,
)

CORE_SUBJECT = "meshery.meshsync.core"
REQUEST_SUBJECT = "meshery.meshsync.request"
ERROR_EVENT = re.compile(rb'"EventType"\s*:\s*"ERROR"')


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[FakeApiServer, Path]]:
    with FakeApiServer.in_thread() as server:
        server.load(demo_cluster())
        yield server, server.write_kubeconfig(tmp_path / "kubeconfig")


def test_the_health_port_is_the_operators_11000_by_default() -> None:
    """The Operator's Deployment sets no port flag or variable: the probes target 11000."""
    assert DEFAULT_PORT == 11000


def test_connz_lists_meshsync_with_the_operators_token_url_and_the_probes_answer(
    cluster: tuple[FakeApiServer, Path], tmp_path: Path
) -> None:
    _server, kubeconfig = cluster
    token = operator_token()
    nats_port, health = free_port(), free_port()
    url = f"nats://{token}@127.0.0.1:{nats_port}"
    env = clean_env(BROKER_URL=url, KUBECONFIG=str(kubeconfig), MESHSYNC_HEALTH_PORT=str(health))
    proc = start([meshery_meshsync()], env, cwd=tmp_path)
    base = f"http://127.0.0.1:{health}"
    try:
        # NATS is not there yet: alive (the liveness probe passes), not ready.
        wait_until(lambda: probe_ok(http_get(f"{base}/healthz")[0]), "/healthz", proc=proc)
        status, body = http_get(f"{base}/readyz")
        assert not probe_ok(status), (status, body)
        assert status == 503 and "nats" in body
        with monitored_nats(tmp_path / "nats", token=token, port=nats_port) as (_nats, monitor):
            wait_until(lambda: probe_ok(http_get(f"{base}/readyz")[0]), "/readyz", proc=proc)
            names = wait_until(lambda: connz_names(monitor), "a client in /connz", proc=proc)
            assert names == ["meshsync"]
            assert probe_ok(http_get(f"{base}/healthz")[0])
            code, out, err = stop(proc)
    finally:
        if proc.poll() is None:
            stop(proc)
    assert code == 0, err
    assert token not in out + err
    assert "connected to NATS at nats://***@127.0.0.1" in err


def test_a_wrong_token_is_one_clear_line_and_never_printed(
    cluster: tuple[FakeApiServer, Path], tmp_path: Path
) -> None:
    _server, kubeconfig = cluster
    wrong = operator_token()
    with monitored_nats(tmp_path / "nats", token=operator_token()) as (nats_server, monitor):
        env = clean_env(
            BROKER_URL=token_url(nats_server, wrong),
            KUBECONFIG=str(kubeconfig),
            MESHSYNC_HEALTH_PORT=str(health := free_port()),
        )
        proc = start([meshery_meshsync(), "-nats-reconnect-wait", "0.1"], env, cwd=tmp_path)
        try:
            # It keeps trying (credentials can be fixed on the server side): several refusals.
            wait_until(
                lambda: nats_server.read_log().count("authentication error") >= 5,
                "five refused attempts",
                proc=proc,
            )
            assert http_get(f"http://127.0.0.1:{health}/readyz")[0] == 503
            assert connz_names(monitor) == []
        finally:
            code, out, err = stop(proc)
    rejected = [line for line in err.splitlines() if "rejected the credentials" in line]
    assert len(rejected) == 1, err
    assert "ERROR" in rejected[0] and "nats://***@127.0.0.1" in rejected[0]
    assert "Authorization Violation" in rejected[0]
    assert wrong not in out + err
    # Stopped with everything undelivered: the run failed, and says why in its last line.
    assert code == 1
    assert err.strip().splitlines()[-1].startswith("meshsync: error: could not connect to NATS")


async def _until(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll while the event loop keeps receiving NATS messages."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.timeout(180)
async def test_no_message_on_any_subject_has_event_type_error_even_under_faults(
    cluster: tuple[FakeApiServer, Path], tmp_path: Path
) -> None:
    server, kubeconfig = cluster
    token = operator_token()
    health = free_port()
    received: list[tuple[str, bytes]] = []
    with NatsServer(tmp_path / "nats", token=token) as nats_server:
        watcher = await nats.connect(nats_server.url, token=token, name="test-watcher")

        async def collect(msg: Any) -> None:
            received.append((msg.subject, msg.data))

        await watcher.subscribe(">", cb=collect)
        await watcher.flush()
        env = clean_env(
            BROKER_URL=token_url(nats_server, token),
            KUBECONFIG=str(kubeconfig),
            MESHSYNC_HEALTH_PORT=str(health),
        )
        proc = start([meshery_meshsync()], env, cwd=tmp_path)
        base = f"http://127.0.0.1:{health}"

        def core_events() -> list[dict[str, Any]]:
            return [json.loads(data) for subject, data in received if subject == CORE_SUBJECT]

        def saw(name: str, event: str = "ADDED") -> bool:
            return any(
                e.get("EventType") == event
                and (e["Object"].get("metadata") or {}).get("name") == name
                for e in core_events()
            )

        def metrics() -> str:
            return http_get(f"{base}/metrics")[1]

        try:
            await _until(lambda: probe_ok(http_get(f"{base}/readyz")[0]), "readiness")
            # Every watch gets an ERROR watch event (410 Expired), then the re-lists fail.
            server.faults.fail_next(4, status=500)
            server.faults.expire_watches()
            await _until(
                lambda: _metric(metrics(), "meshsync_k8s_watch_errors_total", code="410"),
                "the source to see the 410s",
            )
            server.create(_config_map("during-faults"))
            # known to the source before it goes, or its delete is no one's to report
            await _until(lambda: saw("during-faults"), "the change made during the faults")
            # History compacted while connections are cut; events lost in transit.
            server.faults.lose_next_events(1)
            server.create(_config_map("lost-in-transit"))
            server.faults.compact()
            server.faults.drop_connections()
            server.faults.forbid("secrets")
            server.faults.expire_watches()
            server.delete(_config_map("during-faults"))
            # Requests Meshery Server sends, and some it never would.
            await watcher.publish(REQUEST_SUBJECT, b"not json at all")
            await watcher.publish(REQUEST_SUBJECT, b'{"Request": {"Entity": "no-such-entity"}}')
            await watcher.publish(REQUEST_SUBJECT, b'{"Request": {"Entity": "informer-store"}}')
            await watcher.publish(
                REQUEST_SUBJECT,
                json.dumps(
                    {"Request": {"Entity": "informer-store", "Payload": {"Reply": "store.reply"}}}
                ).encode(),
            )
            await watcher.publish(REQUEST_SUBJECT, b'{"Request": {"Entity": "meshsync-meta"}}')
            server.faults.allow("secrets")
            server.create(_config_map("after-faults"))
            await _until(lambda: saw("after-faults"), "the change made after the faults")
            await _until(lambda: saw("during-faults", "DELETED"), "the delete during the faults")
            await _until(
                lambda: any(subject == "store.reply" for subject, _ in received),
                "the informer-store answer",
            )
            await _until(
                lambda: any(subject == "meshsync-meta" for subject, _ in received),
                "the meshsync-meta answer",
            )
            assert proc.poll() is None
        finally:
            code, _out, err = await asyncio.to_thread(stop, proc)
            await watcher.drain()
    assert code == 0, err
    ours = [(s, d) for s, d in received if s != REQUEST_SUBJECT]
    assert len(core_events()) >= len(demo_cluster())
    for subject, data in ours:
        assert not ERROR_EVENT.search(data), f"EventType ERROR on {subject}: {data[:300]!r}"
        try:
            message = json.loads(data)
        except ValueError:
            continue
        if isinstance(message, dict) and "EventType" in message:
            assert message["EventType"] in {"ADDED", "MODIFIED", "DELETED", ""}, (subject, data)
    assert {e["EventType"] for e in core_events()} <= {"ADDED", "MODIFIED", "DELETED"}


def _config_map(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"k": "v"},
    }


def test_go_flags_without_a_subcommand_write_a_filtered_snapshot(
    cluster: tuple[FakeApiServer, Path], tmp_path: Path
) -> None:
    """Go MeshSync's file-mode flags, single-dash, plus Go's "forever" stopAfter (-1ns)."""
    _server, kubeconfig = cluster
    snapshot = tmp_path / "snap.yaml"
    proc = start(
        [
            meshery_meshsync(),
            "-output", "file", f"-outputFile={snapshot}",
            "-outputNamespaces", "shop", "-outputResources", "pod,deployment",
            "-stopAfter=-1ns", "--once",
        ],
        clean_env(KUBECONFIG=str(kubeconfig), MESHSYNC_HEALTH_PORT="0"),
        cwd=tmp_path,
    )  # fmt: skip
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    docs = [doc for doc in yaml.safe_load_all(snapshot.read_text()) if doc]
    assert docs and {doc["kind"] for doc in docs} == {"Pod", "Deployment"}
    assert {doc["metadata"]["namespace"] for doc in docs} == {"shop"}
