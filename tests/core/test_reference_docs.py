"""docs/reference.md is generated from the docstrings and must match them; every hook has one."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

from meshsync_core import Sink, hookspecs
from meshsync_core.plugin_manager import PluginRegistry, _new_pluggy_manager

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "docs" / "gen_reference.py"
REFERENCE = ROOT / "docs" / "reference.md"


@pytest.fixture(scope="module")
def gen_reference() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("gen_reference", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_reference"] = module
    spec.loader.exec_module(module)
    return module


def test_reference_matches_the_docstrings(gen_reference: types.ModuleType) -> None:
    page = gen_reference.render()
    assert REFERENCE.read_text(encoding="utf-8") == page, (
        "docs/reference.md is out of date: run `python docs/gen_reference.py` and commit it"
    )
    assert str(ROOT) not in page and " at 0x" not in page  # nothing of the generating machine


def test_every_hook_is_documented(gen_reference: types.ModuleType) -> None:
    specs = gen_reference.hookspec_functions()
    # the generator finds exactly the hooks pluggy knows
    known = {name for name in dir(_new_pluggy_manager().hook) if name.startswith("meshsync_")}
    assert {spec.__name__ for spec in specs} == known
    reference = REFERENCE.read_text(encoding="utf-8")
    for spec in specs:
        assert (spec.__doc__ or "").strip(), f"hook {spec.__name__} has no docstring"
        assert f"### `{spec.__name__}`" in reference


def test_an_undocumented_hook_fails_the_generator(
    gen_reference: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    def meshsync_undocumented() -> None:
        pass

    monkeypatch.setattr(
        hookspecs, "meshsync_undocumented", hookspecs.hookspec(meshsync_undocumented), raising=False
    )
    with pytest.raises(gen_reference.MissingDocstrings, match="hook meshsync_undocumented"):
        gen_reference.render()
    assert gen_reference.main(["--check"]) == 1


def test_an_undocumented_method_fails_the_generator(
    gen_reference: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def flush(self: Sink) -> None:
        pass

    monkeypatch.setattr(Sink, "flush", flush, raising=False)
    with pytest.raises(gen_reference.MissingDocstrings, match=r"Sink\.flush"):
        gen_reference.render()


def test_check_mode_passes_on_the_committed_page(gen_reference: types.ModuleType) -> None:
    assert gen_reference.main(["--check"]) == 0


def test_descriptions_are_listed_by_plugins_list() -> None:
    """What ``Component.description`` is documented to be used for."""

    class Described(Sink):
        name = "described"
        description = "keeps things"

    class Plain(Sink):
        name = "plain"

    plugin = types.SimpleNamespace(
        meshsync_sinks=hookspecs.hookimpl(lambda: [Described, Plain]), __name__="demo"
    )
    manager = PluginRegistry.from_plugins(plugin)
    assert manager.plugins[0].as_dict()["descriptions"] == {"sink:described": "keeps things"}
