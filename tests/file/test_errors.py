"""Bad paths fail at start-up with a clear message; write failures never destroy a snapshot."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import subprocess
from pathlib import Path

import pytest
from meshsync_file import snapshot as snapshot_module
from meshsync_file.naming import temp_path
from meshsync_file.sink import FileSink

from meshsync_core import Engine, Source, SourceContext, StartupError

from .conftest import file_options, load_all, run_file_sink, tmpfs
from .k8s_objects import RESOURCES, build_cluster, event

PREVIOUS = "# previous snapshot\n---\nkind: Previous\n"


def cluster_events() -> list:
    return [event(r, o) for r, o in build_cluster()]


def big_configmaps(count: int, size: int) -> list:
    return [
        event(
            RESOURCES["configmaps"],
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"big-{i}", "namespace": "x", "uid": f"big-{i}"},
                "data": {"blob": f"{i}-" + "x" * size},
            },
        )
        for i in range(count)
    ]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "a-directory", "is a directory"),
        (lambda d: d / "missing" / "snap.yaml", "does not exist"),
        (lambda d: d / "a-file" / "snap.yaml", "is a file, not a directory"),
        (lambda d: d / "a-file" / "deeper" / "snap.yaml", "is a file, not a directory"),
    ],
    ids=["path-is-directory", "missing-parent", "parent-is-file", "ancestor-is-file"],
)
async def test_bad_paths_fail_at_startup(tmp_path: Path, make, message: str) -> None:
    (tmp_path / "a-directory").mkdir()
    (tmp_path / "a-file").write_text("not a directory")
    before = sorted(os.listdir(tmp_path))
    _sink, result = await run_file_sink(cluster_events(), path=make(tmp_path), once=True)
    assert result.exit_code == 2
    assert message in result.reason and result.reason.startswith("file: ")
    assert sorted(os.listdir(tmp_path)) == before  # nothing created
    assert result.stats.delivered["file"] == 0


async def test_read_only_directory_fails_at_startup_and_keeps_the_snapshot(
    tmp_path: Path,
) -> None:
    target_dir = tmp_path / "ro"
    if os.geteuid() == 0:  # root ignores permissions: use a read-only file system instead
        with tmpfs(target_dir, "1m"):
            (target_dir / "snap.yaml").write_text(PREVIOUS)
            subprocess.run(["mount", "-o", "remount,ro", str(target_dir)], check=True)
            _sink, result = await run_file_sink(
                cluster_events(), path=target_dir / "snap.yaml", once=True
            )
            assert (target_dir / "snap.yaml").read_text() == PREVIOUS
            assert sorted(os.listdir(target_dir)) == ["snap.yaml"]
    else:
        target_dir.mkdir()
        (target_dir / "snap.yaml").write_text(PREVIOUS)
        target_dir.chmod(0o555)
        try:
            _sink, result = await run_file_sink(
                cluster_events(), path=target_dir / "snap.yaml", once=True
            )
        finally:
            target_dir.chmod(0o755)
        assert (target_dir / "snap.yaml").read_text() == PREVIOUS
    assert result.exit_code == 2
    assert "not writable" in result.reason or "read-only" in result.reason


async def test_disk_full_during_the_run_keeps_the_previous_snapshot(tmp_path: Path) -> None:
    """A real ENOSPC: a 256 KiB tmpfs that the extended log and the snapshot overflow."""
    with tmpfs(tmp_path / "small", "256k") as small:
        target = small / "snap.yaml"
        target.write_text(PREVIOUS)
        sink, result = await run_file_sink(
            big_configmaps(60, 8_000), path=target, keep_running=True, once=True
        )
        assert sink.error is not None and "no space left on the device" in sink.error
        assert target.read_text() == PREVIOUS
        assert not temp_path(target).exists()
        assert result.stats.errors["file"] >= 1
        assert result.reason.startswith("file: no space left")  # the sink stopped the run
        assert result.exit_code == 1


async def test_disk_full_writing_the_snapshot_keeps_the_previous_one(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", "256k") as small:
        target = small / "snap.yaml"
        target.write_text(PREVIOUS)
        sink, result = await run_file_sink(
            big_configmaps(60, 8_000), path=target, once=True, extended_log=False
        )
        assert sink.error is not None and "the snapshot" in sink.error
        assert "earlier snapshot there is unchanged" in sink.error
        assert target.read_text() == PREVIOUS
        assert sorted(os.listdir(small)) == ["snap.yaml"]
        assert result.stats.errors["file"] == 1
        assert result.exit_code == 1


async def test_write_failure_at_close_is_reported_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where no tmpfs can be mounted: ENOSPC injected after part of the file was written."""
    target = tmp_path / "snap.yaml"
    target.write_text(PREVIOUS)
    real_write_all = snapshot_module._write_all
    written: list[int] = []

    def fail_after_first_chunk(raw: object, data: bytes) -> None:
        if written:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write_all(raw, data)
        written.append(len(data))

    monkeypatch.setattr(snapshot_module, "_write_all", fail_after_first_chunk)
    sink, result = await run_file_sink(big_configmaps(300, 8_000), path=target, once=True)
    assert written and temp_path(target).exists() is False
    assert target.read_text() == PREVIOUS
    assert sink.error == (
        f"file: no space left on the device writing the snapshot {str(target)!r}; "
        "any earlier snapshot there is unchanged"
    )
    assert result.stats.errors["file"] == 1


