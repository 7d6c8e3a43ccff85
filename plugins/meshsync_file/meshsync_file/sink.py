"""``FileSink``: the ``--output file`` sink (Go MeshSync's file mode, without its defects).

Per run it writes two files (see ``docs/file-sink.md``):

* the snapshot: the latest state of every live object, one Kubernetes manifest per document,
  written atomically after the initial sync (unless ``--once``) and again at shutdown;
* the extended log ``<name>-extended.yaml``: one document per event, appended as events
  arrive to a file created fresh for this run.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import logging
import os
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import click

from meshsync_core import (
    ConfigError,
    Duration,
    Event,
    EventType,
    MeshSyncError,
    Options,
    Sink,
    SinkContext,
    StartupError,
    gc_paused,
)
from meshsync_file import manifest as manifests
from meshsync_file.naming import extended_path, first_free_default, stale_temps, temp_path
from meshsync_file.progress import DEFAULT_MODE, MODES, Progress
from meshsync_file.snapshot import SnapshotStore, write_atomic
from meshsync_file.yaml_writer import dump_document, render_scalar
from meshsync_file.yaml_writer import transcode as yaml_transcode


class SnapshotWriteError(MeshSyncError):
    """The snapshot or the extended log could not be written (disk full, permissions...)."""


def _now() -> str:
    return (
        dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
    )


def _object_key(event: Event, obj: dict[str, Any]) -> str:
    """``metadata.uid``, or apiVersion/kind/namespace/name for objects without one."""
    uid = event.uid
    if uid:
        return uid
    return f"{obj.get('apiVersion')}/{obj.get('kind')}/{event.namespace}/{event.name}"


def _describe_os_error(exc: OSError, what: str, path: Path | None) -> str:
    if exc.errno == errno.ENOSPC:
        return f"file: no space left on the device writing {what} {str(path)!r}"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"file: permission denied writing {what} {str(path)!r}"
    if exc.errno == errno.EROFS:
        return f"file: read-only file system, cannot write {what} {str(path)!r}"
    return f"file: cannot write {what} {str(path)!r}: {exc.strerror or exc}"


#: Whether NAME-extended.yaml is written too (``--extended-log``).
EXTENDED_LOG = True


def file_options() -> list[click.Option]:
    """The file sink's options, read in ``FileSink.__init__``."""
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
            default=EXTENDED_LOG,
            show_default=True,
            help="[file] Also write NAME-extended.yaml, one YAML document per event.",
        ),
        click.Option(
            ["--file-progress", "file_progress"],
            type=click.Choice(MODES),
            default=DEFAULT_MODE,
            show_default=True,
            help="[file] Initial-sync progress: a live line on a terminal (tty), log lines "
            "(log), none (off); auto picks tty when stderr is a terminal.",
        ),
    ]


