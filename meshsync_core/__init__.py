"""MeshSync core: the event model, plugin hooks, plugin loading and the engine.

The core knows nothing of Kubernetes, NATS or files; those are plugins
(see ``docs/architecture.md``).
"""

from meshsync_core.components import Options, Sink, SinkContext, Source, SourceContext, Transform
from meshsync_core.engine import Engine, RunResult
from meshsync_core.errors import ConfigError, MeshSyncError, StartupError
from meshsync_core.events import CHANGE_TYPES, Event, EventType, Resource
from meshsync_core.hookspecs import hookimpl
from meshsync_core.settings import Duration, env_flag, parse_duration
from meshsync_core.streams import (
    ExecSession,
    LogOptions,
    StreamError,
    StreamTarget,
    WorkloadStreams,
)

__version__ = "0.1.0"

__all__ = [
    "CHANGE_TYPES",
    "ConfigError",
    "Duration",
    "Engine",
    "Event",
    "EventType",
    "ExecSession",
    "LogOptions",
    "MeshSyncError",
    "Options",
    "Resource",
    "RunResult",
    "Sink",
    "SinkContext",
    "Source",
    "SourceContext",
    "StartupError",
    "StreamError",
    "StreamTarget",
    "Transform",
    "WorkloadStreams",
    "__version__",
    "env_flag",
    "hookimpl",
    "parse_duration",
]
