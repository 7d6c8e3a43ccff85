"""docs/writing-plugins.md, Part 2, run for real.

The SQLite sink package is written out of the page (every code block marked with
``<!-- file: PATH -->``), pip-installed into a scratch directory like the example sink in
``conftest.py``, and its own test suite - the in-process tests and the ``meshsync run --config``
test - is run with pytest in a subprocess, with the pytest settings the page recommends.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "writing-plugins.md"
BLOCK = re.compile(r"<!-- file: (?P<path>[\w./-]+) -->\n```\w*\n(?P<body>.*?)\n```\n", re.DOTALL)


def with_site(site: Path) -> str:
    """PYTHONPATH with ``site`` in front of whatever was there."""
    return os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])


def documented_files() -> dict[str, str]:
    return {m["path"]: m["body"] + "\n" for m in BLOCK.finditer(PAGE.read_text(encoding="utf-8"))}


def test_the_page_holds_the_whole_package() -> None:
    assert set(documented_files()) == {
        "meshsync-sqlite-sink/pyproject.toml",
        "meshsync-sqlite-sink/meshsync_sqlite_sink/__init__.py",
        "meshsync-sqlite-sink/tests/test_sqlite_sink.py",
        "meshsync-sqlite-sink/tests/test_cli.py",
    }


@pytest.fixture(scope="module")
def sqlite_sink(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(package directory, site directory it is installed in)."""
    work = tmp_path_factory.mktemp("doc-plugin")
    for relative, body in documented_files().items():
        path = work / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")
    package, site = work / "meshsync-sqlite-sink", work / "site"
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
            "--no-build-isolation", "--target", str(site), str(package),
        ],
        check=True,
    )  # fmt: skip
    return package, site


def test_the_documented_tests_pass_without_warnings(sqlite_sink: tuple[Path, Path]) -> None:
    package, site = sqlite_sink
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MESHSYNC_", "PYTEST_"))}
    env["PYTHONPATH"] = with_site(site)  # "installed", for the entry point the CLI finds
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error", "tests"],
        cwd=package,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    summary = output.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed in [\d.]+s", summary), summary  # no warnings, no skips
    assert int(summary.split()[0]) >= 10


def test_the_sink_is_a_loaded_plugin(sqlite_sink: tuple[Path, Path], tmp_path: Path) -> None:
    _package, site = sqlite_sink
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHSYNC_")}
    env["PYTHONPATH"] = with_site(site)

    def meshsync(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "meshsync_core", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    listed = meshsync("plugins", "list").stdout.splitlines()
    row = next(line for line in listed if line.startswith("sqlite "))
    # the line the page shows
    assert row.split() == [
        "sqlite", "meshsync-sqlite-sink", "1.0.0", "sink", "add_options,sinks", "sink:sqlite",
        "loaded",
    ]  # fmt: skip
    assert " ".join(row.split()) in " ".join(PAGE.read_text(encoding="utf-8").split())
    # the ConfigError the page quotes
    result = meshsync("run", "--output", "sqlite", "--sqlite-path", str(tmp_path))
    assert result.returncode == 2
    assert f"meshsync: error: --sqlite-path '{tmp_path}' is a directory" in result.stderr
