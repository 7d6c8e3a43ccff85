"""The plugin as the core loads it: sink names, options and their environment variables."""

from __future__ import annotations

from meshsync_nats.plugin import meshsync_add_options
from meshsync_nats.sink import NatsSink

from meshsync_core.plugin_manager import PluginRegistry


def test_sink_is_registered_as_nats_and_broker() -> None:
    manager = PluginRegistry.from_entry_points()
    assert manager.sinks["nats"] is NatsSink
    assert manager.sinks["broker"] is NatsSink


def test_every_option_is_documented_and_has_an_env_var() -> None:
    options = meshsync_add_options()
    assert options
    for option in options:
        assert option.help and option.help.startswith("[nats]"), option.name
        assert option.envvar, option.name
    names = {option.name for option in options}
    assert {"broker_url", "nats_user", "nats_password", "nats_token", "nats_creds"} <= names
    assert {"nats_nkey_seed", "nats_tls_ca", "nats_tls_cert", "nats_tls_key"} <= names
    assert {"nats_jetstream", "nats_stream", "nats_buffer_size", "meshery_ids"} <= names
    by_name = {option.name: option for option in options}
    assert by_name["broker_url"].envvar == "BROKER_URL"
