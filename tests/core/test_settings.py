"""Pure functions that read settings: durations, argv quirks, config files."""

from __future__ import annotations

import pytest

from meshsync_core import ConfigError, parse_duration
from meshsync_core.settings import (
    as_list,
    env_flag,
    find_config_arg,
    load_config_file,
    normalise_go_flags,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("8s", 8), ("2m", 120), ("1h30m", 5400), ("250ms", 0.25), ("1.5s", 1.5), ("90", 90)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "5 s", "1x", "s", "-5s", "1h-3m"])
def test_bad_durations_say_what_is_expected(text: str) -> None:
    with pytest.raises(ConfigError, match="duration"):
        parse_duration(text)


def test_go_single_dash_long_flags_become_double_dash() -> None:
    assert normalise_go_flags(["-stopAfter=8s", "-output", "file", "-o", "x", "--", "-keep"]) == [
        "--stopAfter=8s",
        "--output",
        "file",
        "-o",
        "x",
        "--",
        "-keep",
    ]


def test_config_argument_is_found_before_click_parses() -> None:
    assert find_config_arg(["run", "--config", "a.yaml"]) == "a.yaml"
    assert find_config_arg(["run", "--config=b.yaml"]) == "b.yaml"
    assert find_config_arg(["run", "-c", "c.yaml"]) == "c.yaml"
    assert find_config_arg(["run", "--", "--config", "d"]) is None


def test_config_file_keys_accept_dashes(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("broker-url: nats://x:4222\nstop_after: 5s\n")
    assert load_config_file(path) == {"broker_url": "nats://x:4222", "stop_after": "5s"}
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config_file(empty) == {}


def test_env_flags_and_lists() -> None:
    assert env_flag("X", {"X": "true"}) is True
    assert env_flag("X", {"X": "0"}) is False
    assert env_flag("X", {}) is None
    with pytest.raises(ConfigError, match="not a boolean"):
        env_flag("X", {"X": "maybe"})
    assert as_list(("nats,file", "console")) == ["nats", "file", "console"]
    assert as_list("a, b") == ["a", "b"]
    assert as_list(None) == []
