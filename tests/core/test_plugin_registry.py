"""The plugin loader's phases on in-process plugins: what pluggy options it cannot honour is a
clear load error for that plugin alone, and MESHSYNC_TRACE_HOOKS logs every hook call."""

from __future__ import annotations

import logging
import types

import pytest

from meshsync_core import Sink, hookimpl
from meshsync_core.plugin_manager import FoundPlugin, LoadedPlugin, PluginRegistry, find_plugins


class _NullSink(Sink):
    name = "null"

    async def deliver(self, events) -> None:  # type: ignore[no-untyped-def]
        pass


def _plugin(name: str, **hook_options: bool) -> types.ModuleType:
    module = types.ModuleType(name)

    def meshsync_sinks() -> list[type[Sink]]:
        return [_NullSink]

    def wrapping_meshsync_sinks():  # type: ignore[no-untyped-def]
        return (yield)  # a wrapper is a generator (pluggy checks that itself)

    wrapping = hook_options.get("hookwrapper") or hook_options.get("wrapper")
    function = wrapping_meshsync_sinks if wrapping else meshsync_sinks
    function.__name__ = "meshsync_sinks"
    module.meshsync_sinks = hookimpl(**hook_options)(function)  # type: ignore[attr-defined]
    return module


@pytest.mark.parametrize("option", ["tryfirst", "trylast", "hookwrapper", "wrapper"])
def test_hook_options_meshsync_cannot_honour_fail_that_plugin_only(option: str) -> None:
    registry = PluginRegistry.from_plugins(_plugin("odd", **{option: True}), _plugin("fine"))
    odd, fine = registry.plugins
    assert odd.status == "failed"
    assert f"hook meshsync_sinks uses {option}, which MeshSync does not honour" in str(odd.error)
    assert fine.status == "loaded" and registry.sinks == {"null": _NullSink}
    assert registry.pluggy_manager.get_plugin("odd") is None  # not left half-registered


def test_trace_env_logs_every_hook_call(monkeypatch, caplog) -> None:
    monkeypatch.setenv("MESHSYNC_TRACE_HOOKS", "1")
    caplog.set_level(logging.INFO, logger="meshsync.plugins")
    PluginRegistry.from_plugins(_plugin("traced"))
    assert any(
        "hook meshsync_sinks of plugin 'traced' returned" in r.getMessage() for r in caplog.records
    )


def test_the_phases_are_plain_records() -> None:
    found = find_plugins()
    assert found and all(isinstance(f, FoundPlugin) for f in found)
    assert {"k8s", "nats", "file", "testkit"} <= {f.name for f in found}
    with pytest.raises(AttributeError):
        found[0].name = "changed"  # type: ignore[misc]  # frozen
    registry = PluginRegistry()
    registry.add(found[0])
    assert registry.plugins[0].name == found[0].name
    assert LoadedPlugin.__dataclass_params__.frozen  # type: ignore[attr-defined]
