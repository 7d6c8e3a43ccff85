"""Finding, importing and asking plugins, so that one broken plugin never stops the others.

Loading follows flake8's plugin finder: read the entry-point metadata of every installed
distribution first (cheap, cannot fail on plugin code), then import each plugin on its own and
record what went wrong, by plugin name and package, instead of raising.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import click
import pluggy

from meshsync_core import hookspecs
from meshsync_core.components import Component, Sink, Source, Transform

log = logging.getLogger("meshsync.plugins")

Status = Literal["loaded", "failed", "disabled"]
Kind = Literal["source", "transform", "sink"]

#: Environment variable with comma-separated plugin names not to load.
DISABLE_ENV = "MESHSYNC_DISABLE_PLUGINS"

_KIND_HOOKS: dict[str, tuple[Kind, type[Component]]] = {
    "meshsync_sources": ("source", Source),
    "meshsync_transforms": ("transform", Transform),
    "meshsync_sinks": ("sink", Sink),
}


@dataclass
class PluginInfo:
    """What ``meshsync plugins list`` shows about one plugin, loaded or not."""

    name: str
    package: str
    version: str
    entry_point: str
    status: Status = "loaded"
    error: str | None = None
    hooks: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    transforms: list[str] = field(default_factory=list)
    sinks: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    #: ``"sink:jsonl"`` -> the component's ``description``, for every component that has one.
    descriptions: dict[str, str] = field(default_factory=dict)

    @property
    def kinds(self) -> list[str]:
        kinds = [("source", self.sources), ("transform", self.transforms), ("sink", self.sinks)]
        return [kind for kind, names in kinds if names]

    def fail(self, error: str, exc: BaseException | None = None) -> None:
        """Mark the plugin failed and say why; with ``--log-level debug`` also where
        (the traceback of ``exc``), for the plugin's author."""
        self.status = "failed"
        self.error = error
        log.warning("plugin %r (package %s) skipped: %s", self.name, self.package, error)
        if exc is not None:
            log.debug(
                "where plugin %r failed:",
                self.name,
                exc_info=(type(exc), exc, exc.__traceback__),
            )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "package": self.package,
            "version": self.version,
            "entry_point": self.entry_point,
            "kinds": self.kinds,
            "hooks": self.hooks,
            "sources": self.sources,
            "transforms": self.transforms,
            "sinks": self.sinks,
            "options": self.options,
            "descriptions": self.descriptions,
            "status": self.status,
            "error": self.error,
        }


def disabled_from_env(environ: os._Environ[str] | dict[str, str] = os.environ) -> set[str]:
    value = environ.get(DISABLE_ENV, "")
    return {name.strip() for name in value.split(",") if name.strip()}


