"""What a first-time user meets: the demo, mistyped commands and settings, errors, Ctrl-C.

Each test here failed before the fix it is named after. Runs that matter for exit codes,
signals or the order of stderr lines are real ``python -m meshsync_core`` subprocesses (the
``cli``/``plain_cli`` fixtures); help texts and usage errors go through ``main`` in-process.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from meshsync_file.sink import FileSink

from meshsync_core import Engine, Options
from meshsync_core.cli import main
from meshsync_core.interrupts import SignalControl
from meshsync_core.testing import MemorySource, make_event
from tests.core.conftest import MeshSyncCLI

PYTHON_NOISE = ("Traceback", "Exception ignored", "KeyboardInterrupt", "Aborted.")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """``main`` points the ``meshsync`` logger at the sys.stderr of the moment (a capture)."""
    logger = logging.getLogger("meshsync")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


def unused_port() -> int:
    """A TCP port on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def one_paragraph(text: str) -> str:
    """Help text with its line wrapping undone, so that phrases can be looked for."""
    return " ".join(text.split())


def assert_no_python_noise(text: str) -> None:
    for noise in PYTHON_NOISE:
        assert noise not in text, text


# -- 1. demo -c -----------------------------------------------------------------------------


def test_demo_reads_the_config_file(plain_cli: MeshSyncCLI, tmp_path: Path) -> None:
    snapshot = tmp_path / "from-config.yaml"
    config = tmp_path / "meshsync.yaml"
    config.write_text(
        f"output: file\noutput-file: {snapshot}\nonce: true\nchurn-interval: 0\n"
        'file-progress: "off"\n'  # quoted: YAML reads a bare off as false
    )
    # --stop-after only bounds the run should the file be ignored (it would run forever).
    result = plain_cli.run("demo", "-c", str(config), "--stop-after", "30s")
    assert result.returncode == 0, result.stderr
    kinds = {doc["kind"] for doc in yaml.safe_load_all(snapshot.read_text()) if doc}
    assert {"Deployment", "Pod", "Widget"} <= kinds
    assert "ADDED" not in result.stdout  # not the console's default output


# -- 2. demo --churn-interval -------------------------------------------------------------


def test_demo_churn_interval_zero_means_no_changes(plain_cli: MeshSyncCLI) -> None:
    result = plain_cli.run("demo", "--churn-interval", "0", "--once")
    assert result.returncode == 0, result.stderr
    assert "--- initial sync complete" in result.stdout
    assert "not changing" in result.stderr
    assert_no_python_noise(result.stderr)


