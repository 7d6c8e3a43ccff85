"""Types of the C extension built from _yaml_writer.c (see meshsync_file.yaml_writer)."""

from collections.abc import Callable
from typing import Any

from typing_extensions import Buffer

def setup(
    key_cache: dict[str, str],
    value_cache: dict[str, str],
    key_text: Callable[[str, str], str],
    str_text: Callable[[str], str | None],
    block_text: Callable[[str, int], str],
    normalize: Callable[[Any], Any],
    render_scalar: Callable[[Any], str],
) -> None: ...
def dump_map(obj: dict[Any, Any]) -> str: ...
def transcode(raw: Buffer, api_version: str, kind: str) -> bytes | None: ...