class FileSink(Sink):
    """Keeps the latest manifest per uid and writes the snapshot + the extended event log."""

    name = "file"
    #: The snapshot is written from what this run received: it needs every object at start.
    needs_full_state = True
    description = (
        "YAML snapshot of every live object as Kubernetes manifests (+ an extended event log)"
    )

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        requested = options.get("output_file")
        self.requested: Path | None = Path(str(requested)).expanduser() if requested else None
        self.for_apply = bool(options.get("for_apply"))
        self.extended_enabled = options.get("extended_log", EXTENDED_LOG) is not False
        self.once = bool(options.get("once"))
        interval = options.get("snapshot_interval")
        if interval is not None and (not isinstance(interval, (int, float)) or interval < 0):
            raise ConfigError(f"file: --snapshot-interval must be a duration, not {interval!r}")
        #: Rewrite the snapshot at most this often while changes arrive (None: only at the end).
        self.snapshot_interval: float | None = interval
        self._last_write = 0.0
        progress_mode = options.get("file_progress") or DEFAULT_MODE
        if progress_mode not in MODES:
            raise ConfigError(
                f"file: --file-progress must be one of {', '.join(MODES)}, not {progress_mode!r}"
            )
        self.progress_mode = str(progress_mode)
        # With Secret values in clear, the files are readable by the owner only.
        self.file_mode = 0o600 if options.get("redact_secrets", True) is False else 0o644
        self.store = SnapshotStore()
        self.snapshot_path: Path | None = None
        self.extended_path: Path | None = None
        self.progress: Progress | None = None
        self.ctx: SinkContext | None = None
        self.error: str | None = None
        self.snapshots_written = 0
        self.events_logged = 0
        self._synced = False
        self._dirty = True
        self._log: IO[bytes] | None = None
        #: (temporary, final) name of an extended log not yet moved into place.
        self._log_pending: tuple[Path, Path] | None = None
        #: Per (type, resource, cluster): the constant parts of an extended-log document.
        self._log_heads: dict[tuple[str, Any, str], tuple[bytes, bytes]] = {}

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self, ctx: SinkContext) -> None:
        """Choose the file names and check, before any event, that both files can be written."""
        self.ctx = ctx
        if self.requested is not None:
            path = self.requested
            _check_target(path)
            _probe(path, self.file_mode)
            self._remove_stale_temps(path)
            if self.extended_enabled:
                # An earlier run's log stays until this run has something to log: created
                # under a temporary name, renamed over it at the first event.
                final = extended_path(path)
                if final.is_dir():
                    raise StartupError(f"file: the extended log {str(final)!r} is a directory")
                pending = temp_path(final)
                with contextlib.suppress(FileNotFoundError):
                    pending.unlink()
                self._log = _create_fresh(pending, self.file_mode)
                self._log_pending = (pending, final)
        else:
            path = self._reserve_default(Path.cwd())
            try:
                _probe(path, self.file_mode)
            except StartupError:
                self._discard_log(extended_path(path))
                raise
            self._remove_stale_temps(path)
        self.snapshot_path = path
        self.extended_path = extended_path(path) if self.extended_enabled else None
        self.progress = Progress(self.progress_mode, log=self.log)
        self.log.info(
            "writing snapshot to %s%s",
            path,
            f" and events to {self.extended_path}" if self.extended_path else "",
        )

    def _remove_stale_temps(self, path: Path) -> None:
        """Temporary files of runs killed mid-write (never one of a live process)."""
        for stale in stale_temps(path) + stale_temps(extended_path(path)):
            with contextlib.suppress(OSError):
                stale.unlink()
                self.log.info("removed %s, left by a run that was killed", stale)

    def _reserve_default(self, directory: Path) -> Path:
        """The first free default name; its extended log is created at once to claim it."""
        _check_directory(directory)
        while True:
            path = first_free_default(directory)
            if not self.extended_enabled:
                return path
            try:
                self._log = _create_fresh(extended_path(path), self.file_mode)
            except FileExistsError:
                continue  # another run claimed this NN between the check and the create
            return path

    async def deliver(self, events: Sequence[Event]) -> None:
        """Update the latest state per uid and append each event to the extended log."""
        store = self.store
        for_apply = self.for_apply
        # Raw JSON straight to YAML (the C writer): no dict is built or freed. Not for
        # --for-apply, whose rewriting needs the dict.
        transcode = None if for_apply else yaml_transcode
        first_kinds = manifests.FIRST_KINDS
        logging_events = self._log is not None
        parts: list[bytes] = []
        counts: Counter[str] | None = None if self._synced else Counter()
        when = render_scalar(_now()).encode() if logging_events else b""
        with gc_paused():  # decoding and dumping build many short-lived acyclic containers
            for event in events:
                etype = event.type
                if etype is EventType.SYNCED:
                    continue
                resource = event.resource
                raw = event.raw_json
                uid = event.uid
                doc = None
                if transcode is not None and raw is not None and uid and resource.plural:
                    doc = transcode(raw, resource.api_version, resource.kind)
                if doc is not None:  # the fast path: same bytes as the dict path below
                    if etype is EventType.DELETED:
                        store.delete(uid)
                    else:
                        store.put(uid, doc, first=resource.kind in first_kinds)
                    plural = resource.plural
                else:
                    doc, plural = self._apply_decoded(event)
                if counts is not None:
                    counts[plural] += 1
                if logging_events:
                    parts.append(self._log_document(etype.value, when, event, doc))
        self._dirty = True
        if counts and self.progress is not None:
            for plural, count in counts.items():
                self.progress.add(plural, count)
        if parts:
            if self._log_pending is not None:
                self._place_log()
            self._append_log(b"".join(parts))
            self.events_logged += len(parts)
        if (
            self.snapshot_interval is not None
            and self._synced
            and time.monotonic() - self._last_write >= self.snapshot_interval
        ):
            with contextlib.suppress(SnapshotWriteError):
                await self._write_snapshot()

    def _apply_decoded(self, event: Event) -> tuple[bytes, str]:
        """Store (or drop) one event's manifest from its decoded object; returns the YAML
        document for the extended log (b"" if there is none) and the plural to count."""
        store = self.store
        manifest = manifests.clean(event.object, event.resource)
        key = _object_key(event, manifest)
        logging_events = self._log is not None
        first = manifest["kind"] in manifests.FIRST_KINDS
        if event.type is EventType.DELETED:
            store.delete(key)
            doc = dump_document(manifest).encode() if logging_events else b""
        elif self.for_apply:
            if manifests.made_by_control_plane(manifest):
                store.delete(key)  # (a label may have made it so only now)
            else:
                store.put(
                    key,
                    dump_document(manifests.for_apply(manifest)).encode(),
                    manifests.controller_uid(manifest),
                    first=first,
                )
            doc = dump_document(manifest).encode() if logging_events else b""
        else:
            doc = dump_document(manifest).encode()
            store.put(key, doc, first=first)
        return doc, event.resource.plural or str(manifest.get("kind"))

    async def on_synced(self) -> None:
        """Mark the end of the initial sync; write a first snapshot unless ``--once``."""
        self._synced = True
        if self.progress is not None:
            summary = self.progress.finish()
            # On a terminal the progress line has just said it: the log would say it twice.
            level = logging.DEBUG if self.progress.mode == "tty" else logging.INFO
            self.log.log(level, "initial sync complete: %s", summary)
        if self._log is not None:
            if self._log_pending is not None:
                self._place_log()
            self._append_log(f"---\ntype: SYNCED\ntime: {render_scalar(_now())}\n".encode())
        if not self.once:
            await self._write_snapshot()

    async def close(self) -> None:
        """Close the log and write the final snapshot; raise if anything could not be written."""
        if self._log_pending is not None and self._synced:
            self._place_log()
        if self._log is not None:
            log_file, self._log = self._log, None
            try:
                log_file.flush()
                os.fsync(log_file.fileno())
            except OSError as exc:
                self._fail(_describe_os_error(exc, "the extended log", self.extended_path))
            finally:
                with contextlib.suppress(OSError):
                    log_file.close()
        if self.snapshot_path is not None and not self._synced:
            # Stopped (or failed to start) before the initial sync: a snapshot now would be
            # incomplete and would replace a complete earlier one. The log has what was seen.
            self.log.warning(
                "stopped before the initial sync completed: snapshot %s not written%s",
                self.snapshot_path,
                " (an earlier file there is unchanged)" if self.snapshot_path.exists() else "",
            )
            if self._log_pending is not None:
                self._discard_log(self._log_pending[0])
            elif self.extended_path is not None and not self.events_logged:
                self._discard_log(self.extended_path)
        elif self.snapshot_path is not None and (self._dirty or not self.snapshots_written):
            with contextlib.suppress(SnapshotWriteError):
                await self._write_snapshot()
        if self.error:
            raise SnapshotWriteError(self.error)

    def _place_log(self) -> None:
        """Rename this run's extended log over the earlier one (atomic; never appended to)."""
        pending, final = self._log_pending  # type: ignore[misc]
        self._log_pending = None
        try:
            os.replace(pending, final)
        except OSError as exc:
            self._fail(_describe_os_error(exc, "the extended log", final))

    def _discard_log(self, path: Path) -> None:
        """Remove the (empty) extended log this run created, when the run never started."""
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None
        with contextlib.suppress(OSError):
            path.unlink()

    @property
    def ready(self) -> bool:
        return self.error is None

    # -- writing ---------------------------------------------------------------------------

    def _log_document(self, etype: str, when: bytes, event: Event, doc: bytes) -> bytes:
        key = (etype, event.resource, event.cluster_id)
        head = self._log_heads.get(key)
        if head is None:
            cluster = f"cluster: {render_scalar(event.cluster_id)}\n" if event.cluster_id else ""
            head = (
                f"resource: {render_scalar(event.resource.key)}\n{cluster}object:\n".encode(),
                f"---\ntype: {etype}\ntime: ".encode(),
            )
            if len(self._log_heads) > 10_000:
                self._log_heads.clear()
            self._log_heads[key] = head
        body = doc[:-1].replace(b"\n", b"\n  ")
        return b"%s%s\n%s  %s\n" % (head[1], when, head[0], body)

    def _append_log(self, text: bytes) -> None:
        log_file = self._log
        if log_file is None:
            return
        try:
            log_file.write(text)
            log_file.flush()
        except OSError as exc:
            self._log = None
            with contextlib.suppress(OSError):
                log_file.close()
            self._fail(_describe_os_error(exc, "the extended log", self.extended_path))

    async def _write_snapshot(self) -> None:
        path = self.snapshot_path
        if path is None:
            return
        docs = list(self.store.documents(skip_controlled=self.for_apply))
        header = (
            f"# MeshSync snapshot: {len(docs)} objects"
            f"{' prepared for kubectl apply' if self.for_apply else ''}, written {_now()}\n"
        ).encode()
        self._dirty = False
        try:
            await asyncio.to_thread(write_atomic, path, header, docs, self.file_mode)
        except OSError as exc:
            self._dirty = True
            message = _describe_os_error(exc, "the snapshot", path)
            self._fail(message + "; any earlier snapshot there is unchanged")
            raise SnapshotWriteError(self.error) from None
        self.snapshots_written += 1
        self._last_write = time.monotonic()
        self.log.info("wrote %d objects to %s", len(docs), path)

    def _fail(self, message: str) -> None:
        """Record the first error, say it clearly, and end the run as failed (exit code 1):
        nothing more can be saved."""
        self.log.error("%s", message)
        if self.error is None:
            self.error = message
        if self.ctx is not None:
            self.ctx.request_stop(message, exit_code=SnapshotWriteError.exit_code)


