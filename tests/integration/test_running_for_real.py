"""The whole program as an operator runs it: ``meshsync run`` against the fake API server, with a
real nats-server, scraped over HTTP — readiness, metrics, and logs that leak nothing.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from meshsync_testkit.fake_apiserver import FakeApiServer, demo_cluster
from meshsync_testkit.nats_server import NatsServer, free_port

from meshsync_core.testing import wait_until_sync

SECRET_PASSWORD = "s3cret-broker-pass"


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return 0, ""


def wait_until(condition, what: str, timeout: float = 30.0, proc=None):  # type: ignore[no-untyped-def]
    """:func:`meshsync_core.testing.wait_until_sync` with this suite's argument order."""
    return wait_until_sync(condition, timeout, what, proc=proc)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[FakeApiServer, Path]]:
    with FakeApiServer.in_thread() as server:
        server.load(demo_cluster())
        yield server, server.write_kubeconfig(tmp_path / "kubeconfig")


def start_meshsync(tmp_path: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MESHSYNC_")}
    environment.pop("BROKER_URL", None)
    environment.update(env)
    return subprocess.Popen(
        [sys.executable, "-m", "meshsync_core", "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=environment,
    )


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.terminate()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return out, err


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_nats_mode_is_ready_only_once_connected_and_metrics_follow_the_events(
    cluster: tuple[FakeApiServer, Path], tmp_path: Path
) -> None:
    server, kubeconfig = cluster
    health = free_tcp_port()
    nats_port = free_port()
    proc = start_meshsync(
        tmp_path,
        "--kubeconfig", str(kubeconfig), "--output", "nats",
        "--broker-url", f"nats://127.0.0.1:{nats_port}",
        "--health-port", str(health), "--health-host", "127.0.0.1",
        "--nats-reconnect-wait", "0.2",
    )  # fmt: skip
    base = f"http://127.0.0.1:{health}"
    try:
        wait_until(lambda: http_get(f"{base}/healthz")[0] == 200, "/healthz", proc=proc)
        # The cluster is synced quickly, but NATS is not there yet: not ready.
        wait_until(
            lambda: metric(
                http_get(f"{base}/metrics")[1], "meshsync_initial_sync_duration_seconds"
            ),
            "the initial sync",
            proc=proc,
        )
        status, body = http_get(f"{base}/readyz")
        assert status == 503 and "sink 'nats' is not ready" in body
        with NatsServer(tmp_path / "nats", port=nats_port):
            wait_until(lambda: http_get(f"{base}/readyz")[0] == 200, "readiness", proc=proc)
            before = metric(
                http_get(f"{base}/metrics")[1], "meshsync_events_emitted_total", type="ADDED"
            )
            assert before >= len(demo_cluster()) - 5
            server.create(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "metrics-probe", "namespace": "default"},
                    "data": {"a": "b"},
                }
            )
            wait_until(
                lambda: (
                    metric(
                        http_get(f"{base}/metrics")[1],
                        "meshsync_events_emitted_total",
                        type="ADDED",
                    )
                    == before + 1
                ),
                "the new object to be counted",
                proc=proc,
            )
            metrics = http_get(f"{base}/metrics")[1]
            assert metric(metrics, "meshsync_ready") == 1
            assert metric(metrics, "meshsync_events_delivered_total", sink="nats") > 0
            assert "meshsync_last_event_age_seconds" in metrics
            stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_file_mode_becomes_ready_once_synced_unlike_go(
    cluster: tuple[FakeApiServer, Path], tmp_path: Path
) -> None:
    _server, kubeconfig = cluster
    health = free_tcp_port()
    snapshot = tmp_path / "snap.yaml"
    proc = start_meshsync(
        tmp_path,
        "--kubeconfig", str(kubeconfig), "--output", "file", "--output-file", str(snapshot),
        "--health-port", str(health), "--health-host", "127.0.0.1",
    )  # fmt: skip
    base = f"http://127.0.0.1:{health}"
    try:
        wait_until(lambda: http_get(f"{base}/readyz")[0] == 200, "readiness", proc=proc)
        metrics = http_get(f"{base}/metrics")[1]
        assert metric(metrics, "meshsync_events_delivered_total", sink="file", type="ADDED") > 0
        stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    docs = [d for d in yaml.safe_load_all(snapshot.read_text()) if d]
    assert {"Deployment", "Pod", "Secret", "Namespace"} <= {d["kind"] for d in docs}


def test_logs_never_show_credentials_or_secret_values(
    cluster: tuple[FakeApiServer, Path], tmp_path: Path
) -> None:
    server, kubeconfig = cluster
    secrets = server.objects("secrets")
    assert secrets, "the demo cluster has Secrets"
    values = set()
    for secret in secrets:
        for value in (secret.get("data") or {}).values():
            values.add(value)
            values.add(base64.b64decode(value).decode(errors="replace"))
    values = {v for v in values if len(v) >= 4}
    assert values

    with NatsServer(tmp_path / "nats", user="meshsync", password=SECRET_PASSWORD) as nats_server:
        url = nats_server.url.replace("nats://", f"nats://meshsync:{SECRET_PASSWORD}@")
        runs = []
        for extra in (
            ["--log-level", "debug"],
            ["--log-level", "debug", "--log-format", "json"],
            ["--log-level", "debug", "--console-format", "json", "--output", "console"],
        ):
            proc = start_meshsync(
                tmp_path,
                "--kubeconfig", str(kubeconfig), "--output", "nats", *extra, "--once",
                BROKER_URL=url, MESHSYNC_HEALTH_PORT="0",
            )  # fmt: skip
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            runs.append(out + err)
        # A wrong password: the error must be clear and must not echo the credential either.
        wrong = url.replace(SECRET_PASSWORD, "wrong-" + SECRET_PASSWORD)
        proc = start_meshsync(
            tmp_path,
            "--kubeconfig", str(kubeconfig), "--output", "nats", "--stop-after", "3s",
            "--log-level", "debug",
            BROKER_URL=wrong, MESHSYNC_HEALTH_PORT="0",
        )  # fmt: skip
        out, err = proc.communicate(timeout=60)
        runs.append(out + err)
        assert re.search(r"authori[sz]ation", err, re.IGNORECASE), err

    for output in runs:
        assert SECRET_PASSWORD not in output
        for value in values:
            assert value not in output, f"a Secret value leaked: {value[:4]}…"
    assert "[REDACTED]" in runs[2]  # the console sink printed the Secret, redacted
