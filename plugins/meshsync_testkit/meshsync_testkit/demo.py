"""``meshsync demo``: MeshSync against a small fake cluster that keeps changing, no cluster needed.

It starts the fake API server (:mod:`meshsync_testkit.fake_apiserver`) seeded with a realistic
small cluster, writes a kubeconfig for it, and runs exactly what ``meshsync run --source k8s``
runs — every ``run`` option works (``meshsync demo --output file --once`` writes a snapshot).
Meanwhile a background thread scales the demo Deployment's Pods up and down and edits a
ConfigMap, so live ADDED / MODIFIED / DELETED events show up within seconds, and its pods write
access-log lines: with ``--output nats``, ``meshsync request logs`` (or Meshery) follows them,
and ``meshsync request exec`` opens a shell in the fake server's built-in interpreter.
"""

from __future__ import annotations

import copy
import itertools
import tempfile
import threading
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from meshsync_core import ConfigError, Duration, as_list
from meshsync_core.logs import effective_level
from meshsync_testkit.fake_apiserver import FakeApiServer, demo_cluster


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
        self._requests = itertools.count(1)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop changing the cluster; a no-op if :meth:`start` was never called."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        steps = itertools.cycle([self.scale_up, self.edit_config, self.scale_down])
        while not self._stop.wait(self.interval):
            try:
                next(steps)()
                self.serve_requests()
            except Exception as exc:  # the demo must go on; the change is simply skipped
                click.echo(f"demo: a cluster change failed: {exc}", err=True)

    def serve_requests(self) -> None:
        """Every running demo pod logs a request (``meshsync request logs`` shows them)."""
        for pod in self.server.objects("pods"):
            log_request(self.server, pod, next(self._requests))

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
        created = self.server.create(pod)
        self._extra_pods.append(created)
        seed_logs(self.server, [created])

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


_PATHS = ("/", "/products", "/products/42", "/cart", "/healthz")


def log_request(server: FakeApiServer, pod: dict[str, Any], number: int) -> None:
    """One access-log line in each container of ``pod``."""
    meta = pod["metadata"]
    path = _PATHS[number % len(_PATHS)]
    for container in pod.get("spec", {}).get("containers") or []:
        server.append_log(
            meta.get("namespace", ""),
            meta["name"],
            container["name"],
            f'10.244.0.{number % 250 + 2} - - "GET {path} HTTP/1.1" 200 {512 + number % 97}',
        )


def seed_logs(server: FakeApiServer, pods: list[dict[str, Any]]) -> None:
    """A start-up log for every pod's containers, and a log of the previous instance."""
    for pod in pods:
        meta = pod["metadata"]
        for container in pod.get("spec", {}).get("containers") or []:
            key = (meta.get("namespace", ""), meta["name"], container["name"])
            server.append_log(*key, "starting (previous instance)", previous=True)
            server.append_log(*key, "listening on :8080")
            server.append_log(*key, "ready")


#: ``run`` options that mean nothing here: the demo brings its own cluster.
_IGNORED = ("kubeconfig", "context")


def _is_nats_option(param: click.Parameter) -> bool:
    return isinstance(param, click.Option) and (param.help or "").startswith("[nats]")


def build_demo_command(run: click.Command) -> click.Command:
    """``demo`` takes every option of ``run``; only the defaults differ (source k8s, console).

    Its help leaves out what does not apply: ``--kubeconfig``/``--context`` (the demo brings its
    own cluster; given on the command line they are an error, in a config file shared with
    ``run`` they are ignored) and the NATS options (they still work with ``--output nats``).
    """
    params: list[click.Parameter] = []
    for param in run.params:
        param = copy.copy(param)
        if param.name == "output":
            param.default = ("console",)
            param.help = (
                "Sink to deliver to: any installed sink, 'broker' = 'nats' (default: console). "
                "Repeatable, or comma-separated."
            )
        elif param.name == "source":
            param.default = ("k8s",)
        elif param.name == "health_port":
            param.default = 0
        elif param.name in ("pod_logs", "pod_exec"):
            # The demo's pods are fake: their logs are made up and exec runs the fake API
            # server's small built-in interpreter, never a real shell.
            param.default = "on"
        elif param.name == "log_level" and isinstance(param, click.Option):
            param.help = (
                "Log level (default: warning with only the console output, whose lines are "
                "the demo; info otherwise; DEBUG=true in the environment means debug)."
            )
        if param.name in _IGNORED or _is_nats_option(param):
            assert isinstance(param, click.Option)
            param.hidden = True
        params.append(param)
    params.append(
        click.Option(
            ["--churn-interval"],
            type=Duration(),
            default="2s",
            show_default=True,
            help="Time between the demo's cluster changes, e.g. 500ms or 5s (0 = no changes).",
        )
    )

    def demo(churn_interval: float, **values: Any) -> Any:
        ctx = click.get_current_context()
        for name in _IGNORED:
            if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE:
                raise ConfigError(
                    f"--{name} does not apply to meshsync demo, which runs against its own fake "
                    "cluster; use meshsync run for a real one"
                )
        outputs = as_list(values.get("output")) or ["console"]
        only_console = outputs in (["console"], ["stdout"])
        if only_console and values.get("log_level") is None and effective_level(None) != "debug":
            values["log_level"] = "warning"  # info lines would land in the middle of its lines
        with FakeApiServer.in_thread() as server, tempfile.TemporaryDirectory() as tmp:
            server.load(demo_cluster())
            seed_logs(server, server.objects("pods"))
            kubeconfig = server.write_kubeconfig(Path(tmp) / "kubeconfig", context="demo")
            values["kubeconfig"] = str(kubeconfig)
            values["context"] = None
            changes = f"changing every {churn_interval:g}s" if churn_interval else "not changing"
            click.echo(
                f"demo: fake cluster at {server.url}, {changes} (kubeconfig {kubeconfig})",
                err=True,
            )
            if "nats" in outputs or "broker" in outputs:
                pods = sorted(
                    f"{p['metadata']['namespace']}/{p['metadata']['name']}"
                    for p in server.objects("pods")
                )
                click.echo(
                    f"demo: logs and a (fake) shell on request, e.g. meshsync request logs "
                    f"{pods[0]} --follow --broker-url <url>",
                    err=True,
                )
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
        epilog="Every option of 'meshsync run' works here too, including the NATS options "
        "(for --output nats) that this help leaves out: see 'meshsync run --help'.",
        context_settings={"max_content_width": 100},
    )
