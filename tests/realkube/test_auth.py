"""Authentication and RBAC against the real kube-apiserver (``--authorization-mode=RBAC``).

MeshSync runs as a ServiceAccount bound to exactly the ClusterRole that deploy/kubernetes and the
Helm chart ship (renamed, so that each test has its own): the real RBAC authorizer answering with
no 403 for any resource of the default set, the CRDs and the MeshSync custom resource is the proof
that the shipped role is sufficient. A role without ``secrets`` shows that the 403 stays with that
one resource. Then the ways to authenticate: a client certificate, a bearer token in a kubeconfig,
and the in-cluster service account (token + CA files and ``KUBERNETES_SERVICE_HOST``), including
a token revoked and replaced in the file while the source runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from meshsync_k8s.kubeconfig import SERVICE_ACCOUNT_DIR_ENV, load_connection
from meshsync_k8s.resources import DEFAULT_RESOURCES
from meshsync_k8s.source import KubernetesSource
from meshsync_k8s.watcher import ResourceWatcher, Tuning

from meshsync_core import ConfigError, Engine, Options
from meshsync_core.testing import CaptureSink
from tests.k8s.conftest import FAST, Running, fold, start_source, wait_until
from tests.realkube.cluster import ControlPlane, Credentials
from tests.realkube.fixtures import eventually
from tests.realkube.objects import crd
from tests.realkube.rbac import (
    Installed,
    Shipped,
    can_watch,
    error_counts,
    helm_chart,
    install,
    plain_manifests,
    server_allows,
    service_account_user,
    status_as,
    wait_authorized,
    without_rules,
)

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
#: A custom resource of no role's naming: only the wildcard rule lets MeshSync read it.
GADGETS_GROUP = "authtest.example.com"
#: Resources compared object for object with what the admin lists.
COMPARED = ("namespaces", "clusterroles", "secrets", "configmaps", "apiservices", "meshsyncs")
SYNC_TIMEOUT = 60.0
#: Watches the server ends after a second (the inactivity timeout must be longer than that).
CYCLING = replace(FAST, watch_timeout=1.0, inactivity_timeout=5.0)


def _absent(plane: ControlPlane, path: str) -> bool:
    return plane.request("GET", path)[0] == 404


@pytest.fixture(scope="module")
def custom_resources(real_cluster: ControlPlane) -> Iterator[None]:
    """The MeshSync CRD with its custom resource (``meshery/meshery-meshsync``, no restriction),
    and a CRD of gadgets with one object; what this fixture created is removed afterwards."""
    plane = real_cluster
    created: list[str] = []
    for name in ("meshery", "auth-gadgets"):
        path = f"/api/v1/namespaces/{name}"
        if _absent(plane, path):
            plane.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
            created.append(path)
    for definition in (
        crd("meshery.io", "meshsyncs", "MeshSync", [("v1alpha1", True, True)]),
        crd(GADGETS_GROUP, "gadgets", "Gadget", [("v1", True, True)]),
    ):
        path = f"{CRDS}/{definition['metadata']['name']}"
        if _absent(plane, path):
            plane.apply(definition)
            created.append(path)
    for obj in (
        {
            "apiVersion": "meshery.io/v1alpha1",
            "kind": "MeshSync",
            "metadata": {"name": "meshery-meshsync", "namespace": "meshery"},
            "spec": {},
        },
        {
            "apiVersion": f"{GADGETS_GROUP}/v1",
            "kind": "Gadget",
            "metadata": {"name": "g1", "namespace": "auth-gadgets"},
            "spec": {"size": 1},
        },
    ):
        collection = plane.object_path(obj, named=False)
        # a new CRD is served a moment after it is created
        eventually(lambda c=collection: plane.request("GET", c)[0] == 200, 30, collection)
        plane.apply(obj)
    yield
    for path in reversed(created):
        plane.api("DELETE", path, ok=(200, 202, 404))


# -- helpers -------------------------------------------------------------------------------------


def start_in_cluster(tuning: Tuning = FAST, **options: Any) -> Running:
    """A source with no kubeconfig at all: it finds the in-cluster account (the environment)."""
    source = KubernetesSource(Options(options), tuning=tuning)
    sink = CaptureSink()
    engine = Engine([source], [sink])
    return Running(source, sink, engine, asyncio.create_task(engine.run()))


async def until_synced(running: Running, timeout: float = SYNC_TIMEOUT) -> None:
    """The initial sync, or the reason the run ended without one."""
    waiter = asyncio.ensure_future(running.sink.synced.wait())
    done, _ = await asyncio.wait(
        {waiter, running.task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
    )
    if waiter in done:
        return
    waiter.cancel()
    if running.task.done():
        raise AssertionError(f"the run ended before the initial sync: {running.task.result()}")
    raise AssertionError(f"no initial sync within {timeout:.0f} s")


def all_watchers(running: Running) -> list[ResourceWatcher]:
    source = running.source
    watchers = [w for ws in source.watchers.values() for w in ws]
    return watchers + [w for w in (source._crd_watcher, source._cr_watcher) if w is not None]


def refusals(running: Running) -> dict[str, dict[str, float]]:
    """resource key -> {401/403: count} over every watcher, the internal CRD and MeshSync custom
    resource watchers included (they count into metrics of their own, not the source's)."""
    out: dict[str, dict[str, float]] = {}
    metrics = {id(running.source.metrics): running.source.metrics}
    metrics.update((id(w.metrics), w.metrics) for w in all_watchers(running))
    for one in metrics.values():
        for resource, code, count in error_counts(one):
            if code in ("401", "403"):
                out.setdefault(resource, {})[code] = out.get(resource, {}).get(code, 0) + count
    return out


def expected_forbidden(running: Running, rules: list[dict[str, Any]]) -> set[str]:
    """The watched resources the role does not grant list + watch on."""
    return {
        w.resource.key
        for w in all_watchers(running)
        if not can_watch(rules, w.api.group, w.resource.plural)
    }


async def converged(
    plane: ControlPlane, running: Running, plurals: Iterable[str], timeout: float = 30.0
) -> dict[str, set[str]]:
    """Wait until, for the watched resources among ``plurals``, what the source emitted equals
    what the admin lists (uid -> resourceVersion); returns plural -> names as emitted."""
    wanted = set(plurals)
    # the watchers feeding the sinks (not the internal CRD and custom resource ones)
    watchers = [
        w for ws in running.source.watchers.values() for w in ws if w.resource.plural in wanted
    ]
    last: dict[str, Any] = {}

    def admin_view() -> dict[str, str]:
        out: dict[str, str] = {}
        for watcher in watchers:
            for item in plane.api("GET", watcher.path)["items"]:
                out[item["metadata"]["uid"]] = item["metadata"]["resourceVersion"]
        return out

    def ours() -> dict[str, dict[str, Any]]:
        return fold(e for e in running.sink.events if e.resource.plural in wanted)

    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        server = await asyncio.to_thread(admin_view)
        view = ours()
        emitted = {uid: obj["metadata"]["resourceVersion"] for uid, obj in view.items()}
        if server == emitted:
            break
        last = {
            "missing": sorted(set(server) - set(emitted))[:5],
            "extra": sorted(set(emitted) - set(server))[:5],
            "stale": [u for u in server if u in emitted and emitted[u] != server[u]][:5],
        }
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the emitted {sorted(wanted)} did not converge: {last}")
        await asyncio.sleep(0.2)
    names: dict[str, set[str]] = {}
    for event in running.sink.events:
        if event.uid in view:
            names.setdefault(event.resource.plural, set()).add(event.name)
    return names


def emitted_names(running: Running, plural: str) -> set[str]:
    return {
        obj["metadata"]["name"]
        for obj in fold(running.sink.events).values()
        if obj.get("kind", "").lower() + "s" == plural
    }


def configmap(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"k": name},
    }