def _describe_exception(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@dataclass
class PluginManager:
    """A typed view of the loaded plugins: their components, options and commands."""

    plugins: list[PluginInfo] = field(default_factory=list)
    sources: dict[str, type[Source]] = field(default_factory=dict)
    transforms: dict[str, type[Transform]] = field(default_factory=dict)
    sinks: dict[str, type[Sink]] = field(default_factory=dict)
    options: list[click.Option] = field(default_factory=list)
    #: Component or option name -> the plugin that provided it, for error messages.
    owner: dict[str, str] = field(default_factory=dict)
    pluggy_manager: pluggy.PluginManager = field(
        default_factory=lambda: _new_pluggy_manager(), repr=False
    )

    # -- loading ---------------------------------------------------------------------------

    @classmethod
    def from_entry_points(cls, disabled: Iterable[str] = ()) -> PluginManager:
        """Load every plugin installed under the ``meshsync.plugins`` entry-point group."""
        manager = cls()
        disabled = set(disabled)
        for entry_point in sorted(_entry_points(), key=lambda ep: ep.name):
            dist = getattr(entry_point, "dist", None)
            info = PluginInfo(
                name=entry_point.name,
                package=dist.metadata["Name"] if dist else "?",
                version=dist.version if dist else "?",
                entry_point=entry_point.value,
            )
            manager.plugins.append(info)
            if entry_point.name in disabled:
                info.status = "disabled"
                continue
            try:
                plugin = entry_point.load()
            except (Exception, SystemExit) as exc:  # signals (KeyboardInterrupt...) go on
                info.fail(f"import failed: {_describe_exception(exc)}", exc)
                continue
            manager.add_plugin(plugin, info)
        return manager

    @classmethod
    def from_plugins(cls, *plugins: object) -> PluginManager:
        """Build a manager from plugin objects directly (library use and tests)."""
        manager = cls()
        for index, plugin in enumerate(plugins):
            name = getattr(plugin, "__name__", None) or f"plugin-{index}"
            info = PluginInfo(name=name, package="(in-process)", version="", entry_point=name)
            manager.plugins.append(info)
            manager.add_plugin(plugin, info)
        return manager

    def add_plugin(self, plugin: object, info: PluginInfo) -> None:
        """Register one plugin object and collect what its hooks return, isolating failures."""
        pm = self.pluggy_manager
        try:
            pm.register(plugin, name=info.name)
        except Exception as exc:  # pluggy's validation errors, or a duplicate name
            info.fail(f"invalid hooks: {_describe_exception(exc)}", exc)
            return
        unknown = _unknown_hooks(pm, plugin)
        if unknown:
            pm.unregister(plugin)
            info.fail(f"unknown hook(s): {', '.join(unknown)}")
            return
        info.hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        collected: dict[str, Any] = {}
        for hook_name in info.hooks:
            if hook_name == "meshsync_commands":
                continue  # called later, with the CLI group
            impl = _impl_of(pm, hook_name, plugin)
            try:
                result = impl.function()
                collected[hook_name] = _check_result(hook_name, result)
            except Exception as exc:
                pm.unregister(plugin)
                info.fail(f"hook {hook_name} raised {_describe_exception(exc)}", exc)
                return
        self._accept(info, collected)

    def _accept(self, info: PluginInfo, collected: dict[str, Any]) -> None:
        for option in collected.get("meshsync_add_options", []):
            if option.name in self.owner and self.owner[option.name].startswith("option:"):
                other = self.owner[option.name].removeprefix("option:")
                log.warning(
                    "plugin %r: option %r is already defined by plugin %r; ignored",
                    info.name,
                    option.name,
                    other,
                )
                continue
            self.owner[option.name] = f"option:{info.name}"
            self.options.append(option)
            info.options.append(option.opts[0])
        for hook_name, (kind, _base) in _KIND_HOOKS.items():
            registry: dict[str, Any] = getattr(self, f"{kind}s")
            for component in collected.get(hook_name, []):
                names = [component.name, *component.aliases]
                taken = [name for name in names if name in registry]
                if taken:
                    log.warning(
                        "plugin %r: %s %r is already provided by plugin %r; ignored",
                        info.name,
                        kind,
                        taken[0],
                        self.owner.get(f"{kind}:{taken[0]}"),
                    )
                    continue
                for name in names:
                    registry[name] = component
                    self.owner[f"{kind}:{name}"] = info.name
                getattr(info, f"{kind}s").append(component.name)
                if component.description:
                    info.descriptions[f"{kind}:{component.name}"] = component.description

    # -- queries ---------------------------------------------------------------------------

    def add_commands(self, cli: click.Group) -> None:
        """Let plugins add subcommands; a plugin that raises here is reported, not fatal."""
        for info in self.plugins:
            if info.status != "loaded" or "meshsync_commands" not in info.hooks:
                continue
            plugin = self.pluggy_manager.get_plugin(info.name)
            impl = _impl_of(self.pluggy_manager, "meshsync_commands", plugin)
            try:
                impl.function(cli=cli)
            except Exception as exc:
                info.fail(f"hook meshsync_commands raised {_describe_exception(exc)}", exc)

    def plugin_of(self, kind: Kind, name: str) -> str:
        return self.owner.get(f"{kind}:{name}", "?")

    def names(self, kind: Kind) -> list[str]:
        """Primary names of the installed components of a kind (aliases left out)."""
        registry: dict[str, type[Component]] = getattr(self, f"{kind}s")
        return sorted({cls.name for cls in registry.values()})


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP))


def _new_pluggy_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


def _unknown_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """Hook implementations whose name matches no specification (usually a typo)."""
    unknown = []
    for name in dir(plugin):
        attr = getattr(plugin, name, None)
        if getattr(attr, f"{hookspecs.PROJECT_NAME}_impl", None) is not None:
            caller = getattr(pm.hook, name, None)
            if caller is None or not caller.has_spec():
                unknown.append(name)
    return unknown


def _impl_of(pm: pluggy.PluginManager, hook_name: str, plugin: object) -> Any:
    caller = getattr(pm.hook, hook_name)
    return next(impl for impl in caller.get_hookimpls() if impl.plugin is plugin)


def _check_result(hook_name: str, result: Any) -> list[Any]:
    """Make sure a hook returned what its specification promises; raise TypeError if not."""
    if result is None:
        return []
    if not isinstance(result, (list, tuple)):
        raise TypeError(f"must return a list, got {type(result).__name__}")
    if hook_name == "meshsync_add_options":
        for item in result:
            if not isinstance(item, click.Option):
                raise TypeError(f"options must be click.Option, got {type(item).__name__}")
        return list(result)
    kind, base = _KIND_HOOKS[hook_name]
    for item in result:
        if not (inspect.isclass(item) and issubclass(item, base)):
            raise TypeError(f"{kind}s must be {base.__name__} subclasses, got {item!r}")
        if not item.name:
            raise TypeError(f"{kind} class {item.__name__} has no name")
    return list(result)
