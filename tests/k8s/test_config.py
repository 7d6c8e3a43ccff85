"""Resource selection, the MeshSync custom resource, and configuration errors."""

from __future__ import annotations

import asyncio
import copy
import json
import logging

import pytest
from meshsync_k8s.source import KubernetesSource
from meshsync_k8s.watcher import Tuning
from meshsync_testkit.fake_apiserver import FakeApiServer, demo_cluster

from meshsync_core import ConfigError, Engine, EventType, Options
from meshsync_core.testing import CaptureSink

from .conftest import FAST, fold, wait_until


def _meshsync_cr(whitelist=None, blacklist=None) -> dict:
    data = {}
    if whitelist is not None:
        data["whitelist"] = json.dumps(whitelist)
    if blacklist is not None:
        data["blacklist"] = json.dumps(blacklist)
    return {
        "apiVersion": "meshery.io/v1alpha1",
        "kind": "MeshSync",
        "metadata": {"name": "meshery-meshsync", "namespace": "meshery"},
        "spec": {"version": "stable", "watch-list": {"data": data}},
    }


def _with_meshery_ns(server: FakeApiServer) -> None:
    server.load(demo_cluster())
    server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "meshery"}})


def _plurals(events) -> set[str]:
    return {e.resource.plural for e in events}


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        (["pod", "deployment"], {"pods", "deployments"}),
        (["pods.v1.", "deployments.v1.apps"], {"pods", "deployments"}),
        (["Pod,svc"], {"pods", "services"}),
        (["deployments.apps", "widgets.example.com"], {"deployments", "widgets"}),
    ],
)
async def test_resource_names(server, run_source, resources, expected) -> None:
    server.load(demo_cluster())
    running = await run_source(resources=resources)
    await running.synced()
    assert {w.split(".")[0] for w in running.source.watched()} == expected
    assert _plurals(running.sink.events) == expected


async def test_exclusions(server, run_source) -> None:
    server.load(demo_cluster())
    running = await run_source(resources=["-secrets", "!widgets"])
    await running.synced()
    watched = running.source.watched()
    assert "secrets.v1." not in watched and "widgets.v1.example.com" not in watched
    assert "pods.v1." in watched and "meshsyncs.v1alpha1.meshery.io" in watched
    assert not {"secrets", "widgets"} & _plurals(running.sink.events)


async def test_meshsync_cr_whitelist_with_event_filter(server, run_source) -> None:
    _with_meshery_ns(server)
    server.create(
        _meshsync_cr(
            whitelist=[
                {"Resource": "configmaps.v1.", "Events": ["ADDED", "DELETED"]},
                {"Resource": "services.v1.", "Events": ["ADDED", "MODIFIED", "DELETED"]},
            ]
        )
    )
    running = await run_source()
    await running.synced()
    assert {w.split(".")[0] for w in running.source.watched()} == {"configmaps", "services"}
    before = len(running.sink.events)
    cm = copy.deepcopy(server.objects("configmaps")[0])
    cm["data"] = {"changed": "yes"}
    server.update(cm)
    svc = copy.deepcopy(server.objects("services")[0])
    svc["metadata"].setdefault("labels", {})["touched"] = "1"
    server.update(svc)
    await wait_until(lambda: len(running.sink.events) > before)
    # MODIFIED is filtered out for configmaps, not for services
    assert [(e.type, e.resource.plural) for e in running.sink.events[before:]] == [
        (EventType.MODIFIED, "services")
    ]


async def test_meshsync_cr_blacklist_and_reread_on_change(server, run_source, caplog) -> None:
    caplog.set_level(logging.INFO, logger="meshsync")
    _with_meshery_ns(server)
    cr = server.create(_meshsync_cr(blacklist=["secrets.v1.", "pods.v1."]))
    running = await run_source()
    await running.synced()
    watched = running.source.watched()
    assert "pods.v1." not in watched and "secrets.v1." not in watched
    assert "configmaps.v1." in watched
    assert "pods" not in _plurals(running.sink.events)

    # change the custom resource: pods are watched from now on, no restart
    cr = copy.deepcopy(server.get(cr))
    cr["spec"]["watch-list"]["data"] = {"blacklist": json.dumps(["secrets.v1."])}
    server.update(cr)
    pods = {p["metadata"]["uid"] for p in server.objects("pods")}
    await wait_until(lambda: pods <= set(fold(running.sink.events)), what="pods after CR change")

    # an invalid change is reported and the previous configuration kept
    cr = copy.deepcopy(server.get(cr))
    cr["spec"]["watch-list"]["data"] = {"blacklist": '["a"]', "whitelist": '[{"Resource":"x"}]'}
    server.update(cr)
    await wait_until(
        lambda: any("both data.whitelist and data.blacklist" in r.message for r in caplog.records)
    )
    assert "pods.v1." in running.source.watched()

    # deleting the custom resource lifts the restriction
    server.delete(cr)
    await wait_until(lambda: "secrets.v1." in running.source.watched(), what="secrets watched")


