"""Faults: after each, the emitted stream converges EXACTLY to the server, no duplicate ADDED."""

from __future__ import annotations

import copy
import logging
from typing import Any

from meshsync_testkit.fake_apiserver import FakeApiServer, bulk_objects

from meshsync_core import EventType

from .conftest import Running, fold, rv_view, server_view, wait_until

RESOURCES = [("pods", ""), ("configmaps", "")]


def _converged(server: FakeApiServer, running: Running) -> bool:
    return rv_view(fold(running.sink.events)) == server_view(server, RESOURCES)


async def _converge(server: FakeApiServer, running: Running, timeout: float = 15.0) -> None:
    await wait_until(lambda: _converged(server, running), timeout, "convergence with the server")
    fold(running.sink.events)  # asserts no duplicate ADDED / phantom changes


def _churn(server: FakeApiServer, tag: str) -> dict[str, Any]:
    """Create one, modify one, delete one configmap; return what was deleted."""
    server.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"new-{tag}", "namespace": "bulk-0"},
            "data": {"x": tag},
        }
    )
    cms = [o for o in server.objects("configmaps") if not o["metadata"]["name"].startswith("new-")]
    changed = copy.deepcopy(cms[0])
    changed.setdefault("data", {})["changed"] = tag
    server.update(changed)
    return server.delete(cms[-1])


async def _watched(server: FakeApiServer) -> None:
    """Faults reach only watches the server already holds: wait for pods' and configmaps'."""
    await wait_until(
        lambda: {w.rt.plural for w in server.store.watchers()} >= {"pods", "configmaps"},
        what="open watches of pods and configmaps",
    )


async def _started(server: FakeApiServer, run_source, n: int = 400) -> Running:
    server.load(bulk_objects(n))
    running = await run_source(resources=["pods", "configmaps"], namespaces=[])
    await running.synced()
    await _converge(server, running)
    await _watched(server)
    # lists were paginated (50 per page in tests) and watches asked for bookmarks
    paths = [path for _method, path in server.request_log]
    assert any("continue=" in p for p in paths)
    assert any("allowWatchBookmarks=true" in p and "timeoutSeconds=" in p for p in paths)
    return running


async def test_expired_watch_relists_only_the_difference(server, run_source) -> None:
    running = await _started(server, run_source)
    lists_before = running.source.watch_counts()["lists"]
    before = len(running.sink.events)
    server.faults.expire_watches()
    _churn(server, "a")
    await _converge(server, running)
    await wait_until(
        lambda: running.source.watch_counts()["lists"] > lists_before, what="a re-list"
    )
    # only the three changes, although 400 objects were listed again
    assert [e.type for e in running.sink.events[before:]] == [
        EventType.ADDED,
        EventType.MODIFIED,
        EventType.DELETED,
    ]


async def test_compaction_while_disconnected_emits_lost_deletes(server, run_source) -> None:
    running = await _started(server, run_source)
    before = len(running.sink.events)
    server.faults.fail_next(10**6, 503)  # every reconnect fails for now
    server.faults.drop_connections()
    deleted = _churn(server, "b")
    extra = server.objects("pods")[5]
    server.delete(extra)
    server.faults.compact()  # the missed history is gone: resuming the watch gets 410
    server.faults.fail_next(0)
    await _converge(server, running)
    new = running.sink.events[before:]
    vanished = [e for e in new if e.type is EventType.DELETED]
    assert {e.uid for e in vanished} == {deleted["metadata"]["uid"], extra["metadata"]["uid"]}
    # a delete seen only through a re-list carries the last known identity
    stub = next(e for e in vanished if e.uid == extra["metadata"]["uid"])
    assert stub.object["kind"] == "Pod" and stub.object["apiVersion"] == "v1"
    assert (
        stub.name == extra["metadata"]["name"] and stub.namespace == extra["metadata"]["namespace"]
    )
    assert len(new) == 4  # ADDED, MODIFIED, DELETED, DELETED: no flood


async def test_dropped_connections_and_5xx_bursts(server, run_source) -> None:
    running = await _started(server, run_source)
    for round_ in range(3):
        server.faults.fail_next(4, 500)
        server.faults.drop_connections()
        _churn(server, f"c{round_}")
        await _converge(server, running)


async def test_hung_stream_is_noticed(server, run_source) -> None:
    running = await _started(server, run_source)
    watches = running.source.watch_counts()["watches"]
    server.faults.hang_watches()
    _churn(server, "d")
    # the inactivity timeout (1s in tests) notices the silent stream and reconnects
    await wait_until(lambda: running.source.watch_counts()["watches"] > watches, what="a reconnect")
    server.faults.resume_watches()
    await _converge(server, running)


async def test_forbidden_resource_does_not_block_others(server, run_source, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="meshsync")
    server.load(bulk_objects(40))
    server.faults.forbid("pods")
    running = await run_source(resources=["pods", "configmaps"])
    await running.synced()  # initial sync excepts the forbidden resource
    cms = {o["metadata"]["uid"] for o in server.objects("configmaps")}
    assert {e.uid for e in running.sink.events} == cms
    await wait_until(lambda: running.source.watch_counts()["lists"] >= 4, what="slow retries")
    warnings = [r.getMessage() for r in caplog.records if "forbidden" in r.getMessage()]
    assert len(warnings) == 1 and "pods" in warnings[0]
    server.faults.allow("pods")
    await _converge(server, running)


async def test_relist_without_changes_emits_nothing(server, run_source) -> None:
    running = await _started(server, run_source, n=120)
    before = len(running.sink.events)
    lists = running.source.watch_counts()["lists"]
    # pods, configmaps and the internal CRD watch must be open before they can expire
    await wait_until(lambda: len(server.store.watchers()) >= 3, what="three open watches")
    assert server.faults.expire_watches() >= 3
    await wait_until(lambda: running.source.watch_counts()["lists"] >= lists + 2, what="re-lists")
    await wait_until(lambda: running.source.watch_counts()["watches"] >= 4, what="watches resumed")
    assert len(running.sink.events) == before


async def test_5xx_burst_at_start_up(server, run_source) -> None:
    server.load(bulk_objects(60))
    server.faults.fail_next(3, 503)  # kube-system lookup and discovery are retried
    running = await run_source(resources=["pods", "configmaps"])
    await running.synced()
    await _converge(server, running)


async def test_continue_token_expiring_mid_list(server, run_source) -> None:
    """410 on a later page of a list (history compacted between two pages), at start and in a
    re-list: the list starts over, and the stream still holds each object exactly once."""
    server.load(bulk_objects(400))
    server.faults.expire_continue_tokens(2)  # the first later page of both resources
    running = await run_source(resources=["pods", "configmaps"], namespaces=[])
    await running.synced()
    await _converge(server, running)
    lists_after_start = running.source.watch_counts()["lists"]
    listed = {e.resource.plural for e in running.sink.events if e.type is EventType.ADDED}
    assert listed == {"pods", "configmaps"}

    before = len(running.sink.events)
    await _watched(server)
    server.faults.expire_continue_tokens(1)
    server.faults.expire_watches()
    _churn(server, "c")
    await _converge(server, running)
    await wait_until(
        lambda: running.source.watch_counts()["lists"] >= lists_after_start + 3,
        what="a re-list of both resources, one of them twice",
    )
    await _converge(server, running)
    changes = sorted(e.type.value for e in running.sink.events[before:])
    assert changes == ["ADDED", "DELETED", "MODIFIED"]
    assert server.faults.take_continue_expiry() is False  # every injected expiry was hit
