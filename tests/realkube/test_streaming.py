"""Streaming lists against the real kube-apiserver: used where WatchList is on (the 1.37
default), paginated lists where a cluster has the gate off."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.k8s.conftest import fold, start_source
from tests.realkube.cluster import ControlPlane
from tests.realkube.fixtures import REAL
from tests.realkube.test_source import converge

STREAMING = dataclasses.replace(REAL, streaming_list=True)


@pytest.fixture(scope="module")
def gate_off(tmp_path_factory: pytest.TempPathFactory, real_cluster) -> Iterator[ControlPlane]:
    """A second, small cluster (no controllers) whose apiserver has WatchList off."""
    plane = ControlPlane(
        tmp_path_factory.mktemp("watchlist-off"), feature_gates="WatchList=false",
        with_controllers=False,
    )  # fmt: skip
    try:
        yield plane.start()
    finally:
        plane.stop()


def _watchers(running):
    return [w for ws in running.source.watchers.values() for w in ws]


async def test_streaming_lists_where_the_server_offers_them(
    real_kubeconfig: Path, real_cluster: ControlPlane
) -> None:
    running = start_source(real_kubeconfig, STREAMING)
    try:
        await running.synced(60)
        await converge(real_cluster, running)
        watchers = _watchers(running)
        assert watchers and all(w.streamed_lists == 1 for w in watchers), [
            (w.label, w.streamed_lists) for w in watchers if w.streamed_lists != 1
        ]
        assert all(w.streaming_list for w in watchers)
        fold(running.sink.events)  # no duplicate ADDED
    finally:
        await running.stop()


async def test_paginated_lists_where_watchlist_is_off(gate_off: ControlPlane, tmp_path) -> None:
    kubeconfig = gate_off.kubeconfig(tmp_path / "kc")
    running = start_source(kubeconfig, STREAMING)
    try:
        await running.synced(60)
        await converge(gate_off, running)
        watchers = _watchers(running)
        assert watchers and not any(w.streaming_list for w in watchers)
        assert all(w.streamed_lists == 0 and w.lists >= 2 for w in watchers)  # tried, then paged
    finally:
        await running.stop()
