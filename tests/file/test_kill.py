"""A killed run never leaves a half-written snapshot: real processes, SIGKILL and SIGTERM.

The child runs the real engine with a source that keeps running and the file sink. It prints a
line at the moment the test wants to act (``HALF`` once half the objects were delivered,
``WRITING`` after the first chunk of the new snapshot reached its temporary file, ``SYNCED``)
and then blocks reading stdin, so the kill lands exactly there, with no sleep.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml
from meshsync_file.naming import temp_path

from .conftest import load_all, run_file_sink
from .k8s_objects import build_cluster, event

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from meshsync_core import Engine, Event, EventType, Options, Source
    from meshsync_core.testing import make_event
    import meshsync_file.snapshot as snapshot
    from meshsync_file.sink import FileSink

    target, mode, count = sys.argv[1], sys.argv[2], int(sys.argv[3])

    def block(line):
        print(line, flush=True)
        sys.stdin.readline()  # the parent kills us while we wait here

    class Source_(Source):
        name = "child"
        async def run(self, ctx):
            for i in range(count):
                await ctx.emit(make_event(f"pod-{i}", data={"payload": "x" * 2000}))
            ctx.initial_sync_complete()
            await asyncio.Event().wait()

    class Sink_(FileSink):
        async def deliver(self, events):
            await super().deliver(events)
            if mode == "mid-sync" and self.events_logged >= count // 2:
                block("HALF")  # blocks the whole process, mid initial sync

        async def on_synced(self):
            await super().on_synced()
            if mode == "sigterm":
                print("SYNCED", flush=True)

    if mode == "mid-write":
        real = snapshot._write_all
        def write_then_block(raw, data):
            real(raw, data)
            block("WRITING")
        snapshot._write_all = write_then_block

    sink = Sink_(Options(output_file=target, file_progress="off"))
    result = asyncio.run(Engine([Source_(Options())], [sink], handle_signals=True).run())
    print("EXIT", result.exit_code, result.reason, flush=True)
    sys.exit(result.exit_code)
    """
)
PREVIOUS = "# previous snapshot\n---\nkind: Previous\n"


def start(tmp_path: Path, target: Path, mode: str, count: int) -> subprocess.Popen[str]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return subprocess.Popen(
        [sys.executable, str(script), str(target), mode, str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(proc: subprocess.Popen[str], expected: str) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != expected:
        proc.kill()
        _, err = proc.communicate(timeout=30)
        raise AssertionError(f"child said {line!r}, not {expected!r}; stderr:\n{err}")


def test_sigkill_mid_initial_sync_keeps_the_previous_snapshot(tmp_path: Path) -> None:
    target = tmp_path / "snap.yaml"
    target.write_text(PREVIOUS)
    proc = start(tmp_path, target, "mid-sync", 200)
    wait_for_line(proc, "HALF")
    proc.kill()
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert target.read_text() == PREVIOUS
    assert not temp_path(target, proc.pid).exists()
    # The event log of the killed run holds whole documents up to the kill.
    log = list(yaml.safe_load_all((tmp_path / "snap-extended.yaml").read_text()))
    assert log and all(doc["type"] == "ADDED" for doc in log)


async def test_sigkill_mid_write_keeps_the_previous_snapshot(tmp_path: Path) -> None:
    target = tmp_path / "snap.yaml"
    target.write_text(PREVIOUS)
    proc = start(tmp_path, target, "mid-write", 2000)  # ~5 MB: several 1 MiB chunks
    wait_for_line(proc, "WRITING")
    partial = temp_path(target, proc.pid)
    assert partial.stat().st_size > 0  # the new snapshot is half written...
    assert target.read_text() == PREVIOUS  # ...next to the untouched old one
    proc.kill()
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert target.read_text() == PREVIOUS
    # The next run for the same target removes the dead run's temp file and writes normally.
    await run_file_sink([event(r, o) for r, o in build_cluster()], path=target, once=True)
    assert not partial.exists()
    assert len(load_all(target)) == len(build_cluster())


def test_sigterm_stops_cleanly_with_the_latest_state(tmp_path: Path) -> None:
    target = tmp_path / "snap.yaml"
    proc = start(tmp_path, target, "sigterm", 50)
    wait_for_line(proc, "SYNCED")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "EXIT 0 received SIGTERM" in out
    docs = load_all(target)
    assert [doc["metadata"]["name"] for doc in docs] == [f"pod-{i}" for i in range(50)]
    assert not temp_path(target, proc.pid).exists()
