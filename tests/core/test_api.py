"""The library API: running the engine in-process with chosen plugins, as the CLI does."""

from __future__ import annotations

import types

import click

from meshsync_core import Sink, Source, hookimpl
from meshsync_core.api import arun, resolve_options
from meshsync_core.plugin_manager import PluginRegistry
from meshsync_core.testing import CaptureSink, MemorySource, make_event

CAPTURED = CaptureSink()


class Three(MemorySource):
    name = "three"

    def __init__(self, options) -> None:  # type: ignore[no-untyped-def]
        super().__init__([make_event(f"obj-{i}") for i in range(options["how_many"])])


class Captured(CaptureSink):
    name = "captured"

    def __init__(self, options) -> None:  # type: ignore[no-untyped-def]
        super().__init__(options)
        CAPTURED.events = self.events  # share the list so the test can read it


def make_plugin() -> types.ModuleType:
    plugin = types.ModuleType("inline_plugin")

    @hookimpl
    def meshsync_sources() -> list[type[Source]]:
        return [Three]

    @hookimpl
    def meshsync_sinks() -> list[type[Sink]]:
        return [Captured]

    @hookimpl
    def meshsync_add_options() -> list[click.Option]:
        return [click.Option(["--how-many"], type=int, default=3)]

    plugin.meshsync_sources = meshsync_sources  # type: ignore[attr-defined]
    plugin.meshsync_sinks = meshsync_sinks  # type: ignore[attr-defined]
    plugin.meshsync_add_options = meshsync_add_options  # type: ignore[attr-defined]
    return plugin


async def test_arun_selects_components_by_name_and_fills_option_defaults() -> None:
    manager = PluginRegistry.from_plugins(make_plugin())
    result = await arun(source="three", outputs=["captured"], manager=manager, options={})
    assert result.exit_code == 0, result.reason
    assert [e.name for e in CAPTURED.events] == ["obj-0", "obj-1", "obj-2"]


async def test_arun_converts_option_values_like_the_cli() -> None:
    manager = PluginRegistry.from_plugins(make_plugin())
    options = resolve_options(manager, {"how_many": "5", "stop_after": "2m"})
    assert options["how_many"] == 5
    assert options["stop_after"] == 120
    result = await arun(
        source="three", outputs=["captured"], manager=manager, options={"how_many": 1}
    )
    assert result.exit_code == 0
    assert len(CAPTURED.events) == 1


async def test_arun_reports_configuration_errors_as_results() -> None:
    manager = PluginRegistry.from_plugins(make_plugin())
    result = await arun(source="three", outputs=["nowhere"], manager=manager)
    assert result.exit_code == 2
    assert result.reason == "unknown sink 'nowhere'; installed sinks: captured"
    result = await arun(source="three", outputs=["captured"], manager=manager, options={"x": 1})
    assert result.exit_code == 2
    assert result.reason == "unknown setting 'x'"


async def test_values_passed_by_a_program_beat_environment_variables(monkeypatch) -> None:
    manager = PluginRegistry.from_plugins(make_plugin())
    monkeypatch.setenv("MESHSYNC_LOG_FORMAT", "json")
    assert resolve_options(manager, {})["log_format"] == "json"
    assert resolve_options(manager, {"log_format": "text"})["log_format"] == "text"
