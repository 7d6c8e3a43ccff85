"""Finding, importing and asking plugins, so that one broken plugin never stops the others.

Loading follows flake8's plugin finder, in three phases over immutable records:

1. :func:`find_plugins` reads the entry-point metadata of every installed distribution (cheap,
   runs no plugin code) into :class:`FoundPlugin` records;
2. :func:`load_plugin` imports one plugin on its own, registers it with pluggy and asks its
   hooks, returning a :class:`LoadedPlugin` - or the reason it failed, by plugin and package;
3. :meth:`PluginRegistry.classify` files the components and options of what loaded by name,
   reporting names two plugins both claim.

Hooks are called one plugin at a time, so pluggy's ordering and wrapper options
(``tryfirst``, ``hookwrapper``...) would mean nothing: a plugin that uses them fails to load
with a message saying so. ``MESHSYNC_TRACE_HOOKS=1`` logs every hook call and what it returned.
"""

from __future__ import annotations

import functools
import importlib.metadata
import inspect
import logging
import os
from collections.abc import Callable, Iterable
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


#: ``MESHSYNC_TRACE_HOOKS=1``: log every hook call, with what it returned (datasette offers
#: the same with ``DATASETTE_TRACE_PLUGINS``).
TRACE_ENV = "MESHSYNC_TRACE_HOOKS"
#: pluggy hook options that only mean something when pluggy calls every plugin in one go.
_UNSUPPORTED_OPTIONS = ("hookwrapper", "wrapper", "tryfirst", "trylast")


@dataclass(frozen=True)
class FoundPlugin:
    """Phase 1: one ``meshsync.plugins`` entry point, read from metadata only."""

    name: str
    package: str
    version: str
    entry_point: str
    disabled: bool = False
    #: Imports the plugin (``EntryPoint.load``, or the object itself for in-process plugins).
    load: Callable[[], object] = field(default=lambda: None, compare=False, repr=False)


@dataclass(frozen=True)
class LoadedPlugin:
    """Phase 2: a plugin that imported, registered and answered every hook correctly."""

    found: FoundPlugin
    plugin: object
    hooks: tuple[str, ...]
    options: tuple[click.Option, ...]
    #: ``(kind, class)`` of every component, in the order the plugin returned them.
    components: tuple[tuple[Kind, type[Component]], ...]


class PluginLoadError(Exception):
    """Why a plugin was left out (what ``meshsync plugins list`` shows), and the exception
    behind it, if any (its traceback is logged at debug level)."""

    def __init__(self, reason: str, cause: BaseException | None = None) -> None:
        super().__init__(reason)
        self.cause = cause


def find_plugins(disabled: Iterable[str] = ()) -> list[FoundPlugin]:
    """Phase 1: every installed plugin, by name, without running any of them."""
    disabled = set(disabled)
    found = []
    for entry_point in sorted(_entry_points(), key=lambda ep: ep.name):
        dist = getattr(entry_point, "dist", None)
        found.append(
            FoundPlugin(
                name=entry_point.name,
                package=dist.metadata["Name"] if dist else "?",
                version=dist.version if dist else "?",
                entry_point=entry_point.value,
                disabled=entry_point.name in disabled,
                load=entry_point.load,
            )
        )
    return found


def load_plugin(found: FoundPlugin, pm: pluggy.PluginManager) -> LoadedPlugin:
    """Phase 2: import one plugin on its own and ask its hooks; raise :class:`PluginLoadError`
    (the plugin is then not registered) when anything about it is wrong."""
    try:
        plugin = found.load()
    except (Exception, SystemExit) as exc:  # signals (KeyboardInterrupt...) go on
        raise PluginLoadError(f"import failed: {_describe_exception(exc)}", exc) from None
    try:
        pm.register(plugin, name=found.name)
    except Exception as exc:  # pluggy's validation errors, or a duplicate name
        raise PluginLoadError(f"invalid hooks: {_describe_exception(exc)}", exc) from None
    try:
        return _ask_hooks(found, plugin, pm)
    except PluginLoadError:
        pm.unregister(plugin)
        raise


