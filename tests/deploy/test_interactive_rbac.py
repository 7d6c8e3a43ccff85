"""The optional RBAC of Meshery's interactive features: pods/log and pods/exec, in the plain
manifests (pods/log in the reader role, pods/exec in meshsync-exec.yaml) and the Helm chart
(values logs.enabled, exec.enabled), and the MeshSync flags the chart derives from them.

The real API server's answers to these rules (a 403 without them, a shell with them) are in
tests/realkube/test_interactive.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from meshsync_core.cli import build_run_command
from meshsync_core.options import parse_params
from meshsync_core.plugin_manager import PluginRegistry
from tests.deploy.test_helm_chart import container, render

ROOT = Path(__file__).resolve().parents[2]
PLAIN = ROOT / "deploy" / "kubernetes" / "meshsync.yaml"
EXEC = ROOT / "deploy" / "kubernetes" / "meshsync-exec.yaml"
K8S_VERSION = "1.33.0"


def docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def rules_for(documents: list[dict[str, Any]], subresource: str) -> list[dict[str, Any]]:
    return [
        rule
        for doc in documents
        if doc["kind"] == "ClusterRole"
        for rule in doc["rules"]
        if subresource in rule["resources"]
    ]


def parsed_args(documents: list[dict[str, Any]]) -> dict[str, Any]:
    args = container(documents)["args"]
    return parse_params(build_run_command(PluginRegistry.from_entry_points()), args[1:], {})


def test_plain_manifests_read_logs_and_open_no_shell() -> None:
    plain = docs(PLAIN)
    assert rules_for(plain, "pods/log") == [
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}
    ]
    assert rules_for(plain, "pods/exec") == []


def test_the_optional_exec_file_binds_create_pods_exec_to_meshsync() -> None:
    extra = docs(EXEC)
    for doc in extra:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    role = next(d for d in extra if d["kind"] == "ClusterRole")
    binding = next(d for d in extra if d["kind"] == "ClusterRoleBinding")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]}
    ]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    account = next(d for d in docs(PLAIN) if d["kind"] == "ServiceAccount")["metadata"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
    ]


def test_chart_defaults_logs_on_exec_off() -> None:
    rendered = render()
    assert rules_for(rendered, "pods/log") == rules_for(docs(PLAIN), "pods/log")
    assert rules_for(rendered, "pods/exec") == []
    parsed = parsed_args(rendered)
    assert parsed["pod_exec"] == "off"
    assert parsed.get("pod_logs", "auto") == "auto"


@pytest.mark.parametrize(
    ("values", "logs", "exec_", "namespaces"),
    [
        ({"logs": {"enabled": False}}, "off", "off", {}),
        ({"exec": {"enabled": True}}, "auto", "auto", {}),
        (
            {
                "exec": {"enabled": True, "allowWithoutAuth": True, "namespaces": ["shop"]},
                "logs": {"allowWithoutAuth": True, "namespaces": ["shop", "web"]},
            },
            "on",
            "on",
            {"pod_exec_namespaces": ("shop",), "pod_logs_namespaces": ("shop,web",)},
        ),
    ],
    ids=["logs-off", "exec-on", "without-auth-and-namespaces"],
)
def test_chart_values_become_rules_and_real_flags(
    values: dict, logs: str, exec_: str, namespaces: dict
) -> None:
    rendered = render(values)
    for doc in rendered:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    parsed = parsed_args(rendered)
    assert parsed.get("pod_logs", "auto") == logs
    assert parsed.get("pod_exec", "auto") == exec_
    for key, value in namespaces.items():
        assert parsed[key] == value
    log_rules = rules_for(rendered, "pods/log")
    assert bool(log_rules) == (logs != "off")
    exec_rules = rules_for(rendered, "pods/exec")
    if exec_ == "off":
        assert exec_rules == []
    else:
        chart_role = next(
            d
            for d in rendered
            if d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith("-exec")
        )
        plain_role = next(d for d in docs(EXEC) if d["kind"] == "ClusterRole")
        assert chart_role["rules"] == plain_role["rules"]
        binding = next(
            d
            for d in rendered
            if d["kind"] == "ClusterRoleBinding"
            and d["roleRef"]["name"] == chart_role["metadata"]["name"]
        )
        account = next(d for d in rendered if d["kind"] == "ServiceAccount")["metadata"]
        assert binding["subjects"][0]["name"] == account["name"]
        # the reader role stays read-only
        reader = next(d for d in rendered if d["kind"] == "ClusterRole" and d is not chart_role)
        assert {v for rule in reader["rules"] for v in rule["verbs"]} == {"get", "list", "watch"}
