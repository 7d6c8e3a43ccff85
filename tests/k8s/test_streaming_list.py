"""Streaming lists (kube's WatchList): the current state arrives on a watch with
``sendInitialEvents``, closed by the ``k8s.io/initial-events-end`` bookmark, and the same stream
carries on as the watch. Where the server refuses it, paginated lists take over.

The fault scenarios of test_resilience.py are repeated here with streaming lists on: after each,
the emitted stream converges exactly to the server, with no duplicate ADDED."""

from __future__ import annotations

import dataclasses
import logging

from meshsync_k8s.source import tuning_from
from meshsync_testkit.fake_apiserver import FakeApiServer, bulk_objects

from meshsync_core import EventType, Options

from .conftest import FAST, Running, fold, rv_view, server_view, start_source, wait_until

STREAMING = dataclasses.replace(FAST, streaming_list=True)
RESOURCES = [("pods", ""), ("configmaps", "")]


async def _converge(server: FakeApiServer, running: Running) -> None:
    await wait_until(
        lambda: rv_view(fold(running.sink.events)) == server_view(server, RESOURCES),
        15,
        "convergence with the server",
    )


def _requests(server: FakeApiServer) -> list[str]:
    """Requests for pods and configmaps (the source also follows CRDs)."""
    return [
        p for _m, p in server.request_log if p.startswith(("/api/v1/pods", "/api/v1/configmaps"))
    ]


def _streaming_requests(server: FakeApiServer) -> list[str]:
    return [p for p in _requests(server) if "sendInitialEvents=true" in p]


def _paginated_lists(server: FakeApiServer) -> list[str]:
    return [p for p in _requests(server) if "limit=" in p and "watch=" not in p]


async def _started(server: FakeApiServer, kubeconfig, n: int = 300) -> Running:
    server.load(bulk_objects(n))
    running = start_source(kubeconfig, STREAMING, resources=["pods", "configmaps"])
    await running.synced()
    await _converge(server, running)
    return running


async def test_initial_sync_through_a_streaming_list(server, kubeconfig) -> None:
    running = await _started(server, kubeconfig)
    try:
        assert len(_streaming_requests(server)) == 2  # one per resource, nothing else
        assert _paginated_lists(server) == []
        query = _streaming_requests(server)[0]
        assert "resourceVersionMatch=NotOlderThan" in query and "allowWatchBookmarks=true" in query
        watchers = [w for ws in running.source.watchers.values() for w in ws]
        assert [w.streamed_lists for w in watchers] == [1, 1]
        # the same stream goes on as the watch: a change arrives without another request
        requests = len(_requests(server))
        server.create(
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "later", "namespace": "bulk-0"}}
        )  # fmt: skip
        await _converge(server, running)
        assert running.sink.events[-1].type is EventType.ADDED
        assert len(_requests(server)) == requests
    finally:
        await running.stop()


async def test_expired_watch_streams_again_and_emits_only_the_difference(
    server, kubeconfig
) -> None:
    running = await _started(server, kubeconfig)
    try:
        before = len(running.sink.events)
        server.faults.expire_watches()
        server.create(
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "new", "namespace": "bulk-0"}}
        )  # fmt: skip
        gone = server.delete(server.objects("configmaps")[0])
        await wait_until(lambda: len(_streaming_requests(server)) >= 3, what="a new stream")
        await _converge(server, running)
        changes = [(e.type, e.name) for e in running.sink.events[before:]]
        assert changes == [(EventType.ADDED, "new"), (EventType.DELETED, gone["metadata"]["name"])]
    finally:
        await running.stop()


async def test_deletes_missed_while_disconnected_arrive(server, kubeconfig) -> None:
    running = await _started(server, kubeconfig)
    try:
        server.faults.hang_watches()
        doomed = server.objects("pods")[:3]
        for obj in doomed:
            server.delete(obj)
        server.faults.compact()
        server.faults.resume_watches()
        server.faults.expire_watches()
        await _converge(server, running)
        deleted = {e.uid for e in running.sink.events if e.type is EventType.DELETED}
        assert deleted == {o["metadata"]["uid"] for o in doomed}
    finally:
        await running.stop()


async def test_resync_re_emits_everything_once(server, kubeconfig) -> None:
    running = await _started(server, kubeconfig, n=50)
    try:
        tracked = running.source.tracked
        before = len(running.sink.events)
        await running.source.resync()
        again = running.sink.events[before:]
        assert len(again) == tracked and {e.type for e in again} == {EventType.ADDED}
    finally:
        await running.stop()


async def test_a_server_without_streaming_lists_gets_paginated_lists(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="meshsync")
    server = FakeApiServer(watch_list=False, bookmark_interval=0.2)
    await server.start()
    try:
        server.load(bulk_objects(120))
        kubeconfig = server.write_kubeconfig(tmp_path / "kc")
        running = start_source(kubeconfig, STREAMING, resources=["pods", "configmaps"])
        await running.synced()
        await _converge(server, running)
        assert len(_streaming_requests(server)) == 2  # asked once per resource, then never
        assert any("continue=" in p for p in _paginated_lists(server))
        server.faults.expire_watches()  # a re-list does not ask again
        server.delete(server.objects("configmaps")[0])
        await _converge(server, running)
        assert len(_streaming_requests(server)) == 2
        refused = [r.getMessage() for r in caplog.records if "no streaming list" in r.getMessage()]
        assert len(refused) == 3  # pods, configmaps and the CRDs: one line each
        fold(running.sink.events)
        await running.stop()
    finally:
        await server.stop()


def test_the_option_turns_streaming_lists_on_and_off() -> None:
    assert tuning_from(Options({"streaming_list": True})).streaming_list is True
    assert tuning_from(Options({"streaming_list": False})).streaming_list is False
    assert tuning_from(Options({})).streaming_list is False  # off by default
