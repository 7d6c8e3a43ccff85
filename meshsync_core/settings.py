"""Reading settings: Go-style durations, the YAML ``--config`` file, ``DEBUG`` and argv quirks.

Everything here raises :class:`~meshsync_core.errors.ConfigError` with a message meant for the
user; nothing here knows any plugin.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import yaml

from meshsync_core.errors import ConfigError

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a Go duration (``8s``, ``2m``, ``1h30m``, ``250ms``); a bare number is seconds."""
    value = str(text).strip()
    if not value:
        raise ConfigError("empty duration")
    try:
        seconds = float(value)
    except ValueError:
        pos, seconds = 0, 0.0
        for match in _DURATION_PART.finditer(value):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            pos = match.end()
        if pos != len(value) or pos == 0:
            raise ConfigError(
                f"invalid duration {text!r}: use a number with a unit, like 30s, 5m or 1h30m"
            ) from None
    if seconds < 0:
        raise ConfigError(f"invalid duration {text!r}: must not be negative")
    return seconds


class Duration(click.ParamType):
    """A click type for Go-style durations, giving seconds as a float.

    Use it for your own options: ``click.Option(["--flush-every"], type=Duration())`` accepts
    ``30s``, ``5m`` or ``1h30m`` on the command line and in ``--config`` files.
    """

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None:
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if value < 0:  # from a config file or a program: the same rule as for text
                self.fail(f"invalid duration {value!r}: must not be negative", param, ctx)
            return value
        try:
            return parse_duration(value)
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


def env_flag(name: str, environ: Mapping[str, str] = os.environ) -> bool | None:
    """``true``/``1``/``yes`` -> True, ``false``/``0``/``no`` -> False, unset or empty -> None."""
    value = environ.get(name, "").strip().lower()
    if not value:
        return None
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}={environ[name]!r} is not a boolean: use true/false or 1/0")


def yaml_problem(exc: yaml.YAMLError) -> str:
    """``is not valid YAML (line 2, column 1): <problem>``: one line, no traceback."""
    mark = getattr(exc, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"is not valid YAML{where}: {problem}"


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML mapping of settings; keys may use dashes or underscores."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(file)!r} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(file)!r}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(file)!r} {yaml_problem(exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {str(file)!r} must be a mapping of settings, not {type(data).__name__}"
        )
    return {str(key).replace("-", "_"): value for key, value in data.items()}


def find_arg(argv: list[str], *names: str) -> str | None:
    """An option's value in argv, read before click runs (plugins load before parsing)."""
    for index, arg in enumerate(argv):
        if arg == "--":
            break
        if arg in names and index + 1 < len(argv):
            return argv[index + 1]
        for name in names:
            if name.startswith("--") and arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def find_config_arg(argv: list[str]) -> str | None:
    """The ``--config`` value in argv."""
    return find_arg(argv, "--config", "-c")


_GO_LONG_FLAG = re.compile(r"^-[A-Za-z][A-Za-z0-9_-]+(=.*)?$")


def normalise_go_flags(argv: list[str]) -> list[str]:
    """Turn Go-style single-dash long flags (``-stopAfter=8s``) into ``--stopAfter=8s``."""
    out: list[str] = []
    for arg in argv:
        if arg == "--":
            out.extend(argv[len(out) :])
            break
        out.append("-" + arg if _GO_LONG_FLAG.match(arg) else arg)
    return out


def as_list(value: Any) -> list[str]:
    """A repeatable option's value from the CLI (tuple), a config file (list) or a comma string."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    items: list[str] = []
    for item in value:
        items.extend(part.strip() for part in str(item).split(",") if part.strip())
    return items
