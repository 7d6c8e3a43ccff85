"""Types of the C extension built from _object_meta.c (see meshsync_k8s.raw_json)."""

from typing_extensions import Buffer

def identity(raw: Buffer) -> tuple[str, str, str, str] | None: ...
