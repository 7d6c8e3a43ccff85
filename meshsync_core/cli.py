"""The ``meshsync`` command.

Plugins are loaded *before* click parses anything, because they contribute options to
``meshsync run`` and subcommands to ``meshsync``. ``--config`` and ``MESHSYNC_DISABLE_PLUGINS`` are
therefore read first, straight from argv and the environment.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

import click

from meshsync_core import __version__
from meshsync_core.api import build_engine, serve
from meshsync_core.components import Options
from meshsync_core.engine import RunResult
from meshsync_core.errors import CombinedError, ConfigError, MeshSyncError
from meshsync_core.interrupts import Interrupted, SignalControl
from meshsync_core.logs import LEVELS, configure_logging, effective_level
from meshsync_core.options import (
    CONFIG_ONLY_KEYS,
    did_you_mean,
    normalise_defaults,
    run_parameters,
)
from meshsync_core.plugin_manager import PluginRegistry, disabled_from_env
from meshsync_core.settings import (
    as_list,
    find_arg,
    find_config_arg,
    load_config_file,
    normalise_go_flags,
)


def build_run_command(manager: PluginRegistry) -> click.Command:
    """``meshsync run`` with the core's options followed by every loaded plugin's."""
    params = run_parameters(manager)

    def run(**values: Any) -> int:
        configure_logging(values.get("log_level"), values.get("log_format") or "text")
        options = Options(values)
        ctx = click.get_current_context(silent=True)
        control = ctx.find_object(SignalControl) if ctx is not None else None
        # Without the command's signal control (run driven in-process), the engine handles them.
        engine = build_engine(manager, options, handle_signals=control is None)

        async def serve_engine() -> RunResult:
            if control is None:
                return await serve(engine, options)
            with control.running(engine):
                return await serve(engine, options)

        result = asyncio.run(serve_engine())
        if result.exit_code:
            error = MeshSyncError(result.reason)
            error.exit_code = result.exit_code
            raise error
        return 0

    return click.Command(
        "run",
        callback=run,
        params=params,
        help="Discover resources and deliver every change to the selected sinks.",
        context_settings={"show_default": False, "max_content_width": 100},
    )


def _plugins_command(manager: PluginRegistry) -> click.Group:
    @click.group("plugins", help="Inspect installed plugins.")
    def plugins() -> None:
        pass

    @plugins.command(
        "list", help="List installed plugins, what they provide and whether they loaded."
    )
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
    def list_plugins(as_json: bool) -> None:
        if as_json:
            click.echo(json.dumps([info.as_dict() for info in manager.plugins], indent=2))
            return
        click.echo(format_plugin_table(manager))

    return plugins


def format_plugin_table(manager: PluginRegistry) -> str:
    """The ``plugins list`` table, then one line per plugin that failed to load, with why."""
    rows = [("NAME", "PACKAGE", "VERSION", "KINDS", "HOOKS", "PROVIDES", "STATUS")]
    for info in manager.plugins:
        provides = [
            *(f"source:{n}" for n in info.sources),
            *(f"transform:{n}" for n in info.transforms),
            *(f"sink:{n}" for n in info.sinks),
        ]
        hooks = [hook.removeprefix("meshsync_") for hook in info.hooks]
        rows.append(
            (
                info.name,
                info.package,
                info.version or "-",
                ",".join(info.kinds) or "-",
                ",".join(hooks) or "-",
                ",".join(provides) or "-",
                info.status,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    failures = [info for info in manager.plugins if info.error]
    if failures:
        lines.append("")
        lines.extend(f"{info.name} ({info.package}): {info.error}" for info in failures)
    if not manager.plugins:
        lines.append("(no plugins installed)")
    return "\n".join(lines)


def _version_text(manager: PluginRegistry) -> str:
    lines = [f"meshsync {__version__}"]
    for info in manager.plugins:
        lines.append(f"  {info.name} ({info.package} {info.version}) {info.status}")
    return "\n".join(lines)


def build_cli(
    manager: PluginRegistry, config: Mapping[str, Any], config_path: str | None = None
) -> click.Group:
    @click.group(
        "meshsync",
        help="MeshSync: discover everything in a Kubernetes cluster, watch it, and deliver every "
        "change to Meshery Server (NATS), YAML snapshots, or any plugin sink.",
        context_settings={"max_content_width": 100},
    )
    @click.version_option(__version__, message=_version_text(manager))
    def cli() -> None:
        pass

    run = build_run_command(manager)
    cli.add_command(run)
    cli.add_command(_plugins_command(manager))
    manager.add_commands(cli)
    # Every command that takes --config (run, and plugin commands built on it such as demo)
    # reads the same file: a key must be an option of one of them, and each gets its own.
    readers = [
        command
        for command in cli.commands.values()
        if not isinstance(command, click.Group)
        and any(param.name == "config" for param in command.params)
    ]
    _check_config_keys(readers, config, config_path)
    cli.context_settings["default_map"] = {
        command.name: normalise_defaults(command, config) for command in readers
    }
    return cli


def _check_config_keys(
    commands: list[click.Command], config: Mapping[str, Any], path: str | None = None
) -> None:
    known = {p.name for command in commands for p in command.params if p.name}
    known |= CONFIG_ONLY_KEYS
    unknown = [name for name in config if name not in known]  # in the file's order
    if not unknown:
        return
    where = f"config file {path!r}" if path else "the config file"
    problems = [
        ConfigError(
            f"unknown setting {_dashed(name)!r} in {where}"
            + (
                did_you_mean(name, known, _dashed)
                or " (settings are the long options of 'meshsync run --help', without the "
                "leading dashes, e.g. output-file)"
            )
        )
        for name in unknown
    ]
    raise problems[0] if len(problems) == 1 else CombinedError(problems)


def _dashed(name: str) -> str:
    """How the docs and ``--help`` spell a setting: ``output_file`` -> ``output-file``."""
    return name.replace("_", "-")


def _early_log_level(args: list[str], config: Mapping[str, Any]) -> str:
    """The log level while plugins load, before click has parsed anything (default: warning).

    ``--log-level debug`` (or ``DEBUG=true``) must already apply here, so that a plugin that
    fails to import shows its traceback.
    """
    level = find_arg(args, "--log-level") or config.get("log_level")
    if isinstance(level, str) and level.lower() in LEVELS:
        return level.lower()
    if effective_level(None) == "debug":
        return "debug"
    return "warning"


def _runs_by_default(args: list[str]) -> bool:
    """Go MeshSync takes its flags with no subcommand: ``meshsync -output file`` means ``run``.

    Only arguments starting with ``-`` are taken so; a word is a subcommand, and an unknown
    one gets click's "No such command" with a did-you-mean.
    """
    return bool(args) and args[0].startswith("-") and args[0] not in _GROUP_FLAGS


_GROUP_FLAGS = {"--help", "-h", "--version"}


def main(argv: list[str] | None = None, *, keep_signals: bool = False) -> int:
    """The ``meshsync`` command; returns the exit code.

    SIGINT and SIGTERM are the command's while it runs (see :mod:`meshsync_core.interrupts`).
    Afterwards the previous handlers come back, unless ``keep_signals``: then, as for the real
    command about to exit, a late signal still means "stop now" instead of a traceback.
    """
    args = normalise_go_flags(list(sys.argv[1:] if argv is None else argv))
    log_format = find_arg(args, "--log-format") or os.environ.get("MESHSYNC_LOG_FORMAT", "text")
    configure_logging("warning", log_format)
    control = SignalControl()
    installed = control.install()
    try:
        return _main(args, log_format, control)
    except Interrupted as exc:
        click.echo(f"meshsync: {exc.name} while starting: stopped", err=True)
        return exc.exit_code
    finally:
        control.shutting_down = True
        if installed and not keep_signals:
            control.restore()


def _main(args: list[str], log_format: str, control: SignalControl) -> int:
    try:
        config_path = find_config_arg(args)
        config = load_config_file(config_path) if config_path else {}
        configure_logging(_early_log_level(args, config), log_format)
        disabled = disabled_from_env() | set(as_list(config.get("disable_plugins")))
        manager = PluginRegistry.from_entry_points(disabled=disabled)
        cli = build_cli(manager, config, config_path)
        if _runs_by_default(args):
            args = ["run", *args]
        result = cli.main(args=args, prog_name="meshsync", standalone_mode=False, obj=control)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except MeshSyncError as exc:
        messages = exc.messages if isinstance(exc, CombinedError) else [str(exc)]
        for message in messages:
            click.echo(f"meshsync: error: {message}", err=True)
        return exc.exit_code
    return result if isinstance(result, int) else 0


def entry() -> None:
    sys.exit(main(keep_signals=True))
