"""A faithful fake kube-apiserver over real HTTP, for MeshSync's tests, demos and benchmarks.

Quick start::

    server = FakeApiServer()            # holds namespaces default + kube-system
    await server.start()
    server.load(demo_cluster())
    server.write_kubeconfig(tmp_path / "kubeconfig")
    ...
    await server.stop()

or, from synchronous code (official client, kubectl)::

    with FakeApiServer.in_thread() as server:
        ...

Module map: ``resources`` (resource table, discovery documents, CRD registration), ``store``
(objects, resourceVersions, history, watchers), ``selectors``, ``patch`` (merge/strategic/JSON
patch), ``encoding`` (lists and events from cached bytes), ``watch`` (one watch stream),
``tables`` (kubectl's Table output), ``faults``, ``errors`` (Status), ``server`` (HTTP routing
and the FakeApiServer class). The demo data is in :mod:`meshsync_testkit.seed`.
"""

from ..seed import KUBE_SYSTEM_UID, bulk_objects, demo_cluster
from .errors import ApiError
from .faults import Faults
from .resources import BUILTIN_RESOURCES, Registry, ResourceType
from .server import FakeApiServer

__all__ = [
    "BUILTIN_RESOURCES",
    "KUBE_SYSTEM_UID",
    "ApiError",
    "FakeApiServer",
    "Faults",
    "Registry",
    "ResourceType",
    "bulk_objects",
    "demo_cluster",
]
