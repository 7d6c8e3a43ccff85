"""Metadata hook: the extras name the plugin distributions, pinned to this very release.

Every distribution of this repository (``meshsync`` and the plugins under ``plugins/``) has the
version written in ``meshsync_core/__init__.py``. The extras are listed in ``pyproject.toml``
under ``[tool.hatch.metadata.hooks.custom.optional-dependencies]`` with the plugin distributions
named bare (``meshsync-nats``); this hook adds ``==<version>`` to each of them, so that
``pip install "meshsync[nats]"`` from an index or a wheelhouse gets the plugins of the same
release, and no bump can leave a pin behind.

From an sdist, hatchling takes the extras from its ``PKG-INFO`` and this hook does not run.
"""

from __future__ import annotations

from typing import Any

from hatchling.metadata.plugin.interface import MetadataHookInterface
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


class PinnedExtrasHook(MetadataHookInterface):
    PLUGIN_NAME = "custom"

    def update(self, metadata: dict[str, Any]) -> None:
        version = metadata["version"]
        pinned = {canonicalize_name(name) for name in self.config.get("pin", [])}
        extras: dict[str, list[str]] = self.config.get("optional-dependencies", {})
        metadata["optional-dependencies"] = {
            extra: [pin(requirement, pinned, version) for requirement in requirements]
            for extra, requirements in extras.items()
        }


def pin(requirement: str, pinned: set[str], version: str) -> str:
    """``requirement`` with ``==version`` when it names one of ``pinned`` without a version."""
    parsed = Requirement(requirement)
    if canonicalize_name(parsed.name) not in pinned:
        return requirement
    if parsed.specifier or parsed.url:
        raise ValueError(
            f"{requirement!r}: name the plugin distributions bare, they are pinned to {version}"
        )
    parsed.specifier &= f"=={version}"
    return str(parsed)
