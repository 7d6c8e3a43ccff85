"""``auth-provider: oidc``: the ID token as bearer token, refreshed at its issuer when expired
or refused - against a fake identity provider over real HTTP."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from meshsync_k8s.kubeconfig import load_connection
from meshsync_testkit.fake_apiserver import FakeApiServer

from meshsync_core import ConfigError

from .conftest import start_source


def jwt(subject: str, expires_in: float) -> str:
    """An unsigned JWT with ``sub`` and ``exp`` (the API server, not MeshSync, checks tokens)."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    claims = {"sub": subject, "exp": int(time.time() + expires_in)}
    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


class FakeIssuer:
    """An OpenID Connect issuer: discovery document and a refresh-token grant that hands out
    ``next_token`` for the refresh token ``r1`` of client ``meshsync`` / ``s3cret`` (client
    credentials in the form or as HTTP basic auth, as RFC 6749 allows)."""

    def __init__(self) -> None:
        self.next_token = jwt("refreshed", 3600)
        self.grants: list[dict[str, str]] = []
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    self._answer(200, {"issuer": issuer.url, "token_endpoint": issuer.url + "/t"})
                else:
                    self._answer(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                basic = self.headers.get("Authorization", "")
                if basic.startswith("Basic "):  # client credentials may come either way
                    client, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
                    form.setdefault("client_id", client)
                    form.setdefault("client_secret", secret)
                issuer.grants.append(form)
                expected = {
                    "grant_type": "refresh_token",
                    "refresh_token": "r1",
                    "client_id": "meshsync",
                    "client_secret": "s3cret",
                }
                if self.path != "/t" or {k: form.get(k) for k in expected} != expected:
                    self._answer(400, {"error": "invalid_grant", "error_description": "r1 only"})
                else:
                    answer = {
                        "id_token": issuer.next_token,
                        "refresh_token": "r1",
                        "access_token": "opaque-access-token",  # OAuth 2 requires these two
                        "token_type": "Bearer",
                        "expires_in": 3600,
                    }
                    self._answer(200, answer)

            def _answer(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeIssuer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def issuer() -> Iterator[FakeIssuer]:
    with FakeIssuer() as running:
        yield running


def oidc_kubeconfig(server_url: str, path: Path, **config: str) -> Path:
    """A kubeconfig for ``server_url`` whose user is an ``auth-provider: oidc`` stanza."""
    path.write_text(
        yaml.safe_dump(
            {
                "current-context": "x",
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [{"name": "c", "cluster": {"server": server_url}}],
                "users": [
                    {"name": "u", "user": {"auth-provider": {"name": "oidc", "config": config}}}
                ],
            }
        )
    )
    return path


def refreshable(issuer: FakeIssuer, id_token: str) -> dict[str, str]:
    return {
        "id-token": id_token,
        "refresh-token": "r1",
        "idp-issuer-url": issuer.url,
        "client-id": "meshsync",
        "client-secret": "s3cret",
    }


async def test_id_token_used_then_refreshed_when_the_api_server_refuses_it(
    issuer: FakeIssuer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    first = jwt("first", 3600)
    server = FakeApiServer(token=first)
    await server.start()
    try:
        kubeconfig = oidc_kubeconfig(server.url, tmp_path / "kc", **refreshable(issuer, first))
        running = start_source(kubeconfig, resources=["namespaces"])
        try:
            await running.synced()
            assert issuer.grants == []  # a valid id-token needs no refresh
            listed = len(running.sink.events)
            server.token = issuer.next_token  # the old token is refused from now on
            server.faults.drop_connections()
            server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "new"}})
            await running.sink.wait_for(listed + 1, timeout=10)
        finally:
            result = await running.stop()
        assert result.exit_code == 0, result.reason
        assert len(issuer.grants) >= 1
    finally:
        await server.stop()
    for secret in ("s3cret", "r1", first, issuer.next_token):
        assert secret not in caplog.text


def test_expired_id_token_is_refreshed_before_first_use(issuer: FakeIssuer, tmp_path: Path) -> None:
    config = refreshable(issuer, jwt("old", -60))
    kubeconfig = oidc_kubeconfig("http://127.0.0.1:1", tmp_path / "kc", **config)
    conn = load_connection(str(kubeconfig))
    assert conn.headers["Authorization"] == f"Bearer {issuer.next_token}"
    assert len(issuer.grants) == 1


def test_failed_refresh_and_bad_oidc_config_are_one_line_errors(
    issuer: FakeIssuer, tmp_path: Path
) -> None:
    server = "http://127.0.0.1:1"  # never contacted: every problem shows while loading
    config = {**refreshable(issuer, jwt("old", -60)), "refresh-token": "revoked"}
    kubeconfig = oidc_kubeconfig(server, tmp_path / "kc", **config)
    with pytest.raises(ConfigError) as caught:
        load_connection(str(kubeconfig))
    message = str(caught.value)
    assert "oidc refresh failed" in message and "answered 400 (invalid_grant)" in message
    assert "revoked" not in message and "s3cret" not in message

    kubeconfig = oidc_kubeconfig(server, tmp_path / "kc2", **{"client-id": "meshsync"})
    with pytest.raises(ConfigError, match="auth-provider oidc needs an id-token"):
        load_connection(str(kubeconfig))

    data = yaml.safe_load(kubeconfig.read_text())
    data["users"][0]["user"] = {"auth-provider": {"name": "gcp", "config": {}}}
    kubeconfig.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="auth-provider 'gcp', which is not supported"):
        load_connection(str(kubeconfig))
