"""``meshsync demo``: the README's first command, with no cluster around."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml


def meshsync(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"KUBECONFIG", "BROKER_URL"}}
    return subprocess.run(
        [sys.executable, "-m", "meshsync_core", *args],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=cwd,
        env=env,
    )


def test_demo_shows_discovery_then_live_changes(tmp_path: Path) -> None:
    result = meshsync("demo", "--stop-after", "4s", "--churn-interval", "0.2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    before, marker, after = result.stdout.partition("--- initial sync complete")
    assert marker, result.stdout
    initial = {line.split()[1] for line in before.splitlines() if line.startswith("ADDED")}
    assert {"namespaces", "pods", "deployments", "replicasets", "services", "secrets"} <= initial
    assert "widgets" in initial  # the demo CRD's objects
    live = {line.split()[0] for line in after.splitlines()[1:] if line}
    assert {"ADDED", "MODIFIED", "DELETED"} <= live
    assert "Traceback" not in result.stderr


def test_demo_takes_every_run_option(tmp_path: Path) -> None:
    snapshot = tmp_path / "demo.yaml"
    result = meshsync(
        "demo", "--output", "file", "--once", "--output-file", str(snapshot), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    kinds = {doc["kind"] for doc in yaml.safe_load_all(snapshot.read_text()) if doc}
    assert {"Deployment", "Pod", "Secret", "Widget"} <= kinds
