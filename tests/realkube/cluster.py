"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, controller-manager,
scheduler and kwok's fake nodes, each its own process, built from their Go modules (build.py).

Nothing here imitates Kubernetes: the tests talk to the same apiserver and etcd a cluster runs.
The flags are chosen so that the hard cases happen quickly and on purpose: RBAC authorization,
client certificates from our own CA, service-account tokens, and a short etcd compaction interval
so that watches really get 410 Gone.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.realkube import kwok_streams
from tests.realkube.build import Built, ensure_built
from tests.realkube.pki import Authority

START_TIMEOUT = 90.0  # seconds; a cold apiserver start on 2 loaded cores takes ~10 s
LOG_TAIL = 30


class ControlPlaneError(RuntimeError):
    """A control-plane process did not start; the message carries its log's last lines."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = LOG_TAIL) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class Process:
    name: str
    argv: list[str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # appended: a restarted process keeps its earlier log
        with open(self.log, "ab") as handle:
            self.popen = subprocess.Popen(
                self.argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.popen = None

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()
        self.popen = None

    def failure(self, what: str) -> ControlPlaneError:
        code = self.popen.poll() if self.popen else None
        state = f"exited with {code}" if code is not None else "still running"
        return ControlPlaneError(
            f"{self.name} {what} ({state}); last lines of {self.log}:\n{_tail(self.log)}"
        )


@dataclass
class Credentials:
    """A client identity for the apiserver: a certificate, a bearer token, or both."""

    name: str
    cert: Path | None = None
    key: Path | None = None
    token: str | None = None


@dataclass
class ControlPlane:
    """The processes, their certificates and kubeconfigs; `start()` returns when all are ready."""

    workdir: Path
    compaction_interval: str = "5s"
    feature_gates: str = ""
    with_controllers: bool = True
    extra_apiserver_flags: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.controlplane: Built = ensure_built("controlplane")
        self.kwok_bin: Built = ensure_built("kwok")
        self.ca = Authority()
        self.ca_file = self.workdir / "ca.pem"
        self.ca_file.write_bytes(self.ca.cert_pem)
        self.etcd_port = free_port()
        self.apiserver_port = free_port()
        self.url = f"https://127.0.0.1:{self.apiserver_port}"
        self.processes: dict[str, Process] = {}
        self._write_certificates()
        self.admin = self.client_certificate("admin", group="system:masters")

    # -- identities -------------------------------------------------------------------------

    def _write_certificates(self) -> None:
        self.ca.issue(
            self.workdir / "apiserver.pem",
            self.workdir / "apiserver-key.pem",
            "kube-apiserver",
            hosts=("127.0.0.1", "localhost", "kubernetes.default.svc"),
        )
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (self.workdir / "sa.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        (self.workdir / "sa.pub").write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def client_certificate(self, user: str, group: str | None = None) -> Credentials:
        """A client certificate of our CA: CN is the user, O the group (as the apiserver reads)."""
        stem = user.replace(":", "_")
        cert, key = self.workdir / f"{stem}.pem", self.workdir / f"{stem}-key.pem"
        self.ca.issue(cert, key, user, group=group)
        return Credentials(user, cert=cert, key=key)

    def kubeconfig(
        self, path: Path, credentials: Credentials | None = None, namespace: str | None = None
    ) -> Path:
        """A kubeconfig for `credentials` (the admin by default), with our CA."""
        who = credentials or self.admin
        user: dict[str, Any] = {}
        if who.cert and who.key:
            user["client-certificate"] = str(who.cert)
            user["client-key"] = str(who.key)
        if who.token:
            user["token"] = who.token
        context: dict[str, Any] = {"cluster": "real", "user": who.name}
        if namespace:
            context["namespace"] = namespace
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "real",
                    "cluster": {"server": self.url, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": who.name, "user": user}],
            "contexts": [{"name": "real", "context": context}],
            "current-context": "real",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    # -- processes --------------------------------------------------------------------------

    def _etcd(self) -> Process:
        peer = free_port()
        argv = [
            str(self.controlplane.path("etcd")),
            "--name=default",
            f"--data-dir={self.workdir / 'etcd-data'}",
            f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=default=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync",  # a test cluster: durability across power loss buys nothing here
            "--log-level=warn",
        ]
        return Process("etcd", argv, self.workdir / "etcd.log")

    def _apiserver(self, name: str = "kube-apiserver", port: int | None = None) -> Process:
        kubelet = self.client_certificate("kube-apiserver-kubelet-client", "system:masters")
        argv = [
            str(self.controlplane.path("kube-apiserver")),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            # the lease reconciler refuses a loopback address; nothing here dials the Service
            "--endpoint-reconciler-type=none",
            f"--secure-port={port or self.apiserver_port}",
            f"--tls-cert-file={self.workdir / 'apiserver.pem'}",
            f"--tls-private-key-file={self.workdir / 'apiserver-key.pem'}",
            f"--client-ca-file={self.ca_file}",
            f"--kubelet-client-certificate={kubelet.cert}",
            f"--kubelet-client-key={kubelet.key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={self.workdir / 'sa.pub'}",
            f"--service-account-signing-key-file={self.workdir / 'sa.key'}",
            "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.96.0.0/16",
            # fake pods need no token volume, and new namespaces need not wait for their
            # "default" ServiceAccount before a test can create a Pod in them
            "--disable-admission-plugins=ServiceAccount",
            # watches older than this interval really get 410 Gone
            f"--etcd-compaction-interval={self.compaction_interval}",
            "--profiling=false",
            "--v=1",
            *self.extra_apiserver_flags,
        ]
        if self.feature_gates:
            argv.append(f"--feature-gates={self.feature_gates}")
        return Process(name, argv, self.workdir / f"{name}.log")

    def _component(self, name: str, user: str, extra: list[str]) -> Process:
        config = self.kubeconfig(self.workdir / f"{name}.kubeconfig", self.client_certificate(user))
        argv = [
            str(self.controlplane.path(name)),
            f"--kubeconfig={config}",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            "--leader-elect=false",
            *extra,
        ]
        return Process(name, argv, self.workdir / f"{name}.log")

    def _kwok(self) -> Process:
        """kwok's controllers and its node server (logs, exec: see kwok_streams.py)."""
        config = self.kubeconfig(
            self.workdir / "kwok.kubeconfig", self.client_certificate("kwok", "system:masters")
        )
        self.kwok_port = free_port()
        serving, serving_key = (
            self.workdir / "kwok-serving.pem",
            self.workdir / "kwok-serving-key.pem",
        )
        self.ca.issue(serving, serving_key, "kwok", hosts=("127.0.0.1", "localhost"))
        assets = sorted(self.kwok_bin.path("assets").glob("*.yaml"))
        stages = [a for a in assets if not kwok_streams.is_crd_asset(a)]
        argv = [
            str(self.kwok_bin.path("kwok")),
            f"--kubeconfig={config}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--node-ip=127.0.0.1",
            f"--node-port={self.kwok_port}",
            f"--server-address=127.0.0.1:{self.kwok_port}",
            f"--tls-cert-file={serving}",
            f"--tls-private-key-file={serving_key}",
            f"--enable-crds={','.join(kwok_streams.ENABLED_CRDS)}",
            "--cidr=10.244.0.1/16",
            f"--config={kwok_streams.write_config(self.workdir)}",
            *(f"--config={stage}" for stage in stages),
        ]
        return Process("kwok", argv, self.workdir / "kwok.log")

    def _install_kwok_crds(self) -> None:
        """kwok's CRDs that it watches (``--enable-crds``), established before kwok starts."""
        for name in kwok_streams.CRD_ASSETS:
            crd = yaml.safe_load(self.kwok_bin.path("assets").joinpath(name).read_text())
            self.apply(crd)
            path = (
                f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}"
            )
            deadline = time.monotonic() + START_TIMEOUT
            while not any(
                c["type"] == "Established" and c["status"] == "True"
                for c in (self.api("GET", path).get("status") or {}).get("conditions") or []
            ):
                if time.monotonic() > deadline:
                    raise ControlPlaneError(f"{path} not Established after {START_TIMEOUT:.0f} s")
                time.sleep(0.1)  # the apiserver has no event to await for this

    def pod_logs(
        self, namespace: str, pod: str, containers: list[str], directory: Path | None = None
    ) -> kwok_streams.PodLogFiles:
        """Log files of the pod's containers, served by kwok for `kubectl logs` (kwok's `Logs`
        object, named as the pod). kwok picks it up from its watch within moments; until then
        the pod gets the cluster-wide default log."""
        files = kwok_streams.pod_log_files(
            directory or self.workdir / "kwok-logs", namespace, pod, containers
        )
        self.apply(files.resource())
        return files

    def start(self) -> ControlPlane:
        self.processes["etcd"] = self._etcd()
        self.processes["etcd"].start()
        self.start_apiserver()
        if self.with_controllers:
            self.processes["kube-controller-manager"] = self._component(
                "kube-controller-manager",
                "system:kube-controller-manager",
                [
                    f"--service-account-private-key-file={self.workdir / 'sa.key'}",
                    f"--root-ca-file={self.ca_file}",
                    "--use-service-account-credentials=true",
                    "--controllers=*",
                ],
            )
            self.processes["kube-scheduler"] = self._component(
                "kube-scheduler", "system:kube-scheduler", []
            )
            self.processes["kwok"] = self._kwok()
            self._install_kwok_crds()
            for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
                self.processes[name].start()
            self.add_node("kwok-node-0")
        return self

    def start_apiserver(self) -> None:
        apiserver = self.processes.get("kube-apiserver") or self._apiserver()
        self.processes["kube-apiserver"] = apiserver
        apiserver.start()
        self.wait_ready()

    def stop_apiserver(self) -> None:
        self.processes["kube-apiserver"].stop()

    def second_apiserver(self) -> str:
        """Another kube-apiserver on the same etcd (an HA control plane); returns its URL.

        While the first one is stopped, changes made through this one are changes a watcher of
        the first one never sees as events: when the first comes back, its watch cache starts
        after them and the old resourceVersion is answered with 410 Gone.
        """
        if "kube-apiserver-2" not in self.processes:
            port = free_port()
            process = self._apiserver("kube-apiserver-2", port)
            process.start()
            self.processes[process.name] = process
            self.second_url = f"https://127.0.0.1:{port}"
            self.wait_ready(url=self.second_url)
        return self.second_url

    def wait_ready(self, timeout: float = START_TIMEOUT, url: str | None = None) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for process in self.processes.values():
                if process.popen is not None and not process.alive():
                    raise process.failure("exited during start-up")
            try:
                status, body = self.request("GET", "/readyz", url=url)
                if status == 200:
                    return
                last = body.decode(errors="replace")[-300:]
            except (OSError, urllib.error.URLError) as error:
                last = str(error)
            time.sleep(0.2)  # polling a process that has no readiness signal of its own
        raise self.processes["kube-apiserver"].failure(
            f"not ready after {timeout:.0f} s (last answer: {last})"
        )

    def stop(self) -> None:
        for name in (
            "kwok",
            "kube-scheduler",
            "kube-controller-manager",
            "kube-apiserver-2",
            "kube-apiserver",
            "etcd",
        ):
            process = self.processes.get(name)
            if process:
                process.stop()

    # -- a small admin client (independent of the code under test) ---------------------------

    def _ssl(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(str(self.admin.cert), str(self.admin.key))
        return context

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        url: str | None = None,
    ) -> tuple[int, bytes]:
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request((url or self.url) + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, context=self._ssl(), timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        ok: tuple[int, ...] = (200, 201),
        content_type: str = "application/json",
        url: str | None = None,
    ) -> Any:
        status, data = self.request(method, path, body, content_type, url)
        if status not in ok:
            raise AssertionError(f"{method} {path}: {status} {data[:500]!r}")
        return json.loads(data) if data else None

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply of one object (create or update), as `kubectl apply --server-side`."""
        path = self.object_path(obj)
        return self.api(
            "PATCH",
            f"{path}?fieldManager=meshsync-tests&force=true",
            json.dumps(obj).encode(),
            content_type="application/apply-patch+yaml",
        )

    def object_path(self, obj: dict[str, Any], named: bool = True) -> str:
        api_version = obj["apiVersion"]
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        plural = PLURALS.get(obj["kind"], obj["kind"].lower() + "s")
        namespace = obj["metadata"].get("namespace")
        path = f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"
        return f"{path}/{obj['metadata']['name']}" if named else path

    def add_node(self, name: str) -> None:
        """A fake node that kwok keeps Ready and whose pods it runs."""
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {"kwok.x-k8s.io/node": "fake"},
                    "labels": {"type": "kwok", "kubernetes.io/hostname": name},
                },
                "spec": {},
            }
        )

    def token_for(self, namespace: str, service_account: str, seconds: int = 3600) -> str:
        """A real bound service-account token from the TokenRequest API."""
        answer = self.api(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": seconds},
            },
        )
        return str(answer["status"]["token"])


PLURALS = {
    "Endpoints": "endpoints",
    "Ingress": "ingresses",
    "NetworkPolicy": "networkpolicies",
    "StorageClass": "storageclasses",
    "PriorityClass": "priorityclasses",
    "Logs": "logs",
}


@contextlib.contextmanager
def running(workdir: Path, **options: Any):
    plane = ControlPlane(workdir, **options)
    try:
        yield plane.start()
    finally:
        plane.stop()


if __name__ == "__main__":  # python -m tests.realkube.cluster: a cluster to poke at by hand
    import tempfile

    with running(Path(tempfile.mkdtemp(prefix="realkube-"))) as plane:
        print(plane.kubeconfig(plane.workdir / "admin.kubeconfig"), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while all(p.alive() for p in plane.processes.values()):
                time.sleep(1)
