"""The snapshot: latest state per uid, kept compact, written atomically.

Memory: each live object is kept as its already-serialized YAML document (UTF-8 ``bytes``),
never as the decoded dict, which is about ten times larger in Python. Updates replace the
entry (the dict keeps first-seen order); deletes remove it. Namespaces and
CustomResourceDefinitions are written before every other document: the source's watches run
concurrently, so a Secret may well be seen before its Namespace, and ``kubectl apply -f``
applies documents in file order.

Atomicity: the file is written to a hidden temporary file in the target directory, flushed and
fsynced, then renamed over the target. Readers see the old snapshot or the new one, never a
mix; a crash or ``kill -9`` leaves the old snapshot untouched (and at most a stale
``.NAME.PID.tmp``, removed by the next run for the same target).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from meshsync_file.naming import temp_path

_WRITE_CHUNK = 1 << 20


class SnapshotStore:
    """uid -> serialized document; with ``for_apply``, also the uid of each object's controller.

    ``first`` holds the uids written before all others (namespaces, CRDs).
    """

    __slots__ = ("controllers", "docs", "first")

    def __init__(self) -> None:
        self.docs: dict[str, bytes] = {}
        self.controllers: dict[str, str] = {}
        self.first: set[str] = set()

    def __len__(self) -> int:
        return len(self.docs)

    def put(
        self, uid: str, doc: bytes, controller: str | None = None, *, first: bool = False
    ) -> None:
        self.docs[uid] = doc
        if first:
            self.first.add(uid)
        if controller:
            self.controllers[uid] = controller
        elif self.controllers:
            self.controllers.pop(uid, None)

    def delete(self, uid: str) -> None:
        self.docs.pop(uid, None)
        self.first.discard(uid)
        if self.controllers:
            self.controllers.pop(uid, None)

    def documents(self, *, skip_controlled: bool = False) -> Iterator[bytes]:
        """Every document, the ``first`` ones first, each group in first-seen order;
        optionally without objects whose controller is itself in the snapshot (``--for-apply``:
        the controller recreates them)."""
        docs, controllers, first = self.docs, self.controllers, self.first
        if first:
            yield from (docs[uid] for uid in docs if uid in first)
        rest = (item for item in docs.items() if item[0] not in first) if first else docs.items()
        if not skip_controlled or not controllers:
            yield from (doc for _, doc in rest)
            return
        for uid, doc in rest:
            owner = controllers.get(uid)
            if owner is None or owner not in docs:
                yield doc

    def nbytes(self) -> int:
        """Bytes held by the serialized documents (without the dict's own overhead)."""
        return sum(len(doc) for doc in self.docs.values())


def write_atomic(path: Path, header: bytes, documents: Iterable[bytes], mode: int = 0o644) -> int:
    """Write ``header`` then ``---`` + each document to ``path`` atomically; return the count.

    Raises ``OSError`` (ENOSPC, EACCES, EROFS...) with the temporary file removed and ``path``
    as it was before.
    """
    tmp = temp_path(path)
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # our own leftover (same pid): never append to it
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
    count = 0
    try:
        with os.fdopen(fd, "wb", buffering=0) as raw:
            buffer: list[bytes] = [header]
            size = len(header)
            for doc in documents:
                buffer.append(b"---\n")
                buffer.append(doc)
                size += len(doc) + 4
                count += 1
                if size >= _WRITE_CHUNK:
                    _write_all(raw, b"".join(buffer))
                    buffer.clear()
                    size = 0
            if buffer:
                _write_all(raw, b"".join(buffer))
            os.fsync(raw.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)
    return count


def _write_all(raw: object, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = raw.write(view)  # type: ignore[attr-defined]
        if not written:
            raise OSError(errno.EIO, "write returned 0")
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (best effort; not every filesystem allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
