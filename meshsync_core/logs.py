"""Logging set-up: one readable line per record on stderr.

Loggers are named ``meshsync.<plugin or component>`` so every line says who wrote it.
"""

from __future__ import annotations

import logging
import os
import sys

LEVELS = ["debug", "info", "warning", "error"]


def effective_level(level: str | None) -> str:
    """``DEBUG=true|1`` (as in Go MeshSync) wins over the default level, not over --log-level."""
    if level:
        return level.lower()
    if os.environ.get("DEBUG", "").strip().lower() in {"1", "true", "yes"}:
        return "debug"
    return "info"


def configure_logging(level: str | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    )
    root = logging.getLogger("meshsync")
    root.handlers[:] = [handler]
    root.setLevel(effective_level(level).upper())
    root.propagate = False