def test_demo_negative_churn_interval_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["demo", "--churn-interval", "-1"]) == 2
    err = capsys.readouterr().err
    assert "Invalid value for '--churn-interval': invalid duration '-1'" in err
    assert "must not be negative" in err
    config = tmp_path / "churn.yaml"
    config.write_text("churn-interval: -2\n")
    assert main(["demo", "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert "invalid duration -2: must not be negative" in err
    assert_no_python_noise(err)


# -- 3. unknown subcommands -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demos"], "No such command 'demos'. Did you mean 'demo'?"),
        (["plugin", "list"], "No such command 'plugin'. Did you mean 'plugins'?"),
    ],
)
def test_unknown_subcommand_is_no_such_command(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "meshsync run" not in err and "unexpected extra argument" not in err


def test_flags_without_a_subcommand_still_mean_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-stopAfter", "soon"]) == 2  # Go-style flag: taken by `run`, which rejects it
    err = capsys.readouterr().err
    assert "Usage: meshsync run" in err and "invalid duration 'soon'" in err


# -- 4. --once with NATS unreachable ------------------------------------------------------------


def test_once_with_nats_unreachable_fails_saying_why(cli: MeshSyncCLI) -> None:
    port = unused_port()
    result = cli.run(
        "run", "--source", "ticker", "--output", "nats",
        "--broker-url", f"127.0.0.1:{port}", "--once",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"meshsync: error: could not connect to NATS at nats://127.0.0.1:{port}")
    assert last.endswith("3 change(s) not delivered")
    assert_no_python_noise(result.stderr)


# -- 5. signals -------------------------------------------------------------------------------


def read_stderr_until(proc: subprocess.Popen[str], text: str) -> list[str]:
    """Lines of the child's stderr up to and including the first one containing ``text``."""
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if text in line:
            return lines
    proc.wait(timeout=30)
    raise AssertionError(f"{text!r} never came; rc={proc.returncode}, stderr:\n{''.join(lines)}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_second_signal_during_shutdown_stops_now_with_one_line(
    cli: MeshSyncCLI, signum: signal.Signals
) -> None:
    proc = cli.start("run", "--source", "ticker", "--output", "stuck", "--stuck-in", "close")
    try:
        read_stderr_until(proc, "stuck sink: initial state received")
        proc.send_signal(signum)  # a clean stop: the engine drains, then closes the sink...
        read_stderr_until(proc, "stuck sink: stuck in close")
        proc.send_signal(signum)  # ...which hangs: the second signal means "stop now"
        _out, rest = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum, rest
    name = signal.Signals(signum).name
    assert rest.splitlines() == [
        f"meshsync: {name} while stopping: stopping now, without waiting for the sinks"
    ]


def test_a_signal_while_opening_stops_the_run_cleanly(cli: MeshSyncCLI) -> None:
    proc = cli.start(
        "run", "--source", "ticker", "--output", "stuck", "--stuck-in", "open",
        "--log-level", "info",
    )  # fmt: skip
    try:
        before = read_stderr_until(proc, "stuck sink: stuck in open")
        proc.send_signal(signal.SIGINT)
        _out, rest = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, rest
    assert "stopped: received SIGINT" in rest
    assert_no_python_noise("".join(before) + rest)


def waits_in_epoll(native_id: int) -> bool:
    """Whether that thread of this process sleeps in epoll_wait (Linux: its wchan)."""
    try:
        return "epoll" in Path(f"/proc/self/task/{native_id}/wchan").read_text()
    except OSError:
        return False


async def test_a_signal_arriving_in_another_thread_still_stops_an_idle_run() -> None:
    """The kernel may hand a process signal to any thread; the sleeping loop must still wake."""
    main_thread = threading.get_native_id()
    if not Path(f"/proc/self/task/{main_thread}/wchan").exists():
        pytest.skip("needs Linux's /proc/<pid>/task/<tid>/wchan")

    class Engine_:
        stopping = False

        def __init__(self) -> None:
            self.stopped = asyncio.Event()

        def stop(self, reason: str = "", exit_code: int = 0) -> None:
            self.stopped.set()

    def signal_from_a_worker() -> None:
        deadline = time.monotonic() + 10
        while not waits_in_epoll(main_thread) and time.monotonic() < deadline:
            time.sleep(0.001)  # polling another thread's state, bounded by the deadline
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)  # to this thread itself

    engine = Engine_()
    control = SignalControl()
    assert control.install()
    worker = threading.Thread(target=signal_from_a_worker)
    try:
        with control.running(engine):
            started = time.monotonic()
            worker.start()
            # The loop has nothing else to do for 30 s: only the wakeup runs the handler sooner.
            await asyncio.wait_for(engine.stopped.wait(), 30)
            assert time.monotonic() - started < 10
    finally:
        worker.join()
        control.restore()


# -- 6. demo --help -------------------------------------------------------------------------


def test_demo_help_shows_what_applies_to_the_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--help"]) == 0
    text = one_paragraph(capsys.readouterr().out)
    assert "(default: console)" in text and "(default: nats)" not in text
    for hidden in ("--kubeconfig", "--context", "--broker-url", "--nats-"):
        assert hidden not in text, hidden
    assert "--output-file" in text and "--churn-interval" in text
    assert "[default: 2s]" in text
    assert "including the NATS options (for --output nats)" in text


def test_run_help_defaults_and_resources_read_right(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--help"]) == 0
    text = one_paragraph(capsys.readouterr().out)
    assert "[default: (" not in text
    assert "attempts never stop. [default: 2s]" in text
    assert "default set (pod" not in text
    assert "Name them like kubectl: pods or pod, deployments.v1.apps" in text


def test_demo_rejects_kubeconfig_given_on_the_command_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["demo", "--kubeconfig", str(tmp_path / "kc")]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "meshsync: error: --kubeconfig does not apply to meshsync demo, which runs against its "
        "own fake cluster; use meshsync run for a real one"
    ]


# -- 7. errors first ----------------------------------------------------------------------------


