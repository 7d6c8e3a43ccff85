"""Hook implementations of the Kubernetes plugin (entry point ``k8s``)."""

from __future__ import annotations

import click

from meshsync_core import Duration, Source, Transform, hookimpl
from meshsync_k8s.leadership import leadership_options
from meshsync_k8s.redaction import SecretRedaction, redaction_options
from meshsync_k8s.source import KubernetesSource
from meshsync_k8s.watcher import Tuning


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


def tuning_options() -> list[click.Option]:
    """List/watch timings; the defaults suit real clusters (client-go's reflector values)."""
    defaults = Tuning()
    return [
        click.Option(
            ["--list-page-size", "list_page_size"],
            type=click.IntRange(min=1),
            default=defaults.page_size,
            show_default=True,
            envvar="MESHSYNC_LIST_PAGE_SIZE",
            help="[k8s] Objects per page of a list request.",
        ),
        click.Option(
            ["--watch-timeout", "watch_timeout"],
            type=Duration(),
            default=f"{defaults.watch_timeout:g}s",
            show_default=True,
            envvar="MESHSYNC_WATCH_TIMEOUT",
            help="[k8s] Server-side timeout of a watch request; each watch picks a random "
            "value between this and twice this, then resumes where it stopped.",
        ),
        click.Option(
            ["--watch-inactivity-timeout", "watch_inactivity_timeout"],
            type=Duration(),
            default=f"{defaults.inactivity_timeout:g}s",
            show_default=True,
            envvar="MESHSYNC_WATCH_INACTIVITY_TIMEOUT",
            help="[k8s] A watch stream silent this long (no event, no bookmark) is taken as dead "
            "and reopened. Keep it above a minute: API servers send bookmarks about once a "
            "minute.",
        ),
        click.Option(
            ["--retry-max-delay", "retry_max_delay"],
            type=Duration(),
            default=f"{defaults.backoff_max:g}s",
            show_default=True,
            envvar="MESHSYNC_RETRY_MAX_DELAY",
            help="[k8s] Longest wait between retries after errors (exponential backoff with "
            "jitter up to this).",
        ),
        click.Option(
            ["--reconcile-interval", "reconcile_interval"],
            type=Duration(),
            default="0s",
            show_default=True,
            envvar="MESHSYNC_RECONCILE_INTERVAL",
            help="[k8s] Re-list each watched resource about this often, one at a time spread "
            "over the interval, and emit only what differs from what was sent: catches watch "
            "events missed for any reason (0: off).",
        ),
        click.Option(
            ["--streaming-list/--no-streaming-list", "streaming_list"],
            default=defaults.streaming_list,
            show_default=True,
            envvar="MESHSYNC_STREAMING_LIST",
            help="[k8s] List through a watch that sends the current state first (kube's "
            "streaming list, WatchList) where the API server offers it; paginated lists "
            "otherwise.",
        ),
    ]


@hookimpl
def meshsync_add_options() -> list[click.Option]:
    return [*source_options(), *leadership_options(), *redaction_options()]


@hookimpl
def meshsync_sources() -> list[type[Source]]:
    return [KubernetesSource]