def _ask_hooks(found: FoundPlugin, plugin: object, pm: pluggy.PluginManager) -> LoadedPlugin:
    unknown = _unknown_hooks(pm, plugin)
    if unknown:
        raise PluginLoadError(f"unknown hook(s): {', '.join(unknown)}")
    hooks = tuple(sorted(caller.name for caller in pm.get_hookcallers(plugin) or []))
    trace = os.environ.get(TRACE_ENV, "").strip().lower() in {"1", "true", "yes"}
    collected: dict[str, list[Any]] = {}
    for hook_name in hooks:
        impl = _impl_of(pm, hook_name, plugin)
        unsupported = [option for option in _UNSUPPORTED_OPTIONS if getattr(impl, option, False)]
        if unsupported:
            raise PluginLoadError(
                f"hook {hook_name} uses {', '.join(unsupported)}, which MeshSync does not "
                "honour (each plugin's hooks are called on their own)"
            )
        if hook_name == "meshsync_commands":
            continue  # called later, with the CLI group
        try:
            result = impl.function()
            collected[hook_name] = _check_result(hook_name, result)
        except Exception as exc:
            raise PluginLoadError(
                f"hook {hook_name} raised {_describe_exception(exc)}", exc
            ) from None
        if trace:
            log.info("hook %s of plugin %r returned %r", hook_name, found.name, result)
    components = tuple(
        (kind, component)
        for hook_name, (kind, _base) in _KIND_HOOKS.items()
        for component in collected.get(hook_name, [])
    )
    return LoadedPlugin(
        found, plugin, hooks, tuple(collected.get("meshsync_add_options", [])), components
    )


@dataclass
class PluginRegistry:
    """Phase 3, and what the CLI reads: every plugin's status, and the components and options
    of the loaded ones by name. (Not pluggy's ``PluginRegistry``: that one is
    ``pluggy_manager``.)"""

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
    def from_entry_points(cls, disabled: Iterable[str] = ()) -> PluginRegistry:
        """Load every plugin installed under the ``meshsync.plugins`` entry-point group."""
        registry = cls()
        for found in find_plugins(disabled):
            registry.add(found)
        return registry

    @classmethod
    def from_plugins(cls, *plugins: object) -> PluginRegistry:
        """Build a registry from plugin objects directly (library use and tests)."""
        registry = cls()
        for index, plugin in enumerate(plugins):
            name = getattr(plugin, "__name__", None) or f"plugin-{index}"
            load = functools.partial(_same, plugin)  # the plugin object is already imported
            registry.add(FoundPlugin(name, "(in-process)", "", name, load=load))
        return registry

    def add(self, found: FoundPlugin) -> None:
        """Load one found plugin and file what it provides; a failure is recorded, not raised."""
        info = PluginInfo(found.name, found.package, found.version, found.entry_point)
        self.plugins.append(info)
        if found.disabled:
            info.status = "disabled"
            return
        try:
            loaded = load_plugin(found, self.pluggy_manager)
        except PluginLoadError as exc:
            info.fail(str(exc), exc.cause)
            return
        info.hooks = list(loaded.hooks)
        self.classify(loaded, info)

    def classify(self, loaded: LoadedPlugin, info: PluginInfo) -> None:
        """File a loaded plugin's options and components by name; a name another plugin
        already took is reported and left out."""
        for option in loaded.options:
            if option.name in self.owner and self.owner[option.name].startswith("option:"):
                other = self.owner[option.name].removeprefix("option:")
                log.warning(
                    "plugin %r: option %r is already defined by plugin %r; ignored",
                    info.name,
                    option.name,
                    other,
                )
                continue
            self.owner[str(option.name)] = f"option:{info.name}"
            self.options.append(option)
            info.options.append(option.opts[0])
        for kind, component in loaded.components:
            registry: dict[str, Any] = getattr(self, f"{kind}s")
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


def _same(value: object) -> object:
    return value


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
