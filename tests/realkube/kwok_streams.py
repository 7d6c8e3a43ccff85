"""Pod logs and exec for kwok's fake pods, served by kwok's own node server through the real
kube-apiserver (as a kubelet serves them).

kwok (v0.8.0) reads what to serve from resources of its own API group:

- ``ClusterExec`` (in ``--config``, for every pod): ``exec`` runs the command *on this host*,
  with ``/bin/sh`` and friends, in ``<workdir>/kwok-exec`` and with ``KWOK_EXEC=1`` added to
  the environment. ``exec -t`` gets a real pty.
- ``ClusterLogs`` (in ``--config``, for every pod): ``<workdir>/kwok-logs/default.log``, and
  ``default-previous.log`` for ``?previous=true`` (a 400 until that file exists).
- ``Logs`` (the CRD ``logs.kwok.x-k8s.io``, watched by kwok with ``--enable-crds=Logs``): one
  per pod, named as the pod, in its namespace, giving that pod's containers their own files.
  :meth:`tests.realkube.cluster.ControlPlane.pod_logs` creates one and returns a
  :class:`PodLogFiles` to write to.

kwok reads those files as a kubelet reads a container runtime's logs, through CRI's reader
(``k8s.io/cri-client/pkg/logs``), so they are in CRI's format (``<RFC3339Nano> stdout F
<text>``): ``tailLines``, ``timestamps``, ``limitBytes``, ``sinceTime`` and ``follow`` (fsnotify
on the file) all behave as on a node. A ``follow`` ends only when the client goes away: kwok
asks no runtime whether the container still runs.

Where kwok 0.8.0 is not a kubelet (test_kwok_logs_exec.py records the exit status; the rest
was observed by hand, and the fake follows the kubelet in each):

- exec's command runs with this host's environment and user; a non-zero exit comes back as an
  InternalError Status (``cmd wait: ... exit status 3``), not NonZeroExitCode;
- the command's stdin is never closed, so ``cat`` waits for ever: read a known number of lines;
- ``tty=true`` without ``stdin=true`` crashes the kwok process (a nil reader in its pty
  tunnel), and with it every pod's logs and exec for the rest of the session: never do that;
- a ``follow`` never ends by itself, not even when the pod is deleted.

The apiserver reaches kwok at the node's InternalIP (127.0.0.1, the only address kwok gives the
node) and ``status.daemonEndpoints.kubeletEndpoint.Port`` (``--node-port``), over TLS with its
``--kubelet-client-certificate``. kwok serves a certificate of our CA for 127.0.0.1; the
apiserver, started without ``--kubelet-certificate-authority``, does not verify it (as
kube-apiserver does by default), so a throwaway certificate would do as well.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

#: The CRDs of kwok's that the cluster installs (assets copied by build.py) and kwok watches.
CRD_ASSETS = ("kwok.x-k8s.io_logs.yaml",)
ENABLED_CRDS = ("Logs",)
EXEC_ENV = {"KWOK_EXEC": "1"}


def is_crd_asset(path: Path) -> bool:
    """kwok's CRD files among the assets (the rest are Stage definitions for ``--config``)."""
    return path.name.startswith("kwok.x-k8s.io_")


def write_config(workdir: Path) -> Path:
    """The ``--config`` document with kwok's ClusterExec and ClusterLogs for every pod."""
    logs = workdir / "kwok-logs"
    logs.mkdir(parents=True, exist_ok=True)
    exec_dir = workdir / "kwok-exec"
    exec_dir.mkdir(parents=True, exist_ok=True)
    default, previous = logs / "default.log", logs / "default-previous.log"
    default.touch()  # the previous file appears when written: until then kwok answers 400
    documents = [
        {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ClusterExec",
            "metadata": {"name": "meshsync-tests-exec"},
            "spec": {
                "execs": [
                    {
                        "local": {
                            "workDir": str(exec_dir),
                            "envs": [{"name": k, "value": v} for k, v in EXEC_ENV.items()],
                        }
                    }
                ]
            },
        },
        {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ClusterLogs",
            "metadata": {"name": "meshsync-tests-logs"},
            "spec": {
                "logs": [
                    {"logsFile": str(default), "previousLogsFile": str(previous), "follow": True}
                ]
            },
        },
    ]
    path = workdir / "kwok-streams.yaml"
    path.write_text(yaml.safe_dump_all(documents))
    return path


def cri_line(text: str, stream: str = "stdout", at: datetime.datetime | None = None) -> str:
    """One log line as a container runtime writes it (``<RFC3339Nano> <stream> F <text>``)."""
    when = at or datetime.datetime.now(datetime.timezone.utc)
    stamp = when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
    return f"{stamp} {stream} F {text}\n"


@dataclass
class ContainerLog:
    """The current and the previous log file of one container."""

    current: Path
    previous: Path
    lines: list[tuple[str, str]] = field(default_factory=list)  # (timestamp, text) written

    def append(
        self,
        *texts: str,
        stream: str = "stdout",
        previous: bool = False,
        at: datetime.datetime | None = None,
    ) -> None:
        """Append lines (one write each, flushed: a follower sees them at once), stamped `at`
        (default: now), as the container runtime would have written them."""
        target = self.previous if previous else self.current
        with open(target, "a", encoding="utf-8") as handle:
            for text in texts:
                line = cri_line(text, stream, at)
                handle.write(line)
                handle.flush()
                if not previous:
                    self.lines.append((line.split(" ", 1)[0], text))


@dataclass
class PodLogFiles:
    """The log files kwok serves for one pod, by container name."""

    namespace: str
    pod: str
    containers: dict[str, ContainerLog]

    def __getitem__(self, container: str) -> ContainerLog:
        return self.containers[container]

    def resource(self) -> dict[str, Any]:
        """kwok's ``Logs`` object that points the pod's containers at these files."""
        return {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "Logs",
            "metadata": {"name": self.pod, "namespace": self.namespace},
            "spec": {
                "logs": [
                    {
                        "containers": [name],
                        "logsFile": str(log.current),
                        "previousLogsFile": str(log.previous),
                        "follow": True,
                    }
                    for name, log in self.containers.items()
                ]
            },
        }


def pod_log_files(directory: Path, namespace: str, pod: str, containers: list[str]) -> PodLogFiles:
    directory.mkdir(parents=True, exist_ok=True)
    logs: dict[str, ContainerLog] = {}
    for name in containers:
        current = directory / f"{namespace}_{pod}_{name}.log"
        previous = directory / f"{namespace}_{pod}_{name}-previous.log"
        current.touch()  # the previous file appears when written: until then kwok answers 400
        logs[name] = ContainerLog(current, previous)
    return PodLogFiles(namespace, pod, logs)
