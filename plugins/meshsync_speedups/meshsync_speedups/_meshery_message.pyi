"""Types of the C extension built from _meshery_message.c (see meshsync_nats.wire)."""

from typing_extensions import Buffer

def envelope(
    raw: Buffer, event_type: str, cluster_id: str, kind: str, api_version: str
) -> bytes | None: ...
