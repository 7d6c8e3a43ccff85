"""pytest fixtures for the real control plane (registered from tests/conftest.py).

The Go programs are built (or taken from the cache) once, when collection finishes and some
collected test asks for the cluster: the build can take minutes on a fresh machine and must not
count against one test's timeout. A failed build fails every test that needs the cluster, with
the build's last lines; it is never a skip.
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from meshsync_core.testing import wait_until_sync
from tests.k8s.conftest import FAST
from tests.realkube import build
from tests.realkube.cluster import ControlPlane

#: Fast retries as in the fake-server tests, but watch timeouts a real server keeps: it sends
#: bookmarks about once a minute, so a 1 s inactivity timeout would reopen idle watches
#: every second.
REAL = dataclasses.replace(FAST, inactivity_timeout=90.0, watch_timeout=60.0)

CLUSTER_FIXTURES = {"real_cluster", "real_kubeconfig", "real_namespace"}
_build_error: build.BuildError | None = None
_names = itertools.count()


def pytest_collection_finish(session: pytest.Session) -> None:
    global _build_error
    if not any(CLUSTER_FIXTURES & set(getattr(item, "fixturenames", ())) for item in session.items):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")

    def say(message: str) -> None:
        if reporter is not None:
            reporter.write_line(f"realkube: {message}")
        else:
            print(f"realkube: {message}", file=sys.stderr)

    for module in build.MODULES:
        try:
            built = build.ensure_built(module, log=say)
        except build.BuildError as error:
            _build_error = error
            say(f"build failed: {str(error).splitlines()[0]}")
            return
        if not built.cached:
            say(f"{module} built in {built.seconds:.0f} s ({built.bin_dir})")


@pytest.fixture(scope="session")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver + controller-manager + scheduler + kwok, for the whole session."""
    if _build_error is not None:
        pytest.fail(f"the real control plane could not be built:\n{_build_error}", pytrace=False)
    plane = ControlPlane(tmp_path_factory.mktemp("realkube"))
    try:
        plane.start()
        yield plane
    finally:
        plane.stop()


@pytest.fixture
def real_kubeconfig(real_cluster: ControlPlane, tmp_path: Path) -> Path:
    """The cluster-admin's kubeconfig (a client certificate in group system:masters)."""
    return real_cluster.kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def real_namespace(real_cluster: ControlPlane) -> Iterator[str]:
    """A namespace of the test's own, deleted afterwards (with everything in it)."""
    name = f"t{next(_names)}-{int(time.time() * 1000) % 10**8}"
    real_cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    real_cluster.api("DELETE", f"/api/v1/namespaces/{name}", ok=(200, 202, 404))


def eventually(condition: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """Poll a condition on the real cluster (which has no event to await) until it holds."""
    return wait_until_sync(condition, timeout, what)
