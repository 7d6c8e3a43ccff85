"""The RBAC objects MeshSync ships, read from deploy/ (plain manifests and the rendered Helm chart),
installed under names of a test's own, and a few requests made as the identities they bind.

Nothing here decides what the role allows: the real apiserver's RBAC authorizer does. The one
piece of rule matching (:func:`allows`) only predicts which resources a role leaves out, so a
test can tell an expected 403 from a defect.
"""

from __future__ import annotations

import copy
import itertools
import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.test_helm_chart import render
from tests.realkube.cluster import ControlPlane

ROOT = Path(__file__).resolve().parents[2]
PLAIN = ROOT / "deploy" / "kubernetes" / "meshsync.yaml"
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding")
WILDCARD_RULE = {"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]}
_names = itertools.count()


@dataclass
class Shipped:
    """The ServiceAccount, ClusterRole and ClusterRoleBinding of one way of installing MeshSync."""

    origin: str
    service_account: dict[str, Any]
    role: dict[str, Any]
    binding: dict[str, Any]

    @property
    def rules(self) -> list[dict[str, Any]]:
        return list(self.role["rules"])


def _pick(docs: list[dict[str, Any]], origin: str) -> Shipped:
    found: dict[str, list[dict[str, Any]]] = {kind: [] for kind in RBAC_KINDS}
    for doc in docs:
        if doc.get("kind") in found:
            found[doc["kind"]].append(doc)
    for kind, objects in found.items():
        assert len(objects) == 1, f"{origin}: expected one {kind}, found {len(objects)}"
    shipped = Shipped(
        origin, found["ServiceAccount"][0], found["ClusterRole"][0], found["ClusterRoleBinding"][0]
    )
    # the shipped binding must tie the shipped account to the shipped role, or nothing works
    binding, account = shipped.binding, shipped.service_account
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": shipped.role["metadata"]["name"],
    }, f"{origin}: the binding refers to another role"
    assert {
        "kind": "ServiceAccount",
        "name": account["metadata"]["name"],
        "namespace": account["metadata"]["namespace"],
    } in binding["subjects"], f"{origin}: the binding does not name the shipped ServiceAccount"
    return shipped


def plain_manifests() -> Shipped:
    """deploy/kubernetes/meshsync.yaml as shipped."""
    docs = [doc for doc in yaml.safe_load_all(PLAIN.read_text()) if doc]
    return _pick(docs, "deploy/kubernetes/meshsync.yaml")


def helm_chart(values: dict[str, Any] | None = None) -> Shipped:
    """deploy/helm/meshsync rendered with the Helm SDK (defaults unless ``values`` are given)."""
    shown = json.dumps(values, sort_keys=True) if values else "defaults"
    return _pick(render(values), f"deploy/helm/meshsync ({shown})")


def without_rules(
    shipped: Shipped, *, wildcard: bool = False, resources: tuple[str, ...] = ()
) -> Shipped:
    """A copy of ``shipped`` whose role lacks the custom-resources wildcard rule (``wildcard``:
    the documented way to limit MeshSync to the named resources) and/or some ``resources``."""
    changed = copy.deepcopy(shipped)
    rules = []
    for rule in changed.role["rules"]:
        if wildcard and rule == WILDCARD_RULE:
            continue
        kept = [r for r in rule["resources"] if r not in resources]
        if kept:
            rules.append({**rule, "resources": kept})
    assert rules != shipped.role["rules"], "nothing was removed"
    changed.role["rules"] = rules
    changed.origin += " minus " + ", ".join(
        (["the wildcard rule"] if wildcard else []) + list(resources)
    )
    return changed