def secret(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": {"password": "hunter2"},
    }


@pytest.fixture
def installed(real_cluster: ControlPlane) -> Iterator[list[Installed]]:
    """Roles and bindings a test installs (cluster-scoped: the namespace does not take them)."""
    roles: list[Installed] = []
    yield roles
    for role in roles:
        role.remove()


# -- 1. the shipped role is sufficient ------------------------------------------------------------


SHIPPED = {
    "plain": plain_manifests,
    "plain-named-rules-only": lambda: without_rules(plain_manifests(), wildcard=True),
    "helm": helm_chart,
    "helm-customResources-false": lambda: helm_chart({"rbac": {"customResources": False}}),
}


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming-lists", "paged-lists"])
@pytest.mark.parametrize("variant", list(SHIPPED))
async def test_the_shipped_role_is_sufficient(
    variant: str,
    streaming: bool,
    real_cluster: ControlPlane,
    real_namespace: str,
    custom_resources: None,
    installed: list[Installed],
    tmp_path: Path,
) -> None:
    plane, ns = real_cluster, real_namespace
    shipped: Shipped = SHIPPED[variant]()
    role = install(plane, shipped, ns)
    installed.append(role)
    plane.apply(secret(ns, "db-password"))
    plane.apply(configmap(ns, "settings"))
    token = role.token()
    await asyncio.to_thread(wait_authorized, plane, "/api/v1/namespaces/kube-system", token=token)
    kubeconfig = plane.kubeconfig(tmp_path / "kubeconfig", Credentials("meshsync", token=token))
    # the default set, with the MeshSync custom resource and CRDs followed (the defaults), lists
    # streamed (the default) or paged (--no-streaming-list); watches the server ends every
    # second, so that each watcher is seen to open one for real
    running = start_source(kubeconfig, replace(CYCLING, streaming_list=streaming))
    try:
        await until_synced(running)
        source = running.source
        watched = {w.resource.key for w in all_watchers(running)}
        defaults = {f"{plural}.{version}.{group}" for plural, version, group in DEFAULT_RESOURCES}
        assert defaults <= watched, f"not watched: {defaults - watched}"
        internal = {
            "customresourcedefinitions.v1.apiextensions.k8s.io",
            "meshsyncs.v1alpha1.meshery.io",
        }
        assert {*internal, f"gadgets.v1.{GADGETS_GROUP}"} <= watched
        # what the role leaves out on purpose: with the wildcard rule nothing; without it the
        # custom resources it does not name (as the manifest's comment says), never a default
        forbidden = expected_forbidden(running, role.rules)
        if variant in ("plain", "helm"):
            assert forbidden == set()
        else:
            assert f"gadgets.v1.{GADGETS_GROUP}" in forbidden
            assert forbidden.isdisjoint(defaults | internal), forbidden
        # the real authorizer agrees with that reading of the rules, verb by verb
        user, groups = service_account_user(ns, role.service_account)
        for watcher in all_watchers(running):
            for verb in ("get", "list", "watch"):
                expected = watcher.resource.key not in forbidden
                answer = await asyncio.to_thread(
                    server_allows,
                    plane,
                    user,
                    groups,
                    watcher.api.group,
                    watcher.resource.plural,
                    verb,
                )
                assert answer is expected, (watcher.resource.key, verb, answer)
        # every watcher the role allows listed, and one watch of each ran its course: a
        # refused watch would have been counted before the next one started
        allowed = [w for w in all_watchers(running) if w.resource.key not in forbidden]
        for watcher in allowed:
            assert watcher.resource_version, f"{watcher} never listed"
        await wait_until(
            lambda: all(w.watches >= 2 for w in allowed), 30, "a second watch of every resource"
        )
        # the MeshSync custom resource was read at start (get) and is watched (list, watch)
        assert source.cr_config is not None and source.cr_config.empty
        assert (
            source.cluster_id
            == plane.api("GET", "/api/v1/namespaces/kube-system")["metadata"]["uid"]
        )
        names = await converged(plane, running, COMPARED)
        assert "db-password" in names["secrets"] and "settings" in names["configmaps"]
        assert ns in names["namespaces"] and "meshery-meshsync" in names["meshsyncs"]
        assert role.role_name in names["clusterroles"]
        assert emitted_names(running, "gadgets") == (set() if forbidden else {"g1"})
        # what the real RBAC authorizer refused, over the whole run: exactly that, and only 403s
        await wait_until(
            lambda: set(refusals(running)) >= forbidden, 30, f"the expected 403s on {forbidden}"
        )
        refused = refusals(running)
        assert set(refused) == forbidden, f"{shipped.origin}: refused {refused}"
        assert all(set(codes) == {"403"} for codes in refused.values()), refused
        for key in defaults | internal:
            for code in ("401", "403"):
                assert (
                    source.metrics.value("k8s_watch_errors_total", resource=key, code=code) == 0
                ), (key, code)
    finally:
        await running.stop()


