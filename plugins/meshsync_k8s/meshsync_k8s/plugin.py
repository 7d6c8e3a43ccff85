"""Hook implementations of the Kubernetes plugin (entry point ``k8s``)."""

from __future__ import annotations

import click

from meshsync_core import Source, Transform, hookimpl
from meshsync_k8s.redaction import SecretRedaction, redaction_options


@hookimpl
def meshsync_transforms() -> list[type[Transform]]:
    return [SecretRedaction]


@hookimpl
def meshsync_add_options() -> list[click.Option]:
    return [*redaction_options()]


@hookimpl
def meshsync_sources() -> list[type[Source]]:
    return []