def allows(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    """Whether some rule grants ``verb`` on ``resource`` in ``group`` (RBAC's resource rules)."""
    return any(
        (group in rule.get("apiGroups", ()) or "*" in rule.get("apiGroups", ()))
        and (resource in rule.get("resources", ()) or "*" in rule.get("resources", ()))
        and (verb in rule.get("verbs", ()) or "*" in rule.get("verbs", ()))
        for rule in rules
    )


def can_watch(rules: list[dict[str, Any]], group: str, resource: str) -> bool:
    return all(allows(rules, group, resource, verb) for verb in ("list", "watch"))


# -- installing ---------------------------------------------------------------------------------


@dataclass
class Installed:
    """A shipped role installed under a test's own names, bound to its account (or a user)."""

    plane: ControlPlane
    role_name: str
    binding_name: str
    rules: list[dict[str, Any]]
    namespace: str
    service_account: str

    def token(self, seconds: int = 3600) -> str:
        return self.plane.token_for(self.namespace, self.service_account, seconds)

    def remove(self) -> None:
        rbac = "/apis/rbac.authorization.k8s.io/v1"
        self.plane.api("DELETE", f"{rbac}/clusterrolebindings/{self.binding_name}", ok=(200, 404))
        self.plane.api("DELETE", f"{rbac}/clusterroles/{self.role_name}", ok=(200, 404))


def install(
    plane: ControlPlane,
    shipped: Shipped,
    namespace: str,
    *,
    user: str | None = None,
) -> Installed:
    """Apply ``shipped`` renamed: the ServiceAccount into ``namespace``, the ClusterRole and
    ClusterRoleBinding under unique names, the binding's subjects pointing at the moved account
    (and also at ``user``, a client-certificate identity, when given)."""
    suffix = f"{namespace}-{next(_names)}"
    account = copy.deepcopy(shipped.service_account)
    role = copy.deepcopy(shipped.role)
    binding = copy.deepcopy(shipped.binding)
    old_account = (account["metadata"]["name"], account["metadata"]["namespace"])
    account["metadata"]["namespace"] = namespace
    role["metadata"]["name"] = f"{role['metadata']['name']}-{suffix}"
    binding["metadata"]["name"] = f"{binding['metadata']['name']}-{suffix}"
    binding["roleRef"]["name"] = role["metadata"]["name"]
    for subject in binding["subjects"]:
        if (subject.get("name"), subject.get("namespace")) == old_account:
            subject["namespace"] = namespace
    if user is not None:
        binding["subjects"].append(
            {"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}
        )
    plane.apply(account)
    plane.apply(role)
    plane.apply(binding)
    return Installed(
        plane,
        role["metadata"]["name"],
        binding["metadata"]["name"],
        role["rules"],
        namespace,
        account["metadata"]["name"],
    )


# -- requests as an identity (not the admin) -----------------------------------------------------


def status_as(
    plane: ControlPlane,
    path: str,
    *,
    token: str | None = None,
    cert: tuple[Path, Path] | None = None,
) -> int:
    """The HTTP status of ``GET path`` made with a bearer token or a client certificate."""
    context = ssl.create_default_context(cafile=str(plane.ca_file))
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    request = urllib.request.Request(plane.url + path)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def wait_authorized(
    plane: ControlPlane,
    path: str,
    *,
    token: str | None = None,
    cert: tuple[Path, Path] | None = None,
    timeout: float = 30.0,
) -> None:
    """Until ``GET path`` as the identity answers 200: a new binding reaches the apiserver's
    authorizer (and a new account its token authenticator) through informers, a moment later.
    Starting the source before that would count 403s the role is not to blame for."""
    deadline = time.monotonic() + timeout
    last = 0
    while time.monotonic() < deadline:
        last = status_as(plane, path, token=token, cert=cert)
        if last == 200:
            return
        time.sleep(0.1)  # polling the apiserver's caches, which have no event to await
    raise AssertionError(f"GET {path} as the test identity still answers {last} after {timeout} s")


# -- the source's view of its errors -------------------------------------------------------------


def error_counts(
    metrics: Any, name: str = "k8s_watch_errors_total"
) -> Iterator[tuple[str, str, float]]:
    """(resource key, code, count) of every error counter in a ComponentMetrics."""
    for (metric, labels), value in metrics.counters.items():
        if metric == name and value:
            by = dict(labels)
            yield by.get("resource", ""), by.get("code", ""), value


def service_account_user(namespace: str, name: str) -> tuple[str, list[str]]:
    """The user name and groups the apiserver gives a ServiceAccount's token."""
    groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
    return f"system:serviceaccount:{namespace}:{name}", [*groups, "system:authenticated"]


def server_allows(
    plane: ControlPlane, user: str, groups: list[str], group: str, resource: str, verb: str
) -> bool:
    """The real authorizer's answer (a SubjectAccessReview, asked as the admin), in all
    namespaces."""
    review = plane.api(
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "groups": groups,
                "resourceAttributes": {"group": group, "resource": resource, "verb": verb},
            },
        },
    )
    return bool(review["status"].get("allowed"))