def test_a_missing_kubeconfig_is_the_only_line(plain_cli: MeshSyncCLI) -> None:
    result = plain_cli.run(
        "run", "-o", "file", "--kubeconfig", "/nonexistent", "--health-port", str(unused_port())
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "meshsync: error: kubeconfig '/nonexistent' does not exist"
    ]
    assert not list(plain_cli.cwd.glob("*.yaml"))  # the file sink never started


def test_every_configuration_problem_is_reported_in_pipeline_order(
    plain_cli: MeshSyncCLI,
) -> None:
    result = plain_cli.run("run", "--kubeconfig", "/nonexistent", BROKER_URL="")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "meshsync: error: kubeconfig '/nonexistent' does not exist",
        "meshsync: error: no NATS server given: set --broker-url or BROKER_URL "
        "(e.g. nats://meshery-nats:4222)",
    ]


def test_a_broken_kubeconfig_is_reported_before_any_sink_starts(
    plain_cli: MeshSyncCLI, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("clusters: [oops\n")
    result = plain_cli.run("run", "-o", "file", "--kubeconfig", str(kubeconfig))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "is not valid YAML (line 2, column 1)" in lines[0], lines
    assert not list(plain_cli.cwd.glob("meshery-cluster-snapshot-*"))


# -- 8. one "initial sync complete" -------------------------------------------------------------


def test_demo_table_is_not_interleaved_with_log_lines(plain_cli: MeshSyncCLI) -> None:
    result = plain_cli.run("demo", "--once", "--churn-interval", "0")
    assert result.returncode == 0, result.stderr
    assert "initial sync complete" not in result.stderr  # the table's separator says it
    before, separator, _ = result.stdout.partition("--- initial sync complete")
    assert separator
    added = [line for line in before.splitlines() if line.startswith("ADDED")]
    line = result.stdout[len(before) :].splitlines()[0]
    assert line == f"--- initial sync complete: {len(added)} object(s); watching for changes ---"


async def test_file_sink_on_a_terminal_says_initial_sync_complete_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    sink = FileSink(Options(output_file=str(tmp_path / "snap.yaml"), file_progress="tty"))
    events = [make_event(f"pod-{i}") for i in range(5)]
    with caplog.at_level("INFO", logger="meshsync"):
        result = await Engine([MemorySource(events)], [sink], once=True).run()
    assert result.exit_code == 0, result.reason
    logged = [r.getMessage() for r in caplog.records if r.name == "meshsync.file"]
    said = capsys.readouterr().err + "\n".join(logged)  # the terminal line, the sink's log
    assert said.count("initial sync complete") == 1, said
    assert "file: initial sync complete: 5 objects" in said


# -- 9. unknown config keys ---------------------------------------------------------------------


def test_unknown_config_keys_get_a_did_you_mean_with_dashes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "meshsync.yaml"
    config.write_text("outptu: nats\noutput_fiel: snap.yaml\ncolour: red\n")
    assert main(["run", "-c", str(config)]) == 2
    lines = capsys.readouterr().err.splitlines()
    where = f"in config file {str(config)!r}"
    assert lines == [
        f"meshsync: error: unknown setting 'outptu' {where} (did you mean 'output'?)",
        f"meshsync: error: unknown setting 'output-fiel' {where} (did you mean 'output-file'?)",
        f"meshsync: error: unknown setting 'colour' {where} (settings are the long options of "
        "'meshsync run --help', without the leading dashes, e.g. output-file)",
    ]


# -- 10. a plugin that fails to import ----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("run", "--log-level", "debug", "--source", "ticker", "-o", "console", "--once"), {}),
        (("plugins", "list"), {"DEBUG": "true"}),
    ],
)
def test_debug_shows_where_a_plugin_failed_to_import(
    cli: MeshSyncCLI, args: tuple[str, ...], env: dict[str, str]
) -> None:
    result = cli.run(*args, **env)
    assert result.returncode == 0, result.stderr
    assert "where plugin 'broken' failed:\nTraceback (most recent call last):" in result.stderr
    assert re.search(r'meshsync_broken_import/__init__\.py", line 3, in <module>', result.stderr)
    assert "ModuleNotFoundError: No module named 'a_module_that_does_not_exist'" in result.stderr


def test_without_debug_a_failed_import_is_one_line(cli: MeshSyncCLI) -> None:
    result = cli.run("run", "--source", "ticker", "-o", "console", "--once")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "plugin 'broken' (package meshsync-broken-import) skipped" in result.stderr
