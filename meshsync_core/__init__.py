"""MeshSync core: the event model, plugin hooks, plugin loading and the engine.

The core knows nothing of Kubernetes, NATS or files; those are plugins
(see ``docs/architecture.md``).
"""

from meshsync_core.components import (
    Emit,
    Options,
    Sink,
    SinkContext,
    Source,
    SourceContext,
    Transform,
)
from meshsync_core.engine import Engine, RunResult
from meshsync_core.errors import ConfigError, MeshSyncError, StartupError
from meshsync_core.events import CHANGE_TYPES, Event, EventType, Identity, Resource
from meshsync_core.gc_pause import gc_paused
from meshsync_core.hookspecs import hookimpl
from meshsync_core.interrupts import SignalControl
from meshsync_core.logs import RateLimitedLog
from meshsync_core.metrics import ComponentMetrics
from meshsync_core.published_index import (
    Changes,
    IndexRecord,
    IndexStore,
    IndexUnusable,
    partition_of,
)
from meshsync_core.settings import Duration, as_list, env_flag, parse_duration, yaml_problem
from meshsync_core.streams import (
    ExecSession,
    LogOptions,
    StreamError,
    StreamTarget,
    WorkloadStreams,
)

__version__ = "0.1.0"

#: The plugin API: what a plugin (the built-in ones included) may import. Everything else in
#: ``meshsync_core`` is the host's own, and an import-linter contract keeps plugins out of it;
#: ``meshsync_core.testing`` is for tests.
__all__ = [
    "CHANGE_TYPES",
    "Changes",
    "ComponentMetrics",
    "ConfigError",
    "Duration",
    "Emit",
    "Engine",
    "Event",
    "EventType",
    "ExecSession",
    "Identity",
    "IndexRecord",
    "IndexStore",
    "IndexUnusable",
    "LogOptions",
    "MeshSyncError",
    "Options",
    "RateLimitedLog",
    "Resource",
    "RunResult",
    "SignalControl",
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
    "as_list",
    "env_flag",
    "gc_paused",
    "hookimpl",
    "parse_duration",
    "partition_of",
    "yaml_problem",
]
