"""Fixtures for the Kubernetes source tests: a fake API server, a source wired to it, and a
helper that folds captured events into a uid -> object view to compare with the server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from meshsync_k8s.source import KubernetesSource
from meshsync_k8s.watcher import Tuning
from meshsync_testkit.fake_apiserver import FakeApiServer

from meshsync_core import Engine, Event, EventType, Options
from meshsync_core.testing import CaptureSink, wait_until  # noqa: F401 - shared by the tests

#: Fast timings so fault tests finish in seconds.
FAST = Tuning(
    page_size=50,
    watch_timeout=30,
    inactivity_timeout=1.0,
    backoff_base=0.05,
    backoff_max=0.3,
    slow_retry=0.3,
    request_timeout=5,
    connect_timeout=2,
    # these tests are about paginated lists (what every server offers); streaming lists have
    # their own (test_streaming_list.py)
    streaming_list=False,
)


@pytest.fixture
async def server() -> AsyncIterator[FakeApiServer]:
    srv = FakeApiServer(bookmark_interval=0.2)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
def kubeconfig(server: FakeApiServer, tmp_path: Path) -> Path:
    return server.write_kubeconfig(tmp_path / "kubeconfig")


def fold(events: Iterable[Event]) -> dict[str, dict[str, Any]]:
    """uid -> last object, applying ADDED/MODIFIED/DELETED in order; asserts no duplicate ADDED
    and no change to an unknown object."""
    view: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.type is EventType.SYNCED:
            continue
        uid = event.uid
        if event.type is EventType.ADDED:
            assert uid not in view, f"duplicate ADDED for {event.describe()}"
            view[uid] = event.object
        elif event.type is EventType.MODIFIED:
            assert uid in view, f"MODIFIED for never-added {event.describe()}"
            view[uid] = event.object
        else:
            assert uid in view, f"DELETED for never-added {event.describe()}"
            del view[uid]
    return view


def server_view(server: FakeApiServer, resources: Iterable[tuple[str, str]]) -> dict[str, str]:
    """uid -> resourceVersion of every server object of the given (plural, group)s."""
    out = {}
    for plural, group in resources:
        for obj in server.objects(plural, group):
            out[obj["metadata"]["uid"]] = obj["metadata"]["resourceVersion"]
    return out


def rv_view(view: dict[str, dict[str, Any]], plurals: set[str] | None = None) -> dict[str, str]:
    return {
        uid: obj["metadata"]["resourceVersion"]
        for uid, obj in view.items()
        if plurals is None or _plural(obj) in plurals
    }


def _plural(obj: dict[str, Any]) -> str:
    return obj["kind"].lower() + "s"


@dataclass
class Running:
    """A source + capture sink + engine running in the background."""

    source: KubernetesSource
    sink: CaptureSink
    engine: Engine
    task: asyncio.Task[Any]

    async def synced(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self.sink.synced.wait(), timeout)

    def by_plural(self, plural: str) -> dict[str, dict[str, Any]]:
        return {
            uid: obj
            for uid, obj in fold(self.sink.events).items()
            if _resource_of(self.sink.events, uid) == plural
        }

    async def stop(self) -> Any:
        self.engine.stop("test done")
        return await asyncio.wait_for(self.task, 10)


def _resource_of(events: list[Event], uid: str) -> str:
    for event in reversed(events):
        if event.uid == uid:
            return event.resource.plural
    return ""


def start_source(kubeconfig: Path | str, tuning: Tuning = FAST, **options: Any) -> Running:
    """A k8s source for ``kubeconfig`` running into a capture sink (stop it with ``.stop()``)."""
    source = KubernetesSource(Options({"kubeconfig": str(kubeconfig), **options}), tuning=tuning)
    sink = CaptureSink()
    engine = Engine([source], [sink])
    return Running(source, sink, engine, asyncio.create_task(engine.run()))


@pytest.fixture
async def run_source(kubeconfig: Path) -> AsyncIterator[Callable[..., Any]]:
    """``await run_source(resources=..., ...)`` -> Running, stopped at teardown."""
    started: list[Running] = []

    async def start(tuning: Tuning = FAST, **options: Any) -> Running:
        running = start_source(options.pop("kubeconfig", kubeconfig), tuning, **options)
        started.append(running)
        return running

    yield start
    for running in started:
        if not running.task.done():
            await running.stop()
