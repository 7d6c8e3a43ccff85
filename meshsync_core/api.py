"""Running MeshSync from Python, the way the CLI does (what Go MeshSync's library mode offered).

Two levels:

* :func:`run` / :func:`arun` pick components by name from installed plugins, exactly like
  ``meshsync run --source k8s --output file``::

      from meshsync_core import api
      result = api.run(source="k8s", outputs=["file"],
                       options={"kubeconfig": "/tmp/kc", "once": True})

* :class:`~meshsync_core.engine.Engine` takes component *instances*, for tests and embedding
  (see :mod:`meshsync_core.testing`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import click

from meshsync_core.components import Component, Options, Sink, Source, Transform
from meshsync_core.engine import DEFAULT_QUEUE_SIZE, Engine, RunResult
from meshsync_core.errors import CombinedError, ConfigError, MeshSyncError, StartupError
from meshsync_core.options import parse_params, run_parameters
from meshsync_core.plugin_manager import Kind, PluginRegistry
from meshsync_core.settings import as_list

#: What ``--output`` means when it is not given: Go MeshSync's default, ``broker``.
DEFAULT_OUTPUT = "nats"


def resolve_options(manager: PluginRegistry, values: Mapping[str, Any] | None = None) -> Options:
    """Fill in every option's default (and environment variable) around the given values.

    Values go through the same click types as command-line flags, so ``stop_after="8s"`` works.
    """
    command = click.Command("run", params=run_parameters(manager))
    return Options(parse_params(command, [], values or {}))


def _instantiate(manager: PluginRegistry, kind: Kind, name: str, options: Options) -> Component:
    registry: dict[str, type[Component]] = getattr(manager, f"{kind}s")
    cls = registry.get(name)
    if cls is None:
        installed = ", ".join(manager.names(kind)) or "none"
        raise ConfigError(f"unknown {kind} {name!r}; installed {kind}s: {installed}")
    try:
        return cls(options)
    except MeshSyncError:
        raise
    except Exception as exc:
        plugin = manager.plugin_of(kind, name)
        raise StartupError(f"{kind} {name!r} (plugin {plugin!r}) failed to start: {exc}") from exc


def build_engine(
    manager: PluginRegistry, options: Options, *, handle_signals: bool = False
) -> Engine:
    """Instantiate the selected source(s), enabled transforms and sinks, and wire an engine.

    Every component checks its options when it is built, before anything starts; all the
    problems are reported together, in pipeline order (sources, transforms, sinks).
    """
    problems: list[MeshSyncError] = []

    def build(make: Callable[..., Component | None], *args: Any) -> Component | None:
        try:
            return make(*args)
        except MeshSyncError as exc:
            problems.append(exc)
            return None

    source_names = as_list(options.get("source")) or ["k8s"]
    output_names = as_list(options.get("output")) or [DEFAULT_OUTPUT]
    sources = [build(_instantiate, manager, "source", name, options) for name in source_names]
    transforms = []
    for name, cls in sorted(manager.transforms.items()):
        if name != cls.name:
            continue  # an alias
        transforms.append(build(_transform, name, cls, options))
    sinks = []
    seen: set[type[Component]] = set()
    for name in output_names:
        sink_cls = manager.sinks.get(name)
        if sink_cls in seen:  # `--output nats --output broker` names one sink twice
            continue
        if sink_cls is not None:
            seen.add(sink_cls)
        sinks.append(build(_instantiate, manager, "sink", name, options))
    if problems:
        raise problems[0] if len(problems) == 1 else CombinedError(problems)
    return Engine(
        sources=[s for s in sources if isinstance(s, Source)],
        sinks=[s for s in sinks if isinstance(s, Sink)],
        transforms=[t for t in transforms if isinstance(t, Transform)],
        queue_size=int(options.get("queue_size") or DEFAULT_QUEUE_SIZE),
        stop_after=options.get("stop_after"),
        once=bool(options.get("once")),
        handle_signals=handle_signals,
        published_index=options.get("published_index", True) is not False,
        published_index_file=options.get("published_index_file") or None,
    )


def _transform(name: str, cls: type[Transform], options: Options) -> Transform | None:
    try:
        return cls(options) if cls.enabled(options) else None
    except MeshSyncError:
        raise
    except Exception as exc:
        raise StartupError(f"transform {name!r} failed to start: {exc}") from exc


async def serve(engine: Engine, options: Options) -> RunResult:
    """Run an engine with its health/metrics endpoint (``--health-port``, 0 = none)."""
    from meshsync_core.health import DEFAULT_HOST, DEFAULT_STUCK_AFTER, HealthServer

    port = options.get("health_port")
    server = None
    if port:
        server = HealthServer(
            engine,
            options.get("health_host") or DEFAULT_HOST,
            int(port),
            float(options.get("stuck_after") or DEFAULT_STUCK_AFTER),
        )
        try:
            await server.start()
        except MeshSyncError as exc:
            return RunResult(exc.exit_code, str(exc), engine.stats)
    try:
        return await engine.run()
    finally:
        if server is not None:
            await server.stop()


async def arun(
    *,
    source: str | Sequence[str] = "k8s",
    outputs: Sequence[str] = (DEFAULT_OUTPUT,),
    options: Mapping[str, Any] | None = None,
    manager: PluginRegistry | None = None,
    handle_signals: bool = False,
) -> RunResult:
    """Run until a stop condition; configuration errors come back as a non-zero ``RunResult``."""
    try:
        manager = manager or PluginRegistry.from_entry_points()
        values = {"health_port": 0, **(options or {})}
        values.update(source=as_list(source), output=list(outputs))
        resolved = resolve_options(manager, values)
        engine = build_engine(manager, resolved, handle_signals=handle_signals)
    except MeshSyncError as exc:
        from meshsync_core.engine import EngineStats

        return RunResult(exc.exit_code, str(exc), EngineStats())
    return await serve(engine, resolved)


def run(**kwargs: Any) -> RunResult:
    """Blocking :func:`arun` for scripts."""
    return asyncio.run(arun(**kwargs))