# -- checks made before the run, so that a bad path fails at start-up --------------------------


def _check_directory(directory: Path) -> None:
    if not directory.exists():
        if directory.parent != directory and directory.parent.is_file():
            raise StartupError(f"file: {str(directory.parent)!r} is a file, not a directory")
        raise StartupError(f"file: directory {str(directory)!r} does not exist; create it first")
    if not directory.is_dir():
        raise StartupError(f"file: {str(directory)!r} is not a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise StartupError(f"file: directory {str(directory)!r} is not writable")


def _check_target(path: Path) -> None:
    if path.is_dir():
        raise StartupError(
            f"file: --output-file {str(path)!r} is a directory; give a file name in it"
        )
    if path.exists() and not path.is_file():
        raise StartupError(f"file: --output-file {str(path)!r} exists and is not a regular file")
    parent = path.parent
    probe = parent
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise StartupError(
            f"file: cannot create {str(path)!r}: {str(probe)!r} is a file, not a directory"
        )
    _check_directory(parent)


def _probe(path: Path, mode: int) -> None:
    """Create and remove the snapshot's temporary file: proves the rename target is writable."""
    tmp = temp_path(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        os.close(fd)
        tmp.unlink()
    except OSError as exc:
        raise StartupError(_describe_os_error(exc, "the snapshot", path)) from None


def _create_fresh(path: Path, mode: int) -> IO[bytes]:
    """A new, empty file at ``path``; ``FileExistsError`` if something is there already."""
    if path.is_dir():
        raise StartupError(f"file: the extended log {str(path)!r} is a directory")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
    except FileExistsError:
        raise
    except OSError as exc:
        raise StartupError(_describe_os_error(exc, "the extended log", path)) from None
    return os.fdopen(fd, "wb")
