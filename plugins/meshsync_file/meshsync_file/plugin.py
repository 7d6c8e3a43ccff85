"""Hook implementations of the file plugin (entry point ``file``)."""

from __future__ import annotations

import click

from meshsync_core import Duration, Sink, hookimpl
from meshsync_file.progress import MODES
from meshsync_file.sink import FileSink


@hookimpl
def meshsync_sinks() -> list[type[Sink]]:
    return [FileSink]


@hookimpl
def meshsync_add_options() -> list[click.Option]:
    return [
        click.Option(
            ["--output-file", "--outputFile", "output_file"],
            help="[file] Snapshot path (default: meshery-cluster-snapshot-YYYYMMDD-NN.yaml in "
            "the working directory, NN the first free 00..1023). The event log goes next to it "
            "as NAME-extended.yaml.",
        ),
        click.Option(
            ["--for-apply"],
            is_flag=True,
            default=False,
            help="[file] Leave out what the API server fills in (uid, resourceVersion, status, "
            "ownerReferences, finalizers, allocated IPs...), objects recreated by their controller "
            "and those every control plane makes itself (kube-system, kube-root-ca.crt, bootstrap "
            "RBAC...), so the snapshot can be applied to another cluster.",
        ),
        click.Option(
            ["--snapshot-interval", "snapshot_interval"],
            type=Duration(),
            help="[file] While watching, rewrite the snapshot at most this often (e.g. 5m) "
            "when objects changed (default: after the initial sync and at the end only).",
        ),
        click.Option(
            ["--extended-log/--no-extended-log", "extended_log"],
            default=True,
            show_default=True,
            help="[file] Also write NAME-extended.yaml, one YAML document per event.",
        ),
        click.Option(
            ["--file-progress", "file_progress"],
            type=click.Choice(MODES),
            default="auto",
            show_default=True,
            help="[file] Initial-sync progress: a live line on a terminal (tty), log lines "
            "(log), none (off); auto picks tty when stderr is a terminal.",
        ),
    ]
