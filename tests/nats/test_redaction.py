"""Secret redaction end to end through the NATS sink: on by default, off on request."""

from __future__ import annotations

import pytest
from meshsync_k8s.redaction import SecretRedaction
from meshsync_nats.sink import NatsSink
from meshsync_testkit.nats_server import NatsServer

from meshsync_core import Engine
from meshsync_core.api import resolve_options
from meshsync_core.plugin_manager import PluginRegistry
from tests.nats.helpers import SECRETS, ModelSource, Running, Subscriber, nats_options

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def secret() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "db",
            "namespace": "default",
            "uid": "uid-db",
            "annotations": {LAST_APPLIED: '{"data":{"password":"aHVudGVyMg=="}}'},
        },
        "type": "Opaque",
        "data": {"password": "aHVudGVyMg==", "user": "YWRtaW4="},
        "stringData": {"note": "plain"},
    }


def transforms_for(redact: bool | None) -> list:
    """The transforms a run would build from these options (via the plugin manager)."""
    manager = PluginRegistry.from_entry_points()
    values = {} if redact is None else {"redact_secrets": redact}
    options = resolve_options(manager, values)
    return [cls(options) for name, cls in manager.transforms.items() if cls.enabled(options)]


@pytest.mark.parametrize("redact", [None, True, False], ids=["default", "on", "off"])
async def test_secret_values_on_the_wire(nats_server: NatsServer, redact: bool | None) -> None:
    transforms = transforms_for(redact)
    assert any(isinstance(t, SecretRedaction) for t in transforms) == (redact is not False)
    source = ModelSource()
    sink = NatsSink(nats_options(nats_server.url))
    subscriber = Subscriber()
    await subscriber.connect(nats_server.url)
    async with Running(Engine([source], [sink], transforms)):
        await source.started()
        await source.apply(secret(), SECRETS)
        (message,) = await subscriber.wait_count(1)
    await subscriber.close()
    obj = message["Object"]
    annotation = obj["metadata"]["annotations"][0]["value"]
    if redact is False:
        assert obj["data"] == '{"password":"aHVudGVyMg==","user":"YWRtaW4="}'
        assert obj["stringData"] == '{"note":"plain"}'
        assert "aHVudGVyMg==" in annotation
    else:
        assert obj["data"] == '{"password":"[REDACTED]","user":"[REDACTED]"}'
        assert obj["stringData"] == '{"note":"[REDACTED]"}'
        assert annotation == "[REDACTED]"


def test_env_opt_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHSYNC_REDACT_SECRETS", "false")
    manager = PluginRegistry.from_entry_points()
    options = resolve_options(manager, {"broker_url": "h:4222", "source": ["k8s"]})
    assert not SecretRedaction.enabled(options)
