"""A cluster's ``proxy-url``: every API request goes through an http proxy (CONNECT for https)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from meshsync_k8s.kubeconfig import load_connection
from meshsync_k8s.proxies import environment_proxy
from meshsync_k8s.source import KubernetesSource
from meshsync_testkit.fake_apiserver import FakeApiServer, demo_cluster

from meshsync_core import ConfigError, Options, StartupError

from .conftest import FAST, start_source


class ForwardProxy:
    """A minimal http proxy: CONNECT tunnels, and absolute-form requests forwarded as they are.

    It records the first line of each connection's first request, and resolves the made-up
    host ``HIDDEN_HOST`` to 127.0.0.1: a client that reaches the API server by that name can
    only have gone through the proxy.
    """

    def __init__(self) -> None:
        self.requests: list[str] = []
        #: Proxy-Authorization of each connection's first request ("" without one).
        self.credentials: list[str] = []
        self._server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> ForwardProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            first, *headers = head.decode().split("\r\n")
            self.requests.append(first)
            self.credentials.append(
                next(
                    (
                        h.split(":", 1)[1].strip()
                        for h in headers
                        if h.lower().startswith("proxy-authorization:")
                    ),
                    "",
                )
            )
            method, target, _version = first.split(" ", 2)
            if method == "CONNECT":
                host, port = target.rsplit(":", 1)
                up_reader, up_writer = await asyncio.open_connection(_resolve(host), int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
            else:  # http target in absolute form: the API server accepts it as it is
                host_port = target.split("://", 1)[1].split("/", 1)[0]
                host, port = host_port.rsplit(":", 1)
                up_reader, up_writer = await asyncio.open_connection(_resolve(host), int(port))
                up_writer.write(head)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()


#: A name only the proxy can resolve (``.invalid`` never resolves in DNS).
HIDDEN_HOST = "fake-apiserver.invalid"


def _resolve(host: str) -> str:
    return "127.0.0.1" if host == HIDDEN_HOST else host


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[ForwardProxy]:
    async with ForwardProxy() as running:
        yield running


def with_proxy(kubeconfig: Path, proxy_url: object, *, hide_server: bool = False) -> Path:
    """Set ``proxy-url`` (unless None); with ``hide_server`` also name the server by a host only
    the proxy resolves (keeping TLS verification for the certificate's ``localhost``)."""
    config = yaml.safe_load(kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    if proxy_url is not None:
        cluster["proxy-url"] = proxy_url
    if hide_server:
        cluster["server"] = cluster["server"].replace("127.0.0.1", HIDDEN_HOST)
        cluster["tls-server-name"] = "localhost"
    kubeconfig.write_text(yaml.safe_dump(config))
    return kubeconfig


async def synced_names(kubeconfig: Path, server: FakeApiServer) -> list[str]:
    """Names seen by a source listing namespaces, plus one created while it watches."""
    running = start_source(kubeconfig, resources=["namespaces"])
    try:
        await running.synced()
        listed = len(running.sink.events)
        server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "live"}})
        await running.sink.wait_for(listed + 1, timeout=10)  # the watch works through it too
    finally:
        result = await running.stop()
    assert result.exit_code == 0, result.reason
    return sorted(running.sink.names)


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https-via-connect"])
async def test_every_request_goes_through_the_proxy(
    tls: bool, proxy: ForwardProxy, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = FakeApiServer(tls=tls)
    await server.start()
    try:
        server.load(demo_cluster())
        kubeconfig = server.write_kubeconfig(tmp_path / "kc")
        # credentials in the URL become Proxy-Authorization (user:secret)
        with_proxy(kubeconfig, proxy.url.replace("://", "://user:secret@"), hide_server=True)
        names = await synced_names(kubeconfig, server)
        expected = sorted(o["metadata"]["name"] for o in server.objects("namespaces"))
        assert names == expected
    finally:
        await server.stop()
    assert proxy.credentials and set(proxy.credentials) == {"Basic dXNlcjpzZWNyZXQ="}
    assert "secret" not in caplog.text  # the proxy password is never logged
    hidden = server.url.replace("127.0.0.1", HIDDEN_HOST)
    if tls:  # a tunnel per connection
        assert proxy.requests
        assert all(r.startswith(f"CONNECT {HIDDEN_HOST}:") for r in proxy.requests)
    else:  # requests in absolute form
        assert proxy.requests and all(r.split(" ")[1].startswith(hidden) for r in proxy.requests)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("socks5://127.0.0.1:1080", "socks5 proxies are not supported; use an http:// proxy-url"),
        ("https://proxy:3128", "https proxies are not supported"),
        ("not a url", "proxy-url must be a URL like http://proxy:3128, not 'not a url'"),
        (3128, "proxy-url must be a URL like http://proxy:3128, not 3128"),
        ("http://proxy:port", "proxy-url has an invalid port"),
    ],
)
def test_bad_proxy_url_is_a_clear_config_error(value: object, message: str, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text(
        "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\n"
    )
    with_proxy(kubeconfig, value)
    with pytest.raises(ConfigError, match="cluster 'c' in ") as caught:
        load_connection(str(kubeconfig))
    assert message in str(caught.value)


async def assert_unreachable(kubeconfig: Path) -> None:
    """Opening the source fails with the one-line start-up error."""
    source = KubernetesSource(Options({"kubeconfig": str(kubeconfig)}), tuning=FAST)
    with pytest.raises(StartupError, match="cannot reach the Kubernetes API server"):
        await source.open()
    await source.close()


async def test_unreachable_proxy_is_one_clear_startup_error(tmp_path: Path) -> None:
    server = FakeApiServer()
    await server.start()
    try:
        kubeconfig = with_proxy(server.write_kubeconfig(tmp_path / "kc"), "http://127.0.0.1:9")
        await assert_unreachable(kubeconfig)
    finally:
        await server.stop()


# -- proxies from the environment (client-go's rule) -----------------------------------------------


@pytest.mark.parametrize(
    ("server", "environ", "expected"),
    [
        ("https://api.example.com:6443", {"HTTPS_PROXY": "http://p:3128"}, "http://p:3128"),
        ("https://api.example.com:6443", {"https_proxy": "p:3128"}, "http://p:3128"),
        ("https://api.example.com:6443", {"HTTP_PROXY": "http://p:3128"}, None),
        ("http://api.example.com", {"HTTP_PROXY": "http://p:3128"}, "http://p:3128"),
        ("https://127.0.0.1:6443", {"HTTPS_PROXY": "http://p:3128"}, None),
        ("https://[::1]:6443", {"HTTPS_PROXY": "http://p:3128"}, None),
        ("https://localhost:6443", {"HTTPS_PROXY": "http://p:3128"}, None),
        ("https://api.example.com", {"HTTPS_PROXY": "http://p", "NO_PROXY": "*"}, None),
        ("https://api.example.com", {"HTTPS_PROXY": "http://p", "NO_PROXY": "example.com"}, None),
        ("https://api.example.com", {"HTTPS_PROXY": "http://p", "no_proxy": ".example.com"}, None),
        (
            "https://myexample.com",
            {"HTTPS_PROXY": "http://p", "NO_PROXY": "example.com"},
            "http://p",
        ),
        ("https://10.96.0.1", {"HTTPS_PROXY": "http://p", "NO_PROXY": "10.96.0.0/12"}, None),
        ("https://10.96.0.1:443", {"HTTPS_PROXY": "http://p", "NO_PROXY": "10.96.0.1:443"}, None),
        (
            "https://10.96.0.1:6443",
            {"HTTPS_PROXY": "http://p", "NO_PROXY": "10.96.0.1:443"},
            "http://p",
        ),
    ],
)
def test_environment_proxy_rules(server: str, environ: dict, expected: str | None) -> None:
    assert environment_proxy(server, environ) == expected


def test_unsupported_environment_proxy_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="environment variable HTTPS_PROXY: socks5 proxies"):
        environment_proxy("https://api.example.com", {"HTTPS_PROXY": "socks5://p:1080"})


async def test_environment_proxy_is_used_and_no_proxy_respected(
    proxy: ForwardProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY carries the traffic to a server only the proxy can resolve; NO_PROXY for that
    host sends the client straight to it, where the name does not resolve."""
    server = FakeApiServer()
    await server.start()
    try:
        server.load(demo_cluster())
        kubeconfig = server.write_kubeconfig(tmp_path / "kc")
        with_proxy(kubeconfig, None, hide_server=True)  # the environment brings the proxy
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        names = await synced_names(kubeconfig, server)
        assert "live" in names and proxy.requests

        monkeypatch.setenv("NO_PROXY", "localhost,.invalid")
        await assert_unreachable(kubeconfig)
    finally:
        await server.stop()
