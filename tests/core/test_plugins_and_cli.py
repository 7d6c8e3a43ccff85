"""Plugin discovery through real installed entry points, broken plugins, and the CLI's errors.

Every test here runs ``python -m meshsync_core`` in a subprocess, with the example sink and the
fixture plugins (tests/fixtures/plugins) pip-installed into a scratch directory on PYTHONPATH.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from tests.core.conftest import MeshSyncCLI

BUILT_INS = {"console", "k8s", "nats", "file"}


def plugins_by_name(cli: MeshSyncCLI, **env: str) -> dict[str, dict]:
    result = cli.run("plugins", "list", "--json", **env)
    assert result.returncode == 0, result.stderr
    return {plugin["name"]: plugin for plugin in json.loads(result.stdout)}


def assert_no_traceback(result) -> None:
    assert "Traceback" not in result.stderr + result.stdout


def test_built_in_plugins_are_found_through_their_entry_points(plain_cli: MeshSyncCLI) -> None:
    plugins = plugins_by_name(plain_cli)
    assert set(plugins) >= BUILT_INS
    for name in BUILT_INS:
        assert plugins[name]["status"] == "loaded", plugins[name]
        assert plugins[name]["error"] is None
        assert plugins[name]["hooks"], f"{name} implements no hooks"
    assert plugins["k8s"]["package"] == "meshsync-k8s"
    assert plugins["nats"]["package"] == "meshsync-nats"
    assert plugins["file"]["package"] == "meshsync-file"
    assert plugins["console"]["sinks"] == ["console"]


def test_broken_plugins_are_listed_with_their_errors_and_others_still_load(
    cli: MeshSyncCLI,
) -> None:
    plugins = plugins_by_name(cli)
    broken = plugins["broken"]
    assert broken["status"] == "failed"
    assert broken["package"] == "meshsync-broken-import"
    assert "ModuleNotFoundError" in broken["error"]
    assert "a_module_that_does_not_exist" in broken["error"]
    assert plugins["typo"]["status"] == "failed"
    assert "unknown hook(s): meshsync_sinkz" in plugins["typo"]["error"]
    assert plugins["badreturn"]["status"] == "failed"
    assert "must return a list" in plugins["badreturn"]["error"]
    assert plugins["raising"]["status"] == "failed"
    assert "boom while registering" in plugins["raising"]["error"]
    assert plugins["jsonl"]["status"] == "loaded"
    assert plugins["jsonl"]["package"] == "meshsync-jsonl-sink"
    assert plugins["jsonl"]["version"] == "1.0.0"
    assert all(plugins[name]["status"] == "loaded" for name in BUILT_INS)


def test_plugin_table_shows_every_plugin_and_the_reasons_for_failures(cli: MeshSyncCLI) -> None:
    result = cli.run("plugins", "list")
    assert result.returncode == 0
    table_part, _, errors_part = result.stdout.partition("\n\n")
    lines = table_part.splitlines()
    assert lines[0].split() == [
        "NAME", "PACKAGE", "VERSION", "KINDS", "HOOKS", "PROVIDES", "STATUS",
    ]  # fmt: skip
    table = {line.split()[0]: line for line in lines[1:]}
    assert table["jsonl"].split() == [
        "jsonl", "meshsync-jsonl-sink", "1.0.0", "sink",
        "add_options,sinks", "sink:jsonl", "loaded",
    ]  # fmt: skip
    assert table["broken"].rstrip().endswith("failed")
    assert "broken (meshsync-broken-import): import failed: ModuleNotFoundError" in errors_part
    assert_no_traceback(result)


def test_plugins_can_be_disabled_by_environment_and_config(cli: MeshSyncCLI, tmp_path) -> None:
    plugins = plugins_by_name(cli, MESHSYNC_DISABLE_PLUGINS="broken, jsonl")
    assert plugins["broken"]["status"] == "disabled"
    assert plugins["jsonl"]["status"] == "disabled"
    assert plugins["jsonl"]["error"] is None

    config = tmp_path / "meshsync.yaml"
    config.write_text("disable-plugins: [console]\n")
    result = cli.run("run", "--config", str(config), "--output", "console", "--source", "ticker")
    assert result.returncode == 2
    assert "unknown sink 'console'" in result.stderr
    assert_no_traceback(result)


def test_example_sink_receives_events_while_a_raising_sink_is_isolated(cli: MeshSyncCLI) -> None:
    out = cli.cwd / "events.jsonl"
    result = cli.run(
        "run", "--source", "ticker", "--ticker-count", "25",
        "--output", "jsonl", "--output", "exploding", "--jsonl-path", str(out), "--once",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["object"]["metadata"]["name"] for r in records] == [f"tick-{i}" for i in range(25)]
    assert {r["type"] for r in records} == {"ADDED"}
    assert records[0]["resource"] == "ticks.v1.example.com"
    assert records[0]["cluster_id"] == "ticker-cluster"
    assert "sink 'exploding' failed to deliver 25 event(s): RuntimeError" in result.stderr
    assert "Traceback" not in result.stderr
    assert "stopped: initial sync complete (--once)" in result.stderr


def test_sigterm_and_sigint_stop_cleanly_with_exit_0(cli: MeshSyncCLI) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        out = cli.cwd / f"events-{signum}.jsonl"
        proc = cli.start(
            "run", "--source", "ticker", "--output", "jsonl", "--jsonl-path", str(out),
            "--log-level", "info",
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not (out.exists() and out.read_text().count("\n") == 3):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "events never arrived"
            time.sleep(0.05)  # polling a file another process writes; bounded by the deadline
        proc.send_signal(signum)
        _stdout, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr
        assert f"stopped: received {signal.Signals(signum).name}" in stderr
        assert "Traceback" not in stderr


def test_go_style_flags_and_no_subcommand_run_the_engine(cli: MeshSyncCLI) -> None:
    out = cli.cwd / "go.jsonl"
    result = cli.run(
        "-output", "jsonl", "-source=ticker", f"-jsonl-path={out}", "-stopAfter", "300ms"
    )
    assert result.returncode == 0, result.stderr
    assert out.read_text().count("\n") == 3


def test_unknown_sink_and_source_list_what_is_installed(cli: MeshSyncCLI) -> None:
    result = cli.run("run", "--source", "ticker", "--output", "carrier-pigeon")
    assert result.returncode == 2
    assert "unknown sink 'carrier-pigeon'; installed sinks:" in result.stderr
    assert "console" in result.stderr and "jsonl" in result.stderr
    result = cli.run("run", "--source", "nope", "--output", "console")
    assert result.returncode == 2
    assert "unknown source 'nope'; installed sources:" in result.stderr
    assert "ticker" in result.stderr
    assert_no_traceback(result)


def test_bad_input_gives_one_clear_line_and_exit_2(cli: MeshSyncCLI, tmp_path: Path) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("output: [nats\n")
    not_a_mapping = tmp_path / "list.yaml"
    not_a_mapping.write_text("- a\n- b\n")
    unknown_key = tmp_path / "unknown.yaml"
    unknown_key.write_text("outptu: nats\n")
    cases = {
        ("run", "--stop-after", "soon"): "invalid duration 'soon'",
        ("run", "--stopAfter", "-5s"): "invalid duration '-5s'",
        ("run", "--config", str(tmp_path / "missing.yaml")): "does not exist",
        ("run", "--config", str(bad_yaml)): "is not valid YAML (line 2",
        ("run", "--config", str(not_a_mapping)): "must be a mapping of settings, not list",
        ("run", "--config", str(unknown_key)): "unknown setting 'outptu' in config file",
        ("run", "--no-such-flag"): "No such option '--no-such-flag'",
        ("run", "--queue-size", "0"): "--queue-size",
        ("run", "--list-page-size", "0"): "--list-page-size",
        ("run", "--watch-timeout", "soon"): "invalid duration 'soon'",
    }
    for args, message in cases.items():
        result = cli.run(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert_no_traceback(result)


def test_config_file_settings_apply_and_flags_override_them(
    cli: MeshSyncCLI, tmp_path: Path
) -> None:
    out = tmp_path / "from-config.jsonl"
    config = tmp_path / "meshsync.yaml"
    config.write_text(
        f"source: ticker\noutput: jsonl\njsonl-path: {out}\nticker_count: 7\nonce: true\n"
    )
    result = cli.run("run", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert out.read_text().count("\n") == 7
    result = cli.run("run", "--config", str(config), "--ticker-count", "2")
    assert result.returncode == 0, result.stderr
    assert out.read_text().count("\n") == 7 + 2  # the example sink appends


def test_version_lists_core_and_plugin_versions(cli: MeshSyncCLI) -> None:
    result = cli.run("--version")
    assert result.returncode == 0
    first, *rest = result.stdout.splitlines()
    assert first.startswith("meshsync 0.")
    assert any("jsonl (meshsync-jsonl-sink 1.0.0) loaded" in line for line in rest)
    assert any("broken (meshsync-broken-import 0.0.1) failed" in line for line in rest)


def test_debug_environment_variable_turns_on_debug_logging(cli: MeshSyncCLI) -> None:
    result = cli.run("run", "--source", "ticker", "--output", "console", "--once", DEBUG="true")
    assert result.returncode == 0, result.stderr
    assert "tick-0" in result.stdout
    assert "DEBUG" in result.stderr