def test_the_shipped_roles_name_every_default_resource() -> None:
    """Without the wildcard rule the named rules alone cover the default set, the CRDs and the
    MeshSync custom resource (what the real-server test above proves, stated as a checklist)."""
    needed = [(group, plural) for plural, _, group in DEFAULT_RESOURCES]
    needed += [("apiextensions.k8s.io", "customresourcedefinitions"), ("meshery.io", "meshsyncs")]
    for shipped in (
        without_rules(plain_manifests(), wildcard=True),
        helm_chart({"rbac": {"customResources": False}}),
    ):
        missing = [f"{p}.{g}" for g, p in needed if not can_watch(shipped.rules, g, p)]
        assert not missing, f"{shipped.origin} does not grant list+watch on {missing}"
        verbs = {verb for rule in shipped.rules for verb in rule["verbs"]}
        assert verbs == {"get", "list", "watch"}, f"{shipped.origin}: not read-only: {verbs}"


# -- 2. a role without secrets: the 403 stays with secrets ----------------------------------------


@pytest.mark.parametrize("streaming", [False, True], ids=["paged-lists", "streaming-lists"])
async def test_a_role_without_secrets_forbids_only_secrets(
    streaming: bool,
    real_cluster: ControlPlane,
    real_namespace: str,
    custom_resources: None,
    installed: list[Installed],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    plane, ns = real_cluster, real_namespace
    caplog.set_level(logging.DEBUG, logger="meshsync.k8s")
    shipped = without_rules(plain_manifests(), wildcard=True, resources=("secrets",))
    role = install(plane, shipped, ns)
    installed.append(role)
    plane.apply(secret(ns, "db-password"))
    plane.apply(configmap(ns, "settings"))
    token = role.token()
    await asyncio.to_thread(
        wait_authorized, plane, f"/api/v1/namespaces/{ns}/configmaps", token=token
    )
    assert status_as(plane, f"/api/v1/namespaces/{ns}/secrets", token=token) == 403
    kubeconfig = plane.kubeconfig(tmp_path / "kubeconfig", Credentials("meshsync", token=token))
    # paged lists (FAST's), or streaming lists first (the default) falling back to pages
    running = start_source(kubeconfig, replace(FAST, streaming_list=streaming))
    try:
        await until_synced(running)  # the initial sync completes without secrets
        key = "secrets.v1."
        defaults = {f"{plural}.{version}.{group}" for plural, version, group in DEFAULT_RESOURCES}
        (secrets,) = running.source.watchers[("", "secrets")]
        metrics = running.source.metrics

        def errors() -> float:
            return metrics.value("k8s_watch_errors_total", resource=key, code="403")

        def refused_rounds() -> list[logging.LogRecord]:
            prefixes = (f"{key}: forbidden", f"{key}: still ")
            return [r for r in caplog.records if r.getMessage().startswith(prefixes)]

        # retried slowly (FAST.slow_retry): each refused round counted once (a streaming list
        # refused before the paged one is not a second count) and warned about only the first time
        await wait_until(lambda: errors() >= 3, 30, "three refused rounds of secrets")
        rounds = refused_rounds()
        assert errors() == len(rounds), [r.getMessage() for r in rounds]
        assert [r.levelno for r in rounds] == [logging.WARNING] + [logging.DEBUG] * (
            len(rounds) - 1
        )
        assert "other resources are unaffected" in rounds[0].getMessage()
        assert not secrets.state and not emitted_names(running, "secrets")
        # secrets, and the custom resources that only the wildcard rule would have granted
        forbidden = expected_forbidden(running, role.rules)
        assert key in forbidden and f"gadgets.v1.{GADGETS_GROUP}" in forbidden
        assert all(k == key or k not in defaults for k in forbidden), forbidden
        assert set(refusals(running)) == forbidden
        names = await converged(plane, running, [p for p in COMPARED if p != "secrets"])
        assert "settings" in names["configmaps"] and "meshery-meshsync" in names["meshsyncs"]
        # everything else keeps flowing while secrets keep failing
        plane.apply(configmap(ns, "after-sync"))
        await wait_until(
            lambda: "after-sync" in emitted_names(running, "configmaps"), 30, "the new ConfigMap"
        )
        assert set(refusals(running)) == forbidden
    finally:
        await running.stop()


# -- 3. certificate, token and in-cluster authentication ------------------------------------------


#: The role for the authentication tests: named rules only, without secrets, so that one run
#: shows both sides of the identity the server saw: configmaps allowed, secrets forbidden.
def auth_role() -> Shipped:
    return without_rules(plain_manifests(), wildcard=True, resources=("secrets",))


def in_cluster_dir(plane: ControlPlane, directory: Path, token: str, namespace: str) -> Path:
    """What the kubelet mounts at /var/run/secrets/kubernetes.io/serviceaccount."""
    directory.mkdir(parents=True, exist_ok=True)
    write_token(directory, token)
    (directory / "ca.crt").write_bytes(plane.ca_file.read_bytes())
    (directory / "namespace").write_text(namespace)
    return directory


def write_token(directory: Path, token: str) -> None:
    """Replace the token file at once, as the kubelet's atomic writer does."""
    fresh = directory / ".token.new"
    fresh.write_text(token)
    os.replace(fresh, directory / "token")


@pytest.mark.parametrize("mode", ["certificate", "token", "in-cluster"])
async def test_authentication_modes(
    mode: str,
    real_cluster: ControlPlane,
    real_namespace: str,
    installed: list[Installed],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plane, ns = real_cluster, real_namespace
    user = f"meshsync-user-{ns}"
    role = install(plane, auth_role(), ns, user=user)
    installed.append(role)
    plane.apply(configmap(ns, "before"))
    plane.apply(secret(ns, "db-password"))
    probe = f"/api/v1/namespaces/{ns}/configmaps"
    options: dict[str, Any] = {"resources": ["configmaps", "secrets"], "namespaces": [ns]}
    if mode == "certificate":
        cert = plane.client_certificate(user)
        assert cert.cert and cert.key
        await asyncio.to_thread(wait_authorized, plane, probe, cert=(cert.cert, cert.key))
        running = start_source(plane.kubeconfig(tmp_path / "kubeconfig", cert), FAST, **options)
    elif mode == "token":
        token = role.token()
        await asyncio.to_thread(wait_authorized, plane, probe, token=token)
        kubeconfig = plane.kubeconfig(tmp_path / "kubeconfig", Credentials("sa", token=token))
        running = start_source(kubeconfig, FAST, **options)
    else:
        token = role.token()
        await asyncio.to_thread(wait_authorized, plane, probe, token=token)
        sa_dir = in_cluster_dir(plane, tmp_path / "serviceaccount", token, ns)
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(plane.apiserver_port))
        monkeypatch.setenv(SERVICE_ACCOUNT_DIR_ENV, str(sa_dir))
        monkeypatch.delenv("KUBECONFIG", raising=False)
        running = start_in_cluster(FAST, **options)
    try:
        await until_synced(running)
        assert running.source.client is not None
        connection = running.source.client.connection
        if mode == "in-cluster":
            assert connection.origin == "in-cluster service account"
            assert connection.server == f"https://127.0.0.1:{plane.apiserver_port}"
            assert connection.namespace == ns
        else:
            assert connection.origin.startswith("kubeconfig ")
        # the server saw the bound identity: not the admin (secrets refused), not anonymous
        # (configmaps listed; anonymous requests are refused everything but discovery)
        metrics = running.source.metrics
        await wait_until(
            lambda: (
                metrics.value("k8s_watch_errors_total", resource="secrets.v1.", code="403") >= 1
            ),
            30,
            "the refused secrets",
        )
        assert set(refusals(running)) == {"secrets.v1."}
        await converged(plane, running, ["configmaps"])
        plane.apply(configmap(ns, "after-sync"))
        await wait_until(
            lambda: "after-sync" in emitted_names(running, "configmaps"), 30, "the new ConfigMap"
        )
        assert emitted_names(running, "configmaps") >= {"before", "after-sync"}
    finally:
        await running.stop()


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming-lists", "paged-lists"])
async def test_in_cluster_token_rotation(
    streaming: bool,
    real_cluster: ControlPlane,
    real_namespace: str,
    installed: list[Installed],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Token A is revoked (its ServiceAccount deleted and created again: bound tokens are checked
    against the account's uid) and token B of the new account is written to the file: the source
    gets 401, re-reads the file and keeps watching."""
    plane, ns = real_cluster, real_namespace
    role = install(plane, auth_role(), ns)
    installed.append(role)
    probe = f"/api/v1/namespaces/{ns}/configmaps"
    token_a = role.token()
    await asyncio.to_thread(wait_authorized, plane, probe, token=token_a)
    sa_dir = in_cluster_dir(plane, tmp_path / "serviceaccount", token_a, ns)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(plane.apiserver_port))
    monkeypatch.setenv(SERVICE_ACCOUNT_DIR_ENV, str(sa_dir))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    plane.apply(configmap(ns, "before"))
    # watches end every second, so that new requests meet the revoked token soon (a
    # watch already open is not cut when its token is revoked: it was authenticated at start)
    tuning = replace(CYCLING, streaming_list=streaming)
    running = start_in_cluster(tuning, resources=["configmaps"], namespaces=[ns])
    try:
        await until_synced(running)
        assert running.source.client is not None
        connection = running.source.client.connection
        assert connection.headers["Authorization"] == f"Bearer {token_a}"
        await converged(plane, running, ["configmaps"])

        # revoke A: the account goes away and comes back with a new uid
        account_path = f"/api/v1/namespaces/{ns}/serviceaccounts/{role.service_account}"
        old_uid = plane.api("GET", account_path)["metadata"]["uid"]
        plane.api("DELETE", account_path)
        await asyncio.to_thread(
            eventually,
            lambda: status_as(plane, probe, token=token_a) == 401,
            30,
            "token A to be refused",
        )
        plane.apply(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": role.service_account, "namespace": ns},
            }
        )
        assert plane.api("GET", account_path)["metadata"]["uid"] != old_uid
        metrics = running.source.metrics

        def unauthorized() -> float:
            return metrics.value("k8s_watch_errors_total", resource="configmaps.v1.", code="401")

        # the source meets the 401: it re-reads the file, finds A still, and is refused again
        await wait_until(lambda: unauthorized() >= 1, 30, "the source's 401 with token A")
        token_b = role.token()
        await asyncio.to_thread(wait_authorized, plane, probe, token=token_b)
        write_token(sa_dir, token_b)
        await wait_until(
            lambda: connection.headers.get("Authorization") == f"Bearer {token_b}",
            30,
            "token B read from the file after a 401",
        )
        plane.apply(configmap(ns, "after-rotation"))
        await wait_until(
            lambda: "after-rotation" in emitted_names(running, "configmaps"),
            30,
            "the change made after the rotation",
        )
        await converged(plane, running, ["configmaps"])
        # nothing but 401s while A was refused (every watcher met them: the CRD one too)
        refused = refusals(running)
        assert "configmaps.v1." in refused, refused
        assert all(set(codes) == {"401"} for codes in refused.values()), refused
        assert status_as(plane, probe, token=token_a) == 401
    finally:
        await running.stop()


def test_service_account_dir_from_the_environment(tmp_path: Path) -> None:
    """MESHSYNC_SERVICE_ACCOUNT_DIR points the in-cluster lookup at another directory; an
    explicit ``service_account_dir`` still wins."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "token").write_text("from-env\n")
    (elsewhere / "namespace").write_text("shop\n")
    env = {
        "KUBERNETES_SERVICE_HOST": "10.0.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
        SERVICE_ACCOUNT_DIR_ENV: str(elsewhere),
    }
    conn = load_connection(None, None, environ=env, home=tmp_path)
    assert conn.origin == "in-cluster service account"
    assert conn.headers["Authorization"] == "Bearer from-env"
    assert conn.namespace == "shop" and conn.token_file == elsewhere / "token"
    explicit = tmp_path / "explicit"
    explicit.mkdir()
    (explicit / "token").write_text("explicit\n")
    conn = load_connection(None, None, environ=env, service_account_dir=explicit, home=tmp_path)
    assert conn.headers["Authorization"] == "Bearer explicit"
    # a directory without a token: not in a cluster (here: no configuration at all)
    env[SERVICE_ACCOUNT_DIR_ENV] = str(tmp_path / "missing")
    with pytest.raises(ConfigError, match="no Kubernetes configuration found"):
        load_connection(None, None, environ=env, home=tmp_path)
