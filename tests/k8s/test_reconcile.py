"""Periodic, drift-only reconciliation (``--reconcile-interval``): each watched resource is
re-listed in turn and only what differs from what was emitted goes out. The fake server loses
watch events on purpose (``faults.lose_next_events``) so there is real drift to find."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from meshsync_k8s.source import tuning_from
from meshsync_testkit.fake_apiserver import FakeApiServer, bulk_objects

from meshsync_core import EventType, Options

from .conftest import FAST, Running, fold, rv_view, server_view, start_source, wait_until

RESOURCES = [("pods", ""), ("configmaps", "")]


def _watchers(running: Running):
    return [w for ws in running.source.watchers.values() for w in ws]


async def _start(server: FakeApiServer, kubeconfig, streaming: bool, interval: float) -> Running:
    server.load(bulk_objects(100))
    tuning = dataclasses.replace(FAST, streaming_list=streaming, reconcile_interval=interval)
    running = start_source(kubeconfig, tuning, resources=["pods", "configmaps"])
    await running.synced()
    await wait_until(
        lambda: {w.rt.plural for w in server.store.watchers()} >= {"pods", "configmaps"},
        what="open watches",
    )
    return running


def _configmap(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "bulk-0"}, "data": {"v": "1"}}  # fmt: skip


@pytest.mark.parametrize("streaming", [False, True], ids=["paginated", "streaming"])
async def test_drift_from_lost_watch_events_is_found_and_only_it_emitted(
    server, kubeconfig, caplog, streaming: bool
) -> None:
    caplog.set_level(logging.WARNING, logger="meshsync")
    running = await _start(server, kubeconfig, streaming, interval=0.4)
    try:
        before = len(running.sink.events)
        server.faults.lose_next_events(3)
        server.create(_configmap("lost-add"))
        changed = server.objects("configmaps")[1]
        changed["data"] = {"changed": "yes"}
        server.update(changed)
        gone = server.delete(server.objects("configmaps")[2])
        await wait_until(
            lambda: rv_view(fold(running.sink.events)) == server_view(server, RESOURCES),
            15,
            "the drift check to find the lost changes",
        )
        found = [(e.type, e.name) for e in running.sink.events[before:]]
        assert sorted(found) == sorted([
            (EventType.ADDED, "lost-add"),
            (EventType.MODIFIED, changed["metadata"]["name"]),
            (EventType.DELETED, gone["metadata"]["name"]),
        ])  # fmt: skip
        configmaps = next(w for w in _watchers(running) if w.resource.plural == "configmaps")
        assert configmaps.drift_found == 3
        metric = running.source.metrics.value("k8s_drift_found_total", resource="configmaps.v1.")
        assert metric == 3
        assert any("reconciliation found 3 change(s)" in r.getMessage() for r in caplog.records)
    finally:
        await running.stop()


@pytest.mark.parametrize("streaming", [False, True], ids=["paginated", "streaming"])
async def test_no_drift_emits_nothing_and_checks_take_turns(
    server, kubeconfig, streaming: bool
) -> None:
    running = await _start(server, kubeconfig, streaming, interval=0.3)
    try:
        before = len(running.sink.events)
        watchers = _watchers(running)
        await wait_until(
            lambda: all(w.drift_checks >= 2 for w in watchers), 15, "two checks per resource"
        )
        assert len(running.sink.events) == before  # nothing drifted, nothing sent
        assert all(w.drift_found == 0 for w in watchers)
        # one resource at a time: never two checks ahead of the other
        assert abs(watchers[0].drift_checks - watchers[1].drift_checks) <= 1
    finally:
        await running.stop()


def test_reconcile_interval_option() -> None:
    assert tuning_from(Options({"reconcile_interval": 600.0})).reconcile_interval == 600.0
    assert tuning_from(Options({})).reconcile_interval == 0.0  # off unless asked for
