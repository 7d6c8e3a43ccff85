"""``meshery-meshsync``: Go MeshSync's command line, as Meshery Operator's Deployment uses it.

Go's ``flag`` package: one dash or two, ``-flag=value`` or ``-flag value``, no subcommand;
``-h``/``-help`` print the usage and exit 0 (Go's ``flag.ExitOnError`` on ``ErrHelp``); an
unknown flag exits 2. The Operator's exec liveness probe runs ``./meshery-meshsync -h`` every
30 seconds, so that answer must not load any plugin.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from meshsync_core import go_command
from tests.integration.meshery_checks import clean_env, meshery_meshsync

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: hatchling's dependency
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
#: main.go's parseFlags, read from meshery/meshsync (v1.0.3-7, July 2026).
GO_FLAGS = {"broker-url", "output", "outputFile", "outputNamespaces", "outputResources",
            "stopAfter"}  # fmt: skip


def test_the_console_script_is_declared_and_installed() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["meshery-meshsync"] == "meshsync_core.go_command:entry"
    assert Path(meshery_meshsync()).exists()


def test_usage_lists_every_go_flag_in_gos_layout() -> None:
    text = go_command.usage()
    assert text.startswith("Usage of meshery-meshsync:\n")
    listed = {line.split()[0].lstrip("-") for line in text.splitlines() if line.startswith("  -")}
    assert listed == GO_FLAGS
    assert "  -stopAfter duration\n    \t" in text and "  -output string\n    \t" in text


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-h"], True),
        (["--help"], True),
        (["-help"], True),
        (["--h"], True),
        (["-output", "file", "-h"], True),
        (["-output=file", "-help"], True),
        (["-output", "-h"], False),  # Go: the output mode is "-h"
        (["-stopAfter", "-h"], False),
        (["--", "-h"], False),  # after "--" nothing is a flag
        ([], False),
        (["-outputFile", "x.yaml"], False),
    ],
)
def test_help_is_recognised_where_go_would_see_it(args: list[str], expected: bool) -> None:
    assert go_command.wants_help(args) is expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-stopAfter", "-1ns"], []),
        (["-stopAfter=-1ns", "-output", "file"], ["-output", "file"]),
        (["--stopAfter", "-2s"], []),
        (["-stopAfter", "8s"], ["-stopAfter", "8s"]),
        (["-stopAfter=0s"], ["-stopAfter=0s"]),
        (["--", "-stopAfter", "-1ns"], ["--", "-stopAfter", "-1ns"]),
    ],
)
def test_a_negative_stop_after_means_forever_as_in_go(args: list[str], expected: list[str]) -> None:
    assert go_command.drop_negative_stop_after(args) == expected


@pytest.mark.parametrize("flag", ["-h", "-help", "--help"])
def test_help_exits_0_with_the_usage(flag: str) -> None:
    result = subprocess.run(
        [meshery_meshsync(), flag], capture_output=True, text=True, env=clean_env(), timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage of meshery-meshsync:")
    assert result.stderr == ""


def test_help_loads_no_plugin_and_not_the_cli() -> None:
    """The liveness probe's fork stays small: only this module and the package's own imports."""
    code = (
        "import sys; from meshsync_core import go_command; rc = go_command.main(['-h']); "
        "loaded = [m for m in sys.modules if m.startswith(('meshsync_k8s', 'meshsync_nats', "
        "'meshsync_file', 'meshsync_core.cli'))]; print(rc, loaded, file=sys.stderr)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=clean_env(), timeout=30
    )
    assert result.stderr.strip() == "0 []", result.stderr


def test_an_unknown_flag_exits_2_like_go(tmp_path: Path) -> None:
    result = subprocess.run(
        [meshery_meshsync(), "-no-such-flag"],
        capture_output=True,
        text=True,
        env=clean_env(MESHSYNC_HEALTH_PORT="0"),
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2
    assert "No such option '--no-such-flag'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_go_value_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [meshery_meshsync(), "-output", "carrier-pigeon"],
        capture_output=True,
        text=True,
        env=clean_env(MESHSYNC_HEALTH_PORT="0"),
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2
    assert "unknown sink 'carrier-pigeon'" in result.stderr
    assert "Traceback" not in result.stderr
