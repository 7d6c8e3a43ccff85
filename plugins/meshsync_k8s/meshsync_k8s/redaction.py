"""The ``secret-redaction`` transform: Secret values never leave the process unless asked.

It runs before fan-out, so every sink (NATS, file, console, third-party) gets redacted Secrets,
and so does the NATS ``informer-store`` answer, which also passes through the transforms.
Go MeshSync sends Secret data in clear unless ``MESHSYNC_REDACT_SECRETS`` is set; here redaction
is the default and ``--no-redact-secrets`` / ``MESHSYNC_REDACT_SECRETS=false`` opts out.
"""

from __future__ import annotations

from typing import Any

import click

from meshsync_core import Event, Options, Transform

REDACTED = "[REDACTED]"
_SECRET_FIELDS = ("data", "stringData")


def redact_secret(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of a Secret with every value of ``data``/``stringData`` replaced, keys kept.

    The ``kubectl.kubernetes.io/last-applied-configuration`` annotation holds the whole Secret
    as applied, values included, so it is redacted too.
    """
    out = dict(obj)
    for field in _SECRET_FIELDS:
        values = obj.get(field)
        if isinstance(values, dict):
            out[field] = {key: REDACTED for key in values}
    metadata = obj.get("metadata")
    if isinstance(metadata, dict):
        annotations = metadata.get("annotations")
        if isinstance(annotations, dict) and LAST_APPLIED in annotations:
            out["metadata"] = {
                **metadata,
                "annotations": {**annotations, LAST_APPLIED: REDACTED},
            }
    return out


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


class SecretRedaction(Transform):
    """Replaces Secret values with ``[REDACTED]`` (keys kept) unless the user opts out."""

    name = "secret-redaction"
    description = "replace Secret values with [REDACTED] (opt out: --no-redact-secrets)"
    order = 10  # before anything that could copy the data elsewhere

    @classmethod
    def enabled(cls, options: Options) -> bool:
        return options.get("redact_secrets", True) is not False

    def __call__(self, event: Event) -> Event | None:
        kind = event.resource.kind
        if kind and kind != "Secret":
            return event  # decided without decoding the object
        obj = event.object
        if obj.get("kind") != "Secret":
            return event
        return event.replace(object=redact_secret(obj))


def redaction_options() -> list[click.Option]:
    return [
        click.Option(
            ["--redact-secrets/--no-redact-secrets"],
            default=True,
            show_default=True,
            envvar="MESHSYNC_REDACT_SECRETS",
            help="[k8s] Replace Secret values with [REDACTED] in every sink.",
        )
    ]
