"""URLs, authentication and TLS: what connects, and one clear line for what cannot."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import nkeys
import pytest
from meshsync_nats.connection import ConnectionSettings, mask_url, normalise_url, parse_servers
from meshsync_nats.sink import NatsSink
from meshsync_testkit.nats_server import TlsFiles, make_user_creds

from meshsync_core import ConfigError, Engine, Options
from meshsync_core.cli import build_run_command
from meshsync_core.options import parse_params
from meshsync_core.plugin_manager import PluginRegistry
from tests.nats.helpers import (
    ModelSource,
    Running,
    Subscriber,
    log_lines,
    nats_options,
    pod,
    wait_until,
)

SECRET = "s3cr3t-Pa55"


# -- pure settings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("nats-host:4222", "nats://nats-host:4222"),
        ("nats-host", "nats://nats-host:4222"),
        ("nats://10.0.0.1:4333", "nats://10.0.0.1:4333"),
        ("tls://nats.example.com", "tls://nats.example.com:4222"),
        ("nats://u:p@h:1", "nats://u:p@h:1"),
        ("ws://h:8080", "ws://h:8080"),
    ],
)
def test_normalise_url(given: str, expected: str) -> None:
    assert normalise_url(given) == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("http://h:4222", "scheme must be one of"),
        ("nats://h:notaport", "invalid NATS URL"),
        ("nats://h:99999", "invalid NATS URL"),
        ("nats://:4222", "no host"),
        ("nats://h:4222/path", "unexpected path"),
    ],
)
def test_bad_urls_are_config_errors(given: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        normalise_url(given)


def test_several_servers_and_missing_url() -> None:
    assert parse_servers("a:1, b:2 nats://c:3") == ["nats://a:1", "nats://b:2", "nats://c:3"]
    with pytest.raises(ConfigError, match="set --broker-url or BROKER_URL"):
        parse_servers(None)


def test_mask_url_hides_secrets() -> None:
    assert mask_url(f"nats://admin:{SECRET}@h:4222") == "nats://admin:***@h:4222"
    assert mask_url(f"nats://{SECRET}@h:4222") == "nats://***@h:4222"
    assert mask_url("nats://h:4222") == "nats://h:4222"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"nats_password": "x"}, "--nats-password needs --nats-user"),
        ({"nats_user": "u", "nats_token": "t"}, "choose one NATS authentication method"),
        ({"nats_creds": "/nonexistent/user.creds"}, "cannot read NATS credentials file"),
        ({"nats_nkey_seed": "/nonexistent/seed"}, "cannot read NATS NKEY seed file"),
        ({"nats_tls_ca": "/nonexistent/ca.pem"}, "cannot read NATS TLS CA file"),
        ({"nats_tls_key": "/tmp/k.pem"}, "--nats-tls-key needs --nats-tls-cert"),
    ],
)
def test_bad_auth_and_tls_options(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ConnectionSettings.from_options({"broker_url": "h:4222", **options})


def test_flag_wins_over_env_and_env_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """Go ignores --broker-url; here BROKER_URL is used when the flag is absent."""
    command = build_run_command(PluginRegistry.from_entry_points())
    monkeypatch.setenv("BROKER_URL", "env-host:4222")
    assert parse_params(command, [], {})["broker_url"] == "env-host:4222"
    assert parse_params(command, ["--broker-url", "flag:1"], {})["broker_url"] == "flag:1"


# -- through the engine --------------------------------------------------------------------


async def test_malformed_url_fails_before_the_run_with_one_line() -> None:
    # Checked when the sink is built, with every other component's options, before any starts.
    with pytest.raises(ConfigError) as info:
        NatsSink(Options(broker_url=f"http://admin:{SECRET}@h:4222"))
    reason = str(info.value)
    assert info.value.exit_code == 2
    assert "\n" not in reason and "scheme must be one of" in reason
    assert SECRET not in reason and "admin:***@h" in reason


async def test_unreadable_creds_file_fails_before_the_run(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        NatsSink(Options(broker_url="h:4222", nats_creds=str(tmp_path)))  # a directory
    assert "cannot read NATS credentials file" in str(info.value)
    assert "\n" not in str(info.value)


async def deliver_one(url: str, **options: object) -> Subscriber:
    """Run the engine with one object and return a subscriber that received it."""
    sub_options = {k: v for k, v in options.items() if k.startswith("sub_")}
    sink_options = {k: v for k, v in options.items() if not k.startswith("sub_")}
    subscriber = Subscriber()
    await subscriber.connect(url, **{k[4:]: v for k, v in sub_options.items()})
    source = ModelSource([pod("a")])
    sink = NatsSink(nats_options(url, **sink_options))
    async with Running(Engine([source], [sink])):
        await subscriber.wait_count(1)
    await subscriber.close()
    return subscriber


async def test_user_password_auth(nats_server_factory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = nats_server_factory(user="meshsync", password=SECRET)
    await deliver_one(
        server.url,
        nats_user="meshsync",
        nats_password=SECRET,
        sub_user="meshsync",
        sub_password=SECRET,
    )
    assert SECRET not in caplog.text


async def test_password_in_url_is_masked_in_logs(
    nats_server_factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="meshsync")
    server = nats_server_factory(user="meshsync", password=SECRET)
    url = server.url.replace("nats://", f"nats://meshsync:{SECRET}@")
    await deliver_one(url)
    assert "meshsync:***@127.0.0.1" in caplog.text
    assert SECRET not in caplog.text


async def test_token_auth(nats_server_factory) -> None:
    server = nats_server_factory(token=SECRET)
    await deliver_one(server.url, nats_token=SECRET, sub_token=SECRET)


async def test_nkey_seed_auth(nats_server_factory, tmp_path: Path) -> None:
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    seed_file = tmp_path / "user.nk"
    seed_file.write_bytes(seed)
    server = nats_server_factory(nkey=public)
    await deliver_one(server.url, nats_nkey_seed=str(seed_file), sub_nkeys_seed=str(seed_file))


async def test_wrong_credentials_one_clear_error_line(
    nats_server_factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="meshsync")
    server = nats_server_factory(user="meshsync", password="right")
    sink = NatsSink(nats_options(server.url, nats_user="meshsync", nats_password=SECRET))
    async with Running(Engine([ModelSource([pod("a")])], [sink])) as running:
        attempts = sink.connection_log
        await wait_until(
            lambda: attempts.failures + int(attempts.auth_logged) > 0, what="an attempt"
        )
        # Several attempts happen (every 0.1s here); the error is reported once.
        await wait_until(
            lambda: len(log_lines(caplog, logging.DEBUG, "still rejects the credentials")) >= 3,
            what="retries",
        )
        assert not sink.ready
        errors = log_lines(caplog, logging.ERROR)
        assert len(errors) == 1, errors
        assert "rejected the credentials" in errors[0]
        assert "authorization violation" in errors[0].lower()
        result = await running.stop()
    # The change never reached NATS: the run fails, saying why.
    assert result.exit_code == 1
    assert result.reason.startswith(f"could not connect to NATS at {sink.settings.display} ")
    assert "credentials rejected" in result.reason and "1 change(s) not delivered" in result.reason
    assert SECRET not in caplog.text


async def test_tls_with_ca(nats_server_factory, tls_files: TlsFiles) -> None:
    server = nats_server_factory(tls=tls_files)
    assert server.url.startswith("tls://")
    import ssl

    sub_tls = ssl.create_default_context(cafile=str(tls_files.ca))
    await deliver_one(server.url, nats_tls_ca=str(tls_files.ca), sub_tls=sub_tls)


async def test_mutual_tls_with_client_certificate(nats_server_factory, tls_files: TlsFiles) -> None:
    server = nats_server_factory(tls=tls_files, verify_clients=True)
    import ssl

    sub_tls = ssl.create_default_context(cafile=str(tls_files.ca))
    sub_tls.load_cert_chain(str(tls_files.client_cert), str(tls_files.client_key))
    await deliver_one(
        server.url,
        nats_tls_ca=str(tls_files.ca),
        nats_tls_cert=str(tls_files.client_cert),
        nats_tls_key=str(tls_files.client_key),
        sub_tls=sub_tls,
    )


async def test_tls_server_not_trusted_is_reported(
    nats_server_factory, tls_files: TlsFiles, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="meshsync")
    server = nats_server_factory(tls=tls_files)
    sink = NatsSink(nats_options(server.url))  # no CA: the test CA is not trusted
    async with Running(Engine([ModelSource([pod("a")])], [sink])):
        await wait_until(
            lambda: bool(log_lines(caplog, contains="certificate verify failed")),
            what="TLS failure logged",
        )
        assert not sink.ready


async def test_credentials_file_auth(nats_server_factory, tmp_path: Path) -> None:
    """Decentralised (operator/account/user JWT) authentication with a .creds file."""
    config, creds = make_user_creds(tmp_path / "creds")
    server = nats_server_factory(extra_config=config)
    await deliver_one(server.url, nats_creds=str(creds), sub_user_credentials=str(creds))
