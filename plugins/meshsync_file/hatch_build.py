"""Build hook: compile the optional C writer ``meshsync_file/_cwriter.c``.

The C writer makes YAML writing several times faster (see docs/file-sink.md); the package
works without it. If there is no C compiler or no Python headers, the build goes on with a
warning and a pure-Python wheel. ``MESHSYNC_FILE_PURE_PYTHON=1`` skips the compilation.
"""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CWriterBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if os.environ.get("MESHSYNC_FILE_PURE_PYTHON", "").lower() in ("1", "true", "yes"):
            return
        root = Path(self.root)
        suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        target = root / "meshsync_file" / f"_cwriter{suffix}"
        try:
            _compile(root, target)
        except Exception as exc:  # any failure: fall back to the pure-Python writer
            self.app.display_warning(
                f"meshsync-file: C writer not built ({type(exc).__name__}: {exc}); "
                "the pure-Python writer will be used"
            )
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        build_data["artifacts"].append(f"meshsync_file/_cwriter{suffix}")


def _compile(root: Path, target: Path) -> None:
    """Compile in place with setuptools' compiler setup (the flags CPython was built with)."""
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    extension = Extension(
        "meshsync_file._cwriter", sources=["meshsync_file/_cwriter.c"], optional=False
    )
    distribution = Distribution({"name": "meshsync-file", "ext_modules": [extension]})
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
