"""Hatch build hook: compile a plugin's optional C extension in place.

Every plugin with a C extension has this same file as its ``hatch_build.py`` (each sdist
must build on its own; ``tests/packaging`` checks the copies are identical). The extension is
named in the plugin's ``pyproject.toml``::

    [tool.hatch.build.targets.wheel.hooks.custom]
    path = "hatch_build.py"
    extension = "meshsync_file._cwriter"      # module; its source is meshsync_file/_cwriter.c
    skip-env = "MESHSYNC_FILE_PURE_PYTHON"     # set to 1: build a pure-Python wheel

The extensions only make things faster; each package works without its own. If there is no C
compiler or no Python headers, the build goes on with a warning and a pure-Python wheel.
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
        module = str(self.config["extension"])
        skip = str(self.config.get("skip-env", ""))
        if skip and os.environ.get(skip, "").lower() in ("1", "true", "yes"):
            return
        root = Path(self.root)
        parts = module.split(".")
        suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        relative = "/".join([*parts[:-1], parts[-1] + suffix])
        try:
            _compile(root, module, "/".join(parts) + ".c", root / relative)
        except Exception as exc:  # any failure: the pure-Python code is used
            self.app.display_warning(
                f"{self.metadata.name}: {module} not built ({type(exc).__name__}: {exc}); "
                "the pure-Python code will be used"
            )
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        build_data["artifacts"].append(relative)


def _compile(root: Path, module: str, source: str, target: Path) -> None:
    """Compile in place with setuptools' compiler setup (the flags CPython was built with)."""
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    extension = Extension(module, sources=[source], optional=False)
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
