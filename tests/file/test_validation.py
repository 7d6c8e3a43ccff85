"""Every document of a snapshot is a valid Kubernetes object: schema (strict) and kubectl decode."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from meshsync_file.yaml_writer import dump_document

from meshsync_core.tools import require_tool

from .conftest import load_all, run_file_sink
from .k8s_objects import RESOURCES, build_cluster, event

#: A current release, and the newest schema kubernetes-validate ships.
VERSIONS = ["1.33.0", kubernetes_validate.latest_version()]


def validate_all(docs: list[dict[str, Any]]) -> None:
    for version in VERSIONS:
        for doc in docs:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                raise AssertionError(
                    f"{doc['kind']} {doc['metadata'].get('name')} invalid for {version}: {exc}"
                ) from None


def kubectl_decode(path: Path) -> list[str]:
    """``kubectl annotate --local -f FILE x- -o name``: decodes every object, offline."""
    result = subprocess.run(
        [require_tool("kubectl"), "annotate", "--local", "-f", str(path), "x-", "-o", "name"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


@pytest.mark.parametrize("for_apply", [False, True], ids=["snapshot", "for-apply"])
async def test_every_builtin_kind_is_valid_and_decodable(tmp_path: Path, for_apply: bool) -> None:
    cluster = build_cluster()
    assert {r.plural for r, _ in cluster} == set(RESOURCES)  # every kind of the default set
    path = tmp_path / "snap.yaml"
    await run_file_sink(
        [event(r, o) for r, o in cluster], path=path, for_apply=for_apply, once=True
    )
    docs = load_all(path)
    expected = len(cluster) - (3 if for_apply else 0)  # RS, Pod, EndpointSlice recreated
    assert len(docs) == expected
    validate_all(docs)
    names = kubectl_decode(path)
    assert len(names) == len(docs)
    assert names[0] == "namespace/shop" and "deployment.apps/web" in names


async def test_unredacted_snapshot_is_valid_too(tmp_path: Path) -> None:
    path = tmp_path / "snap.yaml"
    await run_file_sink([event(r, o) for r, o in build_cluster()], path=path, redact=False)
    validate_all(load_all(path))
    assert "secret/db-credentials" in kubectl_decode(path)


def test_the_checks_reject_the_go_meshsync_shape(tmp_path: Path) -> None:
    """Control: labels as a list (Go MeshSync's file mode) fail both checks."""
    doc = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "labels": [{"key": "app", "value": "web"}]},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, VERSIONS[0], strict=True)
    with pytest.raises(kubernetes_validate.ValidationError):  # strict: unknown fields fail
        kubernetes_validate.validate(
            {**doc, "metadata": {"name": "x"}, "bogus": 1}, VERSIONS[0], strict=True
        )
    path = tmp_path / "go.yaml"
    path.write_text(dump_document(doc))
    result = subprocess.run(
        [require_tool("kubectl"), "annotate", "--local", "-f", str(path), "x-", "-o", "name"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "cannot unmarshal array" in result.stderr
