"""Fixtures for the core tests: real plugin packages installed with pip into a scratch site dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_PLUGINS = ROOT / "tests" / "fixtures" / "plugins"
EXAMPLE_SINK = ROOT / "examples" / "meshsync-jsonl-sink"


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding pip-installed plugin packages (example sink + broken fixtures).

    Installed with ``pip install --target`` so that their entry points are real installed
    metadata, found by ``importlib.metadata`` when the directory is on ``PYTHONPATH``.
    """
    target = tmp_path_factory.mktemp("plugin-site")
    packages = [EXAMPLE_SINK, *sorted(p for p in FIXTURE_PLUGINS.iterdir() if p.is_dir())]
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
            "--no-build-isolation", "--target", str(target), *map(str, packages),
        ],
        check=True,
    )  # fmt: skip
    return target


class MeshSyncCLI:
    """Runs ``python -m meshsync_core`` in a subprocess with extra plugins on the path."""

    def __init__(self, site: Path | None, cwd: Path) -> None:
        self.site = site
        self.cwd = cwd

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MESHSYNC_")}
        env["MESHSYNC_HEALTH_PORT"] = "0"
        env.pop("DEBUG", None)
        if self.site is not None:
            env["PYTHONPATH"] = str(self.site)
        env.update(extra)
        return env

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "meshsync_core", *args]

    def run(self, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(**env),
            cwd=self.cwd,
        )

    def start(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(**env),
            cwd=self.cwd,
        )


@pytest.fixture
def cli(plugin_site: Path, tmp_path: Path) -> MeshSyncCLI:
    return MeshSyncCLI(plugin_site, tmp_path)


@pytest.fixture
def plain_cli(tmp_path: Path) -> MeshSyncCLI:
    """The CLI with only the plugins installed in the environment."""
    return MeshSyncCLI(None, tmp_path)
