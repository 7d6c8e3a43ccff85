"""kubectl (a real Go client-go consumer) against the fake server."""

from __future__ import annotations

import pathlib
import queue
import subprocess
import threading

import pytest
from meshsync_testkit.fake_apiserver import FakeApiServer


def run(kubectl: str, kubeconfig: pathlib.Path, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        [kubectl, "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr, proc.stderr
    return proc.stdout


def table(output: str) -> list[list[str]]:
    return [line.split() for line in output.strip().splitlines()]


def test_api_resources(kubectl_path: str, kubeconfig: pathlib.Path) -> None:
    rows = table(run(kubectl_path, kubeconfig, "api-resources", "--no-headers"))
    by_name = {r[0]: r for r in rows}
    assert by_name["pods"][1:] == ["po", "v1", "true", "Pod"]
    assert by_name["deployments"][1:] == ["deploy", "apps/v1", "true", "Deployment"]
    assert by_name["widgets"][1:] == ["example.com/v1", "true", "Widget"]
    assert by_name["meshsyncs"][1:] == ["meshery.io/v1alpha1", "true", "MeshSync"]
    assert by_name["nodes"][-2:] == ["false", "Node"]


def test_get_pods_all_namespaces(kubectl_path: str, kubeconfig: pathlib.Path) -> None:
    rows = table(run(kubectl_path, kubeconfig, "get", "pods", "-A"))
    assert rows[0] == ["NAMESPACE", "NAME", "AGE"]
    assert [r[:2] for r in rows[1:]] == [
        ["shop", "web-7d9c6b8f5-m4n7q"],
        ["shop", "web-7d9c6b8f5-x2k8p"],
        ["shop", "web-7d9c6b8f5-z9c3w"],
    ]
    names = run(kubectl_path, kubeconfig, "get", "svc", "-n", "shop", "-o", "name")
    assert names.split() == ["service/web"]
    selected = run(kubectl_path, kubeconfig, "get", "po", "-A", "-l", "app=web", "-o", "name")
    assert len(selected.split()) == 3
    widget = run(kubectl_path, kubeconfig, "get", "widget", "blue", "-n", "shop", "-o",
                 "jsonpath={.spec.size}")  # fmt: skip
    assert widget == "small"


def test_get_watch(kubectl_path: str, kubeconfig: pathlib.Path, threaded: FakeApiServer) -> None:
    proc = subprocess.Popen(
        [kubectl_path, "--kubeconfig", str(kubeconfig), "get", "cm", "-n", "shop", "-w",
         "--output-watch-events"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        assert lines.get(timeout=20).split() == ["EVENT", "NAME", "AGE"]
        assert lines.get(timeout=20).split()[:2] == ["ADDED", "web-config"]
        cm = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "watched", "namespace": "shop"}}  # fmt: skip
        threaded.create(cm)
        assert lines.get(timeout=20).split()[:2] == ["ADDED", "watched"]
        threaded.delete(cm)
        assert lines.get(timeout=20).split()[:2] == ["DELETED", "watched"]
    finally:
        proc.kill()
        proc.wait(timeout=10)


MANIFEST = """\
apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: demo
data:
  level: "{level}"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: demo
spec:
  replicas: 1
  selector: {{matchLabels: {{app: api}}}}
  template:
    metadata: {{labels: {{app: api}}}}
    spec:
      containers:
      - name: api
        image: nginx:{tag}
      - name: sidecar
        image: envoy:1
---
apiVersion: example.com/v1
kind: Widget
metadata:
  name: green
  namespace: demo
spec:
  size: {size}
"""


def test_apply_and_delete(
    kubectl_path: str, kubeconfig: pathlib.Path, threaded: FakeApiServer, tmp_path: pathlib.Path
) -> None:
    manifest = tmp_path / "app.yaml"
    manifest.write_text(MANIFEST.format(level="info", tag="1", size="m"))
    out = run(kubectl_path, kubeconfig, "apply", "-f", str(manifest))
    assert out.split("\n")[:4] == [
        "namespace/demo created",
        "configmap/settings created",
        "deployment.apps/api created",
        "widget.example.com/green created",
    ]
    manifest.write_text(MANIFEST.format(level="debug", tag="2", size="l"))
    out = run(kubectl_path, kubeconfig, "apply", "-f", str(manifest))
    assert "deployment.apps/api configured" in out and "namespace/demo unchanged" in out
    ref = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "api", "namespace": "demo"}}  # fmt: skip
    deploy = threaded.get(ref)
    assert deploy is not None
    containers = deploy["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [
        ("api", "nginx:2"),
        ("sidecar", "envoy:1"),
    ]
    assert deploy["metadata"]["generation"] == 2
    managers = [(m["manager"], m["operation"]) for m in deploy["metadata"]["managedFields"]]
    assert managers == [("kubectl-client-side-apply", "Update")]
    assert "f:spec" in deploy["metadata"]["managedFields"][0]["fieldsV1"]
    assert "kubectl.kubernetes.io/last-applied-configuration" in deploy["metadata"]["annotations"]
    widget = threaded.get({"apiVersion": "example.com/v1", "kind": "Widget",
                           "metadata": {"name": "green", "namespace": "demo"}})  # fmt: skip
    assert widget is not None and widget["spec"] == {"size": "l"}

    out = run(kubectl_path, kubeconfig, "delete", "-f", str(manifest))
    assert out.count("deleted") == 4
    assert threaded.get(ref) is None
    assert "demo" not in [n["metadata"]["name"] for n in threaded.objects("namespaces")]


