"""Hook implementations of the Kubernetes plugin (entry point ``k8s``)."""

from __future__ import annotations

import click

from meshsync_core import Source, Transform, hookimpl
from meshsync_k8s.leadership import leadership_options
from meshsync_k8s.redaction import SecretRedaction, redaction_options
from meshsync_k8s.source import KubernetesSource, tuning_options


@hookimpl
def meshsync_transforms() -> list[type[Transform]]:
    return [SecretRedaction]


def source_options() -> list[click.Option]:
    """Options of the ``k8s`` source (see docs/kubernetes.md)."""
    return [
        click.Option(
            ["--kubeconfig"],
            help="[k8s] Kubeconfig file(s) to use. Without it: the in-cluster service account, "
            "then $KUBECONFIG, then ~/.kube/config (Go MeshSync's order).",
        ),
        click.Option(["--context"], help="[k8s] Kubeconfig context (default: current-context)."),
        click.Option(
            ["--resources", "--outputResources", "--output-resources", "resources"],
            multiple=True,
            help="[k8s] Resources to watch instead of the default set (Go MeshSync's 21 "
            "resources plus those CRDs define), or to leave out of it with a leading - or ! "
            "(--resources=-secrets). Name them like kubectl: pods or pod, deployments.v1.apps, "
            "pods.v1. for the core group. Repeatable or comma-separated.",
        ),
        click.Option(
            ["--namespaces", "--outputNamespaces", "--output-namespaces", "namespaces"],
            multiple=True,
            help="[k8s] Only objects in these namespaces (comma-separated or repeated); "
            "cluster-scoped objects still flow unless --no-cluster-scoped.",
        ),
        click.Option(
            ["--label-selector", "-l", "label_selector"],
            help="[k8s] Label selector applied server-side to every watched resource.",
        ),
        click.Option(
            ["--field-selector", "field_selector"],
            help="[k8s] Field selector applied server-side to every watched resource.",
        ),
        click.Option(
            ["--cluster-scoped/--no-cluster-scoped", "cluster_scoped"],
            default=True,
            show_default=True,
            help="[k8s] Watch cluster-scoped resources (nodes, namespaces, ...). "
            "--no-cluster-scoped with --namespaces is Go MeshSync's --outputNamespaces behaviour.",
        ),
        click.Option(
            ["--watch-crds/--no-watch-crds", "watch_crds"],
            default=True,
            show_default=True,
            help="[k8s] Watch CustomResourceDefinitions and the custom resources they define, "
            "starting and stopping as CRDs come and go.",
        ),
        click.Option(
            ["--meshsync-cr/--no-meshsync-cr", "meshsync_cr"],
            default=True,
            show_default=True,
            help="[k8s] Honour the MeshSync custom resource meshery/meshery-meshsync "
            "(watch-list whitelist/blacklist), re-read whenever it changes.",
        ),
        *tuning_options(),
    ]


@hookimpl
def meshsync_add_options() -> list[click.Option]:
    return [*source_options(), *leadership_options(), *redaction_options()]


@hookimpl
def meshsync_sources() -> list[type[Source]]:
    return [KubernetesSource]
