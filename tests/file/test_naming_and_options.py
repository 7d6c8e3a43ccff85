"""Default and derived file names, the CLI options, and the progress display."""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
from pathlib import Path

import pytest
from meshsync_file.naming import (
    default_name,
    extended_path,
    first_free_default,
    stale_temps,
    temp_path,
)
from meshsync_file.progress import Progress

from meshsync_core import StartupError
from meshsync_core.cli import main

from .conftest import load_all, run_file_sink
from .k8s_objects import build_cluster, event

DAY = dt.date(2026, 3, 1)


def test_default_name_is_go_compatible() -> None:
    assert default_name(DAY, 0) == "meshery-cluster-snapshot-20260301-00.yaml"
    assert default_name(DAY, 7) == "meshery-cluster-snapshot-20260301-07.yaml"
    assert default_name(DAY, 1023) == "meshery-cluster-snapshot-20260301-1023.yaml"


@pytest.mark.parametrize(
    ("snapshot", "extended"),
    [
        ("snap.yaml", "snap-extended.yaml"),
        ("dir/snap.yml", "dir/snap-extended.yml"),
        ("snap", "snap-extended.yaml"),
        ("snap.json", "snap.json-extended.yaml"),
        (".yaml", ".yaml-extended.yaml"),
        ("a.b.yaml", "a.b-extended.yaml"),
    ],
)
def test_extended_name(snapshot: str, extended: str) -> None:
    assert extended_path(Path(snapshot)) == Path(extended)


def test_first_free_nn_skips_names_where_either_file_exists(tmp_path: Path) -> None:
    (tmp_path / default_name(DAY, 0)).write_text("")
    (tmp_path / "meshery-cluster-snapshot-20260301-01-extended.yaml").write_text("")
    (tmp_path / default_name(DAY, 3)).write_text("")
    assert first_free_default(tmp_path, DAY) == tmp_path / default_name(DAY, 2)


def test_all_names_taken_is_a_startup_error(tmp_path: Path) -> None:
    for nn in range(1024):
        (tmp_path / default_name(DAY, nn)).touch()
    with pytest.raises(StartupError, match="all 1024 default snapshot names"):
        first_free_default(tmp_path, DAY)


async def test_default_names_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    today = dt.date.today()
    (tmp_path / default_name(today, 0)).write_text("earlier run\n")
    events = [event(r, o) for r, o in build_cluster()]
    sink, result = await run_file_sink(events, path=None, once=True)
    assert result.exit_code == 0
    assert sink.snapshot_path == Path.cwd() / default_name(today, 1)
    assert (tmp_path / default_name(today, 0)).read_text() == "earlier run\n"
    assert len(load_all(tmp_path / default_name(today, 1))) == len(events)
    assert (tmp_path / f"meshery-cluster-snapshot-{today:%Y%m%d}-01-extended.yaml").exists()
    # A second run takes the next number: never the same files.
    sink2, _ = await run_file_sink(events, path=None, once=True)
    assert sink2.snapshot_path == Path.cwd() / default_name(today, 2)


def test_temp_names_are_hidden_and_per_process(tmp_path: Path) -> None:
    target = tmp_path / "snap.yaml"
    assert temp_path(target, 42) == tmp_path / ".snap.yaml.42.tmp"
    temp_path(target, os.getpid()).write_text("")  # our own: stale from this process's view
    (tmp_path / ".snap.yaml.notapid.tmp").write_text("")
    assert stale_temps(target) == [temp_path(target, os.getpid())]


def test_options_are_on_meshsync_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--output-file", "--outputFile", "--for-apply", "--no-extended-log"):
        assert flag in text
    assert "[file] Snapshot path" in text
    assert main(["plugins", "list"]) == 0
    assert "sink:file" in capsys.readouterr().out


def test_progress_on_a_terminal_redraws_one_line() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    progress = Progress("auto", stream=stream, redraw_every=0.0)
    assert progress.mode == "tty"
    progress.add("pods", 3)
    progress.add("configmaps", 2)
    summary = progress.finish()
    out = stream.getvalue()
    assert out.count("\r\x1b[2K") == 3 and out.endswith("\n")
    assert "initial sync complete: 5 objects" in out
    assert summary.startswith("5 objects (") and "pods 3, configmaps 2" in summary
    progress.add("pods", 1)  # after the sync: not counted, nothing drawn
    assert stream.getvalue() == out


def test_progress_without_a_terminal_logs(caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()
    progress = Progress("auto", stream=stream, log_every=0.0)
    assert progress.mode == "log"
    with caplog.at_level(logging.INFO, logger="meshsync.file"):
        for kind in ["pods", "nodes", "a", "b", "c", "d", "e"]:
            progress.add(kind)
    assert "initial sync: 7 objects" in caplog.text and "+1 more" in caplog.text
    progress.finish()
    assert stream.getvalue() == ""  # no terminal control characters in logs