def test_kubectl_errors(kubectl_path: str, kubeconfig: pathlib.Path) -> None:
    proc = subprocess.run(
        [kubectl_path, "--kubeconfig", str(kubeconfig), "get", "cm", "missing", "-n", "shop"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    assert 'Error from server (NotFound): configmaps "missing" not found' in proc.stderr


def test_kubectl_with_token_over_tls(kubectl_path: str, tmp_path: pathlib.Path) -> None:
    # client-go only sends kubeconfig credentials over TLS (kubernetes/kubectl#744).
    with FakeApiServer.in_thread(token="t0ken", tls=True) as srv:
        assert srv.url.startswith("https://")
        good = srv.write_kubeconfig(tmp_path / "good")
        assert "namespace/kube-system" in run(kubectl_path, good, "get", "ns", "-o", "name")
        srv.token = "rotated"
        proc = subprocess.run(
            [kubectl_path, "--kubeconfig", str(good), "get", "ns"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 1
        assert "Unauthorized" in proc.stderr


@pytest.mark.parametrize("resource", ["deploy", "rs", "pvc", "pv", "sc", "secrets", "crd", "no"])
def test_get_every_demo_kind(kubectl_path: str, kubeconfig: pathlib.Path, resource: str) -> None:
    out = run(kubectl_path, kubeconfig, "get", resource, "-A", "-o", "name")
    assert out.strip(), resource


def test_scale_label_patch(
    kubectl_path: str, kubeconfig: pathlib.Path, threaded: FakeApiServer
) -> None:
    assert "scaled" in run(kubectl_path, kubeconfig, "scale", "deploy", "web", "-n", "shop",
                           "--replicas=5")  # fmt: skip
    run(kubectl_path, kubeconfig, "label", "cm", "web-config", "-n", "shop", "team=blue")
    run(kubectl_path, kubeconfig, "patch", "cm", "web-config", "-n", "shop", "--type=json",
        "-p", '[{"op": "add", "path": "/data/extra", "value": "1"}]')  # fmt: skip
    ref = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "namespace": "shop"}}  # fmt: skip
    assert threaded.get(ref)["spec"]["replicas"] == 5
    cm = threaded.get({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "web-config", "namespace": "shop"}})  # fmt: skip
    assert cm["metadata"]["labels"]["team"] == "blue" and cm["data"]["extra"] == "1"


def test_kubectl_uses_aggregated_discovery(
    kubectl_path: str, kubeconfig: pathlib.Path, threaded: FakeApiServer, tmp_path: pathlib.Path
) -> None:
    cache = tmp_path / "cache"  # a fresh discovery cache: kubectl must ask the server
    out = run(kubectl_path, kubeconfig, "--cache-dir", str(cache), "get", "widgets", "-A",
              "-o", "name")  # fmt: skip
    assert out.split() == ["widget.example.com/blue", "widget.example.com/red"]
    discovery = [p for _, p in threaded.request_log if p.startswith(("/api?", "/apis?", "/apis/"))]
    assert not [p for p in discovery if p.startswith("/apis/") and "widgets" not in p]