async def test_meshsync_cr_ignored_with_no_meshsync_cr(server, run_source) -> None:
    _with_meshery_ns(server)
    server.create(_meshsync_cr(blacklist=["pods.v1."]))
    running = await run_source(meshsync_cr=False)
    await running.synced()
    assert "pods.v1." in running.source.watched()


async def _start_result(kubeconfig, **options):
    source = KubernetesSource(Options({"kubeconfig": str(kubeconfig), **options}), tuning=FAST)
    return await Engine([source], [CaptureSink()]).run()


async def test_meshsync_cr_with_both_lists_is_a_config_error(server, kubeconfig) -> None:
    _with_meshery_ns(server)
    server.create(_meshsync_cr(whitelist=[{"Resource": "pods.v1."}], blacklist=["secrets.v1."]))
    result = await _start_result(kubeconfig)
    assert result.exit_code == 2
    assert "sets both data.whitelist and data.blacklist" in result.reason


def test_mixing_resources_and_exclusions_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="either a list to watch or a list to exclude"):
        KubernetesSource(Options({"resources": ["pods", "-secrets"]}))


def test_invalid_resource_name_syntax() -> None:
    with pytest.raises(ConfigError, match="invalid resource name 'po ds'"):
        KubernetesSource(Options({"resources": ["po ds"]}))


async def test_unknown_resource_name_exits_2(server, kubeconfig) -> None:
    result = await _start_result(kubeconfig, resources=["frobnicators"])
    assert result.exit_code == 2
    assert result.reason.startswith("unknown resource 'frobnicators'")


async def test_qualified_name_waits_for_its_crd(server, run_source) -> None:
    running = await run_source(resources=["widgets.v1.example.com"])
    await running.synced()
    assert running.source.watched() == []
    crd = next(o for o in demo_cluster() if o["metadata"]["name"] == "widgets.example.com")
    server.create(crd)
    await wait_until(lambda: running.source.watched() == ["widgets.v1.example.com"])


def test_tuning_options_reach_the_watchers_and_bad_values_are_config_errors() -> None:
    source = KubernetesSource(
        Options(
            {
                "list_page_size": 120,
                "watch_timeout": 600.0,
                "watch_inactivity_timeout": 90.0,
                "retry_max_delay": 5.0,
            }
        )
    )
    tuning = source.tuning
    assert (tuning.page_size, tuning.watch_timeout) == (120, 600.0)
    assert (tuning.inactivity_timeout, tuning.backoff_max) == (90.0, 5.0)
    assert KubernetesSource(Options()).tuning == Tuning()  # unset: the defaults
    with pytest.raises(ConfigError, match=r"--watch-inactivity-timeout must be at least 0\.1"):
        KubernetesSource(Options({"watch_inactivity_timeout": 0.0}))
    with pytest.raises(ConfigError, match="--list-page-size must be at least 1"):
        KubernetesSource(Options({"list_page_size": 0}))


async def test_list_page_size_is_sent_to_the_server(server, kubeconfig) -> None:
    """Set through the option (no Python-only tuning), the page size reaches the API server."""
    server.load(demo_cluster())
    options = Options(
        {
            "kubeconfig": str(kubeconfig),
            "resources": ["pods"],
            "list_page_size": 2,
            "streaming_list": False,  # --no-streaming-list: list in pages, as a server without it
        }
    )
    sink = CaptureSink()
    engine = Engine([KubernetesSource(options)], [sink])
    task = asyncio.create_task(engine.run())
    try:
        await asyncio.wait_for(sink.synced.wait(), 10)
    finally:
        engine.stop("test done")
        await asyncio.wait_for(task, 10)
    lists = [path for _m, path in server.request_log if path.startswith("/api/v1/pods?")]
    assert lists and all("limit=2" in path for path in lists if "watch" not in path)
    assert any("continue=" in path for path in lists)
    assert not any("sendInitialEvents" in path for path in lists)
