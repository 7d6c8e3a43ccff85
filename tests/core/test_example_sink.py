"""The example from docs/writing-plugins.md, Part 1, run against the pip-installed example."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from meshsync_core import Engine, Options
from meshsync_core.testing import MemorySource, make_event


async def test_writes_one_line_per_event(plugin_site: Path, tmp_path: Path) -> None:
    sys.path.insert(0, str(plugin_site))
    try:
        example = importlib.import_module("meshsync_jsonl_sink")
    finally:
        sys.path.remove(str(plugin_site))
    sink = example.JsonLinesSink(Options(jsonl_path=str(tmp_path / "out.jsonl")))
    result = await Engine([MemorySource([make_event("a"), make_event("b")])], [sink]).run()
    assert result.exit_code == 0
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 2


async def test_unwritable_path_is_a_clear_startup_error(plugin_site: Path, tmp_path: Path) -> None:
    sys.path.insert(0, str(plugin_site))
    try:
        example = importlib.import_module("meshsync_jsonl_sink")
    finally:
        sys.path.remove(str(plugin_site))
    sink = example.JsonLinesSink(Options(jsonl_path=str(tmp_path / "no-such-dir" / "out.jsonl")))
    result = await Engine([MemorySource([make_event("a")])], [sink]).run()
    assert result.exit_code == 2
    assert "No such file or directory" in result.reason
