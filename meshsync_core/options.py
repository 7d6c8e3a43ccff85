"""The options of ``meshsync run``: the core's own, the health endpoint's and every plugin's,
and how values from a program or a config file are parsed like flags.

Its own module so that both the library (:mod:`meshsync_core.api`) and the command line
(:mod:`meshsync_core.cli`) use it without importing each other.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import click

from meshsync_core.engine import DEFAULT_QUEUE_SIZE
from meshsync_core.errors import CombinedError, ConfigError
from meshsync_core.health import health_options
from meshsync_core.logs import LEVELS
from meshsync_core.plugin_manager import PluginRegistry
from meshsync_core.settings import Duration, as_list

#: Settings a config file may hold that are not ``run`` options.
CONFIG_ONLY_KEYS = {"disable_plugins"}


def core_options() -> list[click.Option]:
    """The options the core owns; every other option comes from a plugin."""
    return [
        click.Option(
            ["--source", "-s"],
            multiple=True,
            help="Source to read from (default: k8s). Repeatable.",
        ),
        click.Option(
            ["--output", "-o"],
            multiple=True,
            help="Sink to deliver to: any installed sink, 'broker' = 'nats' (default: nats). "
            "Repeatable, or comma-separated.",
        ),
        click.Option(
            ["--stop-after", "--stopAfter", "stop_after"],
            type=Duration(),
            help="Stop cleanly after this long, e.g. 30s, 5m, 1h30m (default: run until stopped).",
        ),
        click.Option(
            ["--once"],
            is_flag=True,
            default=False,
            help="Stop as soon as the initial state has been delivered to every sink "
            "(e.g. one snapshot file).",
        ),
        click.Option(
            ["--config", "-c"],
            type=click.Path(dir_okay=False),
            help="YAML file of settings: any option of this command by its long name without "
            "the dashes (output-file: snap.yaml), plus disable-plugins.",
        ),
        click.Option(
            ["--log-level"],
            type=click.Choice(LEVELS, case_sensitive=False),
            help="Log level (default: info; DEBUG=true in the environment means debug).",
        ),
        click.Option(
            ["--log-format"],
            type=click.Choice(["text", "json"]),
            default="text",
            show_default=True,
            envvar="MESHSYNC_LOG_FORMAT",
            help="Log lines for people (text) or one JSON object per line (json).",
        ),
        click.Option(
            ["--queue-size"],
            type=click.IntRange(min=1),
            default=DEFAULT_QUEUE_SIZE,
            show_default=True,
            help="Events each sink may have waiting before sources are slowed down.",
        ),
        click.Option(
            ["--published-index/--no-published-index", "published_index"],
            default=True,
            show_default=True,
            envvar="MESHSYNC_PUBLISHED_INDEX",
            help="Keep an index of what was published (uid -> resourceVersion) where the "
            "sink stores it (NATS: a JetStream key-value bucket), so that a restart emits only "
            "what changed meanwhile, DELETED included. --no-published-index announces every "
            "object as ADDED at start, as Go MeshSync does.",
        ),
        click.Option(
            ["--published-index-file", "published_index_file"],
            default=None,
            envvar="MESHSYNC_PUBLISHED_INDEX_FILE",
            help="Keep the published index in this local file instead (for sinks that keep "
            "none of their own).",
        ),
    ]


def run_parameters(manager: PluginRegistry) -> list[click.Parameter]:
    """Every option of ``meshsync run``: the core's, then the health endpoint's, then each
    loaded plugin's."""
    return [*core_options(), *health_options(), *manager.options]


def parse_params(
    command: click.Command, args: list[str], defaults: Mapping[str, Any]
) -> dict[str, Any]:
    """Options for ``command`` from ``args``, with ``defaults`` winning over environment variables.

    This is the library path (``api.resolve_options``): values a program passes explicitly must
    beat whatever happens to be in the environment, and they go through the same click types
    (``"8s"`` -> 8.0) as flags.
    """
    known = {p.name for p in command.params if p.name} | CONFIG_ONLY_KEYS
    unknown = [name for name in defaults if name not in known]
    if unknown:
        problems = [
            ConfigError(f"unknown setting {name!r}{did_you_mean(name, known)}") for name in unknown
        ]
        raise problems[0] if len(problems) == 1 else CombinedError(problems)
    default_map = normalise_defaults(command, defaults)
    try:
        ctx = command.make_context(command.name, list(args), default_map=default_map)
        params = dict(ctx.params)
        for param in command.params:
            if param.name in default_map:
                params[param.name] = param.type_cast_value(ctx, default_map[param.name])
    except click.UsageError as exc:
        raise ConfigError(exc.format_message()) from None
    return params


def normalise_defaults(command: click.Command, values: Mapping[str, Any]) -> dict[str, Any]:
    """Config and library values as click expects defaults: lists for repeatable options."""
    out: dict[str, Any] = {}
    for param in command.params:
        if param.name in values:
            value = values[param.name]
            if getattr(param, "multiple", False) and not isinstance(value, (list, tuple)):
                value = as_list(value)
            out[param.name] = value
    return out


def did_you_mean(
    name: str, known: Iterable[str], spell: Callable[[str], str] = lambda name: name
) -> str:
    """`` (did you mean 'output'?)`` for the closest known name, or an empty string."""
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.7)
    return f" (did you mean {spell(close[0])!r}?)" if close else ""
