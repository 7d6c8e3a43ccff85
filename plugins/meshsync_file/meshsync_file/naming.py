"""File names: the Go-compatible default snapshot name, the extended log's name, temp names.

Go MeshSync names its snapshot ``meshery-cluster-snapshot-YYYYMMDD-NN.yaml`` in the working
directory, NN being the first free number of 00..1023. Here "free" means that neither the
snapshot nor its extended log exists, so that a run never writes next to another run's file.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from meshsync_core import StartupError

DEFAULT_PREFIX = "meshery-cluster-snapshot"
MAX_NN = 1023
EXTENDED_SUFFIX = "-extended"
_YAML_SUFFIXES = (".yaml", ".yml")


def default_name(date: dt.date, nn: int) -> str:
    """``meshery-cluster-snapshot-20260101-00.yaml``."""
    return f"{DEFAULT_PREFIX}-{date:%Y%m%d}-{nn:02d}.yaml"


def extended_path(snapshot: Path) -> Path:
    """``snap.yaml`` -> ``snap-extended.yaml`` (``.yml`` kept; no suffix -> ``-extended.yaml``)."""
    name = snapshot.name
    for suffix in _YAML_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return snapshot.with_name(name[: -len(suffix)] + EXTENDED_SUFFIX + suffix)
    return snapshot.with_name(name + EXTENDED_SUFFIX + ".yaml")


def first_free_default(directory: Path, date: dt.date | None = None) -> Path:
    """The first free default snapshot path, or a StartupError when all 1024 are taken."""
    date = date or dt.date.today()
    for nn in range(MAX_NN + 1):
        path = directory / default_name(date, nn)
        if not path.exists() and not extended_path(path).exists():
            return path
    raise StartupError(
        f"file: all {MAX_NN + 1} default snapshot names for {date:%Y%m%d} are taken in "
        f"{str(directory)!r}; choose a name with --output-file"
    )


def temp_path(target: Path, pid: int | None = None) -> Path:
    """The hidden temporary file a snapshot is written to before the rename: ``.NAME.PID.tmp``."""
    return target.with_name(f".{target.name}.{pid or os.getpid()}.tmp")


def stale_temps(target: Path) -> list[Path]:
    """Temporary files of ``target`` left by processes that no longer run (killed mid-write)."""
    prefix = f".{target.name}."
    stale = []
    try:
        entries = list(target.parent.iterdir())
    except OSError:
        return []
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid_text = name[len(prefix) : -len(".tmp")]
        if not pid_text.isdigit():
            continue
        if not _alive(int(pid_text)):
            stale.append(entry)
    return stale


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own leftover from an earlier sink in this process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
