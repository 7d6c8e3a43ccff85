"""``meshsync demo``: MeshSync against a small fake cluster that keeps changing, no cluster needed.

It starts the fake API server (:mod:`meshsync_k8s.fake_apiserver`) seeded with a realistic small
cluster, writes a kubeconfig for it, and runs exactly what ``meshsync run --source k8s`` runs —
every ``run`` option works (``meshsync demo --output file --once`` writes a snapshot). Meanwhile a
background thread scales the demo Deployment's Pods up and down and edits a ConfigMap, so live
ADDED / MODIFIED / DELETED events show up within seconds.
"""

from __future__ import annotations

import copy
import itertools
import tempfile
import threading
from pathlib import Path
from typing import Any

import click

from meshsync_k8s.fake_apiserver import FakeApiServer, demo_cluster


class ClusterChurn:
    """Changes the demo cluster a little every ``interval`` seconds, until stopped."""

    def __init__(self, server: FakeApiServer, interval: float) -> None:
        self.server = server
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="demo-churn", daemon=True)
        self._extra_pods: list[dict[str, Any]] = []
        self._pod_numbers = itertools.count(1)
        self._edits = itertools.count(1)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        steps = itertools.cycle([self.scale_up, self.edit_config, self.scale_down])
        while not self._stop.wait(self.interval):
            try:
                next(steps)()
            except Exception as exc:  # the demo must go on; the change is simply skipped
                click.echo(f"demo: a cluster change failed: {exc}", err=True)

    def _template_pod(self) -> dict[str, Any] | None:
        pods = [p for p in self.server.objects("pods") if p["metadata"].get("ownerReferences")]
        return pods[0] if pods else None

    def scale_up(self) -> None:
        template = self._template_pod()
        if template is None:
            return
        pod = copy.deepcopy(template)
        meta = pod["metadata"]
        meta["name"] = f"{meta.get('generateName', 'pod-')}demo{next(self._pod_numbers)}"
        for key in ("uid", "resourceVersion", "creationTimestamp", "managedFields"):
            meta.pop(key, None)
        self._extra_pods.append(self.server.create(pod))

    def scale_down(self) -> None:
        if self._extra_pods:
            self.server.delete(self._extra_pods.pop(0))

    def edit_config(self) -> None:
        configs = self.server.objects("configmaps")
        # The app's own ConfigMap rather than kube-root-ca.crt, when the demo data has it.
        configs.sort(key=lambda c: c["metadata"].get("namespace") != "shop")
        if configs:
            config = configs[0]
            config.setdefault("data", {})["demo-edits"] = str(next(self._edits))
            self.server.update(config)


def build_demo_command(run: click.Command) -> click.Command:
    """``demo`` takes every option of ``run``; only the defaults differ (source k8s, console)."""
    params: list[click.Parameter] = []
    for param in run.params:
        param = copy.copy(param)
        if param.name == "output":
            param.default = ("console",)
        elif param.name == "source":
            param.default = ("k8s",)
        elif param.name == "health_port":
            param.default = 0
        params.append(param)
    params.append(
        click.Option(
            ["--churn-interval"],
            type=float,
            default=2.0,
            show_default=True,
            help="Seconds between the demo's cluster changes (0 = no changes).",
        )
    )

    def demo(churn_interval: float, **values: Any) -> Any:
        with FakeApiServer.in_thread() as server, tempfile.TemporaryDirectory() as tmp:
            server.load(demo_cluster())
            kubeconfig = server.write_kubeconfig(Path(tmp) / "kubeconfig", context="demo")
            values["kubeconfig"] = str(kubeconfig)
            values["context"] = None
            click.echo(f"demo: fake cluster at {server.url} (kubeconfig {kubeconfig})", err=True)
            churn = ClusterChurn(server, churn_interval)
            if churn_interval > 0:
                churn.start()
            try:
                assert run.callback is not None
                return run.callback(**values)
            finally:
                churn.stop()

    return click.Command(
        "demo",
        callback=demo,
        params=params,
        help="Run MeshSync against a built-in fake cluster that keeps changing (no cluster).",
        context_settings={"max_content_width": 100},
    )
