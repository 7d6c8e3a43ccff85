"""The watch-set rules as the pure function they are (``meshsync_k8s.selection``): no server."""

from __future__ import annotations

from meshsync_k8s.meshsync_cr import MeshSyncConfig
from meshsync_k8s.resources import ApiResource, parse_resource_list
from meshsync_k8s.selection import Choices, desired

from meshsync_core import EventType

PODS = ApiResource("", "v1", "pods", "Pod", True)
NODES = ApiResource("", "v1", "nodes", "Node", False)
SECRETS = ApiResource("", "v1", "secrets", "Secret", True)
GADGETS = ApiResource("example.org", "v2", "gadgets", "Gadget", True)
CATALOG = [PODS, NODES, SECRETS, GADGETS]


def _wanted(choices: Choices | None = None, **overrides) -> dict[str, frozenset[EventType]]:  # type: ignore[no-untyped-def]
    arguments = {
        "catalog": CATALOG, "preferred": {}, "defaults": [PODS, NODES, SECRETS],
        "crd_resources": [GADGETS], "custom_resource": None, "crds_pending": False,
        **overrides,
    }  # fmt: skip
    wanted = desired(choices or Choices(), **arguments)
    return {res.plural: events for res, events in wanted.values()}


def _choices(*values: str, cluster_scoped: bool = True) -> Choices:
    includes, excludes = parse_resource_list(values)
    return Choices(tuple(includes), tuple(excludes), cluster_scoped)


def test_the_default_set_and_the_crds() -> None:
    assert set(_wanted()) == {"pods", "nodes", "secrets", "gadgets"}
    assert set(_wanted(crd_resources=None)) == {"pods", "nodes", "secrets"}  # CRDs not watched


def test_exclusions_and_namespaced_only() -> None:
    assert set(_wanted(_choices("-secrets"))) == {"pods", "nodes", "gadgets"}
    assert set(_wanted(_choices(cluster_scoped=False))) == {"pods", "secrets", "gadgets"}


def test_only_builtins_until_the_crd_list_is_in() -> None:
    assert set(_wanted(crds_pending=True)) == {"pods", "nodes", "secrets"}


def test_the_custom_resource_whitelist_and_its_event_filters() -> None:
    (pods,), _ = parse_resource_list(["pods"])
    only_adds = frozenset({EventType.ADDED})
    cr = MeshSyncConfig(whitelist=((pods, only_adds),))
    assert _wanted(custom_resource=cr) == {"pods": only_adds}
    # with --resources as well: their intersection, with the custom resource's filters
    assert _wanted(_choices("pods", "nodes"), custom_resource=cr) == {"pods": only_adds}
