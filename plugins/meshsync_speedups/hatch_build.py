"""Hatch build hook: compile meshsync-speedups' C extensions in place.

The extensions are named in ``pyproject.toml``::

    [tool.hatch.build.targets.wheel.hooks.custom]
    path = "hatch_build.py"
    extensions = ["meshsync_speedups._yaml_writer", ...]  # each from meshsync_speedups/<name>.c
    shared = ["meshsync_speedups/jsontext.h"]             # what they all include
    skip-env = "MESHSYNC_SPEEDUPS_PURE_PYTHON"            # set to 1: build a pure-Python wheel

The extensions only make the plugins faster; each plugin has the same code in Python. If there
is no C compiler or no Python headers, the build goes on with a warning, and the wheel has only
what did build.
"""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CExtensionBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        skip = str(self.config.get("skip-env", ""))
        if skip and os.environ.get(skip, "").lower() in ("1", "true", "yes"):
            return
        root = Path(self.root)
        shared = [str(path) for path in self.config.get("shared", [])]
        suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        for module in self.config["extensions"]:
            parts = str(module).split(".")
            relative = "/".join([*parts[:-1], parts[-1] + suffix])
            try:
                _compile(root, module, "/".join(parts) + ".c", shared, root / relative)
            except Exception as exc:  # any failure: the plugin's Python code is used
                self.app.display_warning(
                    f"{self.metadata.name}: {module} not built ({type(exc).__name__}: {exc}); "
                    "the Python code will be used"
                )
                continue
            build_data["pure_python"] = False
            build_data["infer_tag"] = True
            build_data["artifacts"].append(relative)


def _compile(root: Path, module: str, source: str, shared: list[str], target: Path) -> None:
    """Compile in place with setuptools' compiler setup (the flags CPython was built with)."""
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    # depends: a change to the shared header rebuilds every extension
    extension = Extension(module, sources=[source], depends=shared, optional=False)
    distribution = Distribution({"name": module.split(".")[0], "ext_modules": [extension]})
    command = build_ext(distribution)
    command.inplace = True
    command.build_temp = str(root / "build" / "temp")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        command.ensure_finalized()
        command.run()
    finally:
        os.chdir(cwd)
    if not target.exists():
        raise FileNotFoundError(target)