async def test_write_failure_gives_a_non_zero_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(raw: object, data: bytes) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(snapshot_module, "_write_all", no_space)
    _sink, result = await run_file_sink(cluster_events(), path=tmp_path / "s.yaml", once=True)
    assert result.exit_code == 1
    assert result.reason.startswith("file: no space left on the device writing the snapshot")


async def test_stale_temp_of_a_killed_run_is_removed(tmp_path: Path) -> None:
    target = tmp_path / "snap.yaml"
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = temp_path(target, dead.pid)
    stale.write_text("partial")
    alive = temp_path(target, os.getppid())  # a running process: maybe writing right now
    alive.write_text("in progress")
    await run_file_sink(cluster_events(), path=target, once=True)
    assert not stale.exists() and alive.exists()
    assert len(load_all(target)) == len(build_cluster())


class FailingSource(Source):
    name = "failing"

    async def open(self) -> None:
        raise StartupError("failing: cannot reach the API server")

    async def run(self, ctx: SourceContext) -> None:  # pragma: no cover - never runs
        raise AssertionError("not opened")


@pytest.mark.parametrize("explicit", [True, False], ids=["output-file", "default-name"])
async def test_source_failing_to_start_leaves_earlier_files_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, explicit: bool
) -> None:
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "snap.yaml"
    target.write_text(PREVIOUS)
    (tmp_path / "snap-extended.yaml").write_text("earlier log\n")
    options = file_options(target if explicit else None)
    sink = FileSink(options)
    result = await Engine([FailingSource(options)], [sink]).run()
    assert result.exit_code == 2 and "cannot reach the API server" in result.reason
    assert target.read_text() == PREVIOUS
    assert (tmp_path / "snap-extended.yaml").read_text() == "earlier log\n"
    assert sorted(os.listdir(tmp_path)) == ["snap-extended.yaml", "snap.yaml"]


async def test_stopped_before_the_initial_sync_keeps_the_earlier_snapshot(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class NeverSyncs(Source):
        name = "never-syncs"

        async def run(self, ctx: SourceContext) -> None:
            for ev in cluster_events():
                await ctx.emit(ev)
            await asyncio.Event().wait()  # the initial list never completes

    target = tmp_path / "snap.yaml"
    target.write_text(PREVIOUS)
    options = file_options(target)
    sink = FileSink(options)
    engine = Engine([NeverSyncs(options)], [sink], stop_after=0.2)
    with caplog.at_level(logging.WARNING, logger="meshsync.file"):
        result = await engine.run()
    assert result.exit_code == 0
    assert target.read_text() == PREVIOUS
    assert "stopped before the initial sync completed" in caplog.text
    log = load_all(tmp_path / "snap-extended.yaml")  # what was seen is in the log
    assert len(log) == len(build_cluster()) and all(d["type"] == "ADDED" for d in log)
