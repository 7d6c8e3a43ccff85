"""Objects the real-cluster tests create, built in one place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: Accept any content: the tests are about versions and names, not validation.
SCHEMA = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}


def crd(
    group: str,
    plural: str,
    kind: str,
    versions: Sequence[tuple[str, bool, bool]],
    short_names: Sequence[str] = (),
) -> dict[str, Any]:
    """A namespaced CRD; ``versions`` as (name, served, storage), in the order it lists them."""
    names: dict[str, Any] = {"plural": plural, "singular": kind.lower(), "kind": kind}
    if short_names:
        names["shortNames"] = list(short_names)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": names,
            "versions": [
                {"name": name, "served": served, "storage": storage, "schema": SCHEMA}
                for name, served, storage in versions
            ],
        },
    }
