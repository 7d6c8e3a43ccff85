"""Bad input: clear one-line errors (exit 2) at start-up, warnings and skips at run time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import sys
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from meshsync_k8s.kubeconfig import load_connection
from meshsync_k8s.source import KubernetesSource
from meshsync_testkit.fake_apiserver import FakeApiServer

from meshsync_core import ConfigError, Engine, Options
from meshsync_core.cli import main
from meshsync_core.testing import CaptureSink

from .conftest import FAST, wait_until


async def _run(kubeconfig: Path | str, once: bool = False, **options) -> tuple[int, str]:
    values = {"kubeconfig": str(kubeconfig), **options}
    source = KubernetesSource(Options(values), tuning=FAST)
    result = await Engine([source], [CaptureSink()], once=once, stop_after=30).run()
    return result.exit_code, result.reason


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("clusters: [oops\n", "is not valid YAML (line 2, column 1)"),
        ("- just\n- a list\n", "is not a kubeconfig: expected a mapping"),
        ("apiVersion: v1\nkind: Config\n", "has no current-context; pass --context"),
        (
            "current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n",
            "refers to unknown cluster 'c'",
        ),
        (
            "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
            "clusters: [{name: c, cluster: {server: 'ftp://x'}}]\n",
            "has no valid server URL",
        ),
        (
            "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
            "clusters: [{name: c, cluster: {server: 'https://x', "
            "certificate-authority-data: 'bm90IGEgY2VydA=='}}]\n",
            "invalid cluster 'c' CA",
        ),
    ],
)
async def test_invalid_kubeconfig(tmp_path, content, message) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(content)
    code, reason = await _run(path)
    assert code == 2
    assert message in reason and "\n" not in reason


async def test_missing_and_unreadable_kubeconfig(tmp_path) -> None:
    # A missing file is found when the source is built, before anything starts.
    present, missing = tmp_path / "kc", tmp_path / "nope"
    present.write_text("{}")
    with pytest.raises(ConfigError) as info:
        KubernetesSource(Options({"kubeconfig": f"{present}{os.pathsep}{missing}"}))
    assert str(info.value) == f"kubeconfig {str(missing)!r} does not exist"
    if os.geteuid() != 0:  # root reads anything
        path = tmp_path / "locked"
        path.write_text("{}")
        path.chmod(0)
        code, reason = await _run(path)
        assert code == 2 and "cannot read kubeconfig" in reason


async def test_unknown_context(kubeconfig) -> None:
    code, reason = await _run(kubeconfig, context="prod")
    assert code == 2
    assert reason == f"context 'prod' not found in kubeconfig {str(kubeconfig)!r} (contexts: fake)"


async def test_unreachable_server(tmp_path) -> None:
    path = tmp_path / "kc"
    path.write_text(
        "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
    )
    code, reason = await _run(path)
    assert code == 2
    assert reason.startswith("cannot reach the Kubernetes API server at http://127.0.0.1:9")


async def test_rejected_credentials(tmp_path) -> None:
    server = FakeApiServer(token="right")
    await server.start()
    try:
        path = server.write_kubeconfig(tmp_path / "kc")
        path.write_text(path.read_text().replace("right", "wrong"))
        code, reason = await _run(path)
        assert code == 2 and "rejected the credentials (401 Unauthorized)" in reason
    finally:
        await server.stop()


async def test_exec_credential_plugin(tmp_path) -> None:
    server = FakeApiServer(token="from-plugin")
    await server.start()
    try:
        plugin = tmp_path / "cred.py"
        plugin.write_text(
            f"#!{sys.executable}\nimport json\n"
            'print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1", '
            '"kind": "ExecCredential", "status": {"token": "from-plugin"}}))\n'
        )
        plugin.chmod(plugin.stat().st_mode | stat.S_IEXEC)
        path = tmp_path / "kc"
        path.write_text(
            "current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
            f"clusters: [{{name: c, cluster: {{server: '{server.url}'}}}}]\n"
            f"users: [{{name: u, user: {{exec: {{command: '{plugin}', "
            "apiVersion: client.authentication.k8s.io/v1}}}]\n"
        )
        source = KubernetesSource(Options({"kubeconfig": str(path)}), tuning=FAST)
        sink = CaptureSink(name="c")
        engine = Engine([source], [sink], once=True)
        result = await engine.run()
        assert result.exit_code == 0 and sink.events
    finally:
        await server.stop()


def test_exec_plugin_not_found(tmp_path) -> None:
    path = tmp_path / "kc"
    path.write_text(
        "current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
        "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
        "users: [{name: u, user: {exec: {command: no-such-plugin-xyz, installHint: get it, "
        "apiVersion: client.authentication.k8s.io/v1}}}]\n"
    )
    with pytest.raises(
        ConfigError, match="credential plugin 'no-such-plugin-xyz' not found: get it"
    ):
        load_connection(str(path))


def test_kubeconfig_order_and_in_cluster(tmp_path) -> None:
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("sa-token\n")
    (sa / "namespace").write_text("meshery\n")
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    conn = load_connection(None, None, environ=env, service_account_dir=sa, home=tmp_path)
    assert conn.server == "https://10.0.0.1:443"
    assert conn.headers["Authorization"] == "Bearer sa-token"
    assert conn.origin == "in-cluster service account"
    assert conn.namespace == "meshery"
    # $KUBECONFIG (a merged list) comes after in-cluster; --context skips in-cluster
    one, two = tmp_path / "one", tmp_path / "two"
    one.write_text("clusters: [{name: c, cluster: {server: 'http://a'}}]\n")
    two.write_text(
        "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
        "clusters: [{name: c, cluster: {server: 'http://b'}}]\n"
    )
    env["KUBECONFIG"] = f"{one}{os.pathsep}{tmp_path / 'missing'}{os.pathsep}{two}"
    conn = load_connection(None, "x", environ=env, service_account_dir=sa, home=tmp_path)
    assert conn.server == "http://a"  # first definition of a name wins, like kubectl
    with pytest.raises(ConfigError, match="no Kubernetes configuration found"):
        load_connection(None, None, environ={}, service_account_dir=sa, home=tmp_path)


@pytest.fixture
def restore_logging():
    """``main`` configures the meshsync logger for a terminal; undo it for later tests."""
    logger = logging.getLogger("meshsync")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


def test_cli_prints_one_line_and_exits_2(tmp_path, capsys, restore_logging) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("clusters: [oops\n")
    code = main(["run", "--source", "k8s", "--output", "console", "--kubeconfig", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if "error" in line]
    assert lines == [
        f"meshsync: error: kubeconfig {str(path)!r} is not valid YAML (line 2, column 1): "
        "expected ',' or ']', but got '<stream end>'"
    ]
    assert "Traceback" not in err


def _cm(name: str, uid: object, rv: str = "5") -> dict:
    meta = {"name": name, "namespace": "default", "uid": uid, "resourceVersion": rv}
    return {"metadata": meta, "data": {}}


class MalformedApi:
    """A tiny API server whose configmaps include objects the fake server would never store."""

    def __init__(self) -> None:
        self.items = [
            _cm("good", "u-good"),
            _cm("bad-uid", 123),
            {"apiVersion": "v1", "kind": "ConfigMap", "data": {}},  # no metadata
            {"metadata": ["not", "an", "object"]},
            "not even an object",
        ]
        self.watch_lines = [
            b"this is not json",
            orjson.dumps({"type": "ADDED", "object": _cm("bad-later", 456, "6")}),
            orjson.dumps({"type": "ADDED", "object": _cm("good-later", "u-later", "7")}),
        ]
        self.runner: web.AppRunner | None = None
        self.url = ""
        self.closing = asyncio.Event()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/v1/namespaces/kube-system", self.kube_system)
        app.router.add_get("/api/v1", self.core)
        app.router.add_get("/apis", self.groups)
        app.router.add_get("/api/v1/configmaps", self.configmaps)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self.closing.set()
        if self.runner is not None:
            await self.runner.cleanup()

    async def kube_system(self, request: web.Request) -> web.Response:
        return web.json_response({"metadata": {"name": "kube-system", "uid": "cluster-1"}})

    async def core(self, request: web.Request) -> web.Response:
        resource = {
            "name": "configmaps",
            "kind": "ConfigMap",
            "namespaced": True,
            "singularName": "configmap",
            "shortNames": ["cm"],
            "verbs": ["list", "watch", "get"],
        }
        return web.json_response({"kind": "APIResourceList", "resources": [resource]})

    async def groups(self, request: web.Request) -> web.Response:
        return web.json_response({"kind": "APIGroupList", "groups": []})

    async def configmaps(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") not in ("1", "true"):
            return web.json_response({"metadata": {"resourceVersion": "5"}, "items": self.items})
        resp = web.StreamResponse()
        await resp.prepare(request)
        for line in self.watch_lines:
            await resp.write(line + b"\n")
        with contextlib.suppress(asyncio.TimeoutError):  # hold it open, like a quiet watch
            await asyncio.wait_for(self.closing.wait(), 30)
        return resp


async def test_malformed_objects_are_skipped(tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="meshsync")
    api = MalformedApi()
    await api.start()
    try:
        path = tmp_path / "kc"
        path.write_text(
            "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
            f"clusters: [{{name: c, cluster: {{server: '{api.url}'}}}}]\n"
        )
        options = Options({"kubeconfig": str(path), "resources": ["cm"]})
        source = KubernetesSource(options, tuning=FAST)
        sink = CaptureSink()
        engine = Engine([source], [sink])
        task = asyncio.create_task(engine.run())
        await asyncio.wait_for(sink.synced.wait(), 10)
        assert sink.names == ["good"]
        # at run time too: malformed watch events are skipped, the next good one flows
        await wait_until(lambda: "good-later" in sink.names, what="the good watch event")
        assert sink.names == ["good", "good-later"]
        engine.stop("done")
        await task
    finally:
        await api.stop()
    messages = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    expected = [
        "bad-uid: metadata.uid is 123",
        "skipping malformed object: no metadata",
        "skipping malformed object: metadata is not an object",
        "skipping malformed object: expected an object, got str",
        "undecodable watch event (16 bytes; JSON is malformed",
        "bad-later: metadata.uid is 456",
    ]
    for text in expected:
        assert sum(text in m for m in messages) == 1, (text, messages)
    assert not any("Traceback" in m for m in messages)
    assert not any("this is not json" in m for m in messages)  # a line's content never is


async def test_rotated_token_file_is_reread_on_401(tmp_path) -> None:
    server = FakeApiServer(token="one")
    await server.start()
    try:
        token = tmp_path / "token"
        token.write_text("one\n")
        path = tmp_path / "kc"
        path.write_text(
            "current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
            f"clusters: [{{name: c, cluster: {{server: '{server.url}'}}}}]\n"
            "users: [{name: u, user: {tokenFile: token}}]\n"  # relative to the kubeconfig
        )
        options = Options({"kubeconfig": str(path), "resources": ["cm"]})
        source = KubernetesSource(options, tuning=FAST)
        sink = CaptureSink()
        engine = Engine([source], [sink])
        task = asyncio.create_task(engine.run())
        await asyncio.wait_for(sink.synced.wait(), 10)
        server.token = "two"  # rotation: the old token is refused from now on
        token.write_text("two\n")
        server.faults.drop_connections()
        server.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "after", "namespace": "default"},
            }
        )
        await wait_until(lambda: "after" in sink.names, what="event after token rotation")
        assert source.watch_counts()["lists"] == 1  # the watch resumed; nothing was re-listed
        engine.stop("done")
        await task
    finally:
        await server.stop()


async def test_https_with_ca_data_and_client_certificate(tmp_path) -> None:
    import base64

    import trustme
    import yaml

    server = FakeApiServer(token="t", tls=True)
    await server.start()
    try:
        path = server.write_kubeconfig(tmp_path / "kc")
        config = yaml.safe_load(path.read_text())
        client_cert = trustme.CA().issue_cert("meshsync")
        user = config["users"][0]["user"]
        user["client-certificate-data"] = base64.b64encode(
            b"".join(blob.bytes() for blob in client_cert.cert_chain_pems)
        ).decode()
        user["client-key-data"] = base64.b64encode(client_cert.private_key_pem.bytes()).decode()
        path.write_text(yaml.safe_dump(config))
        code, reason = await _run(path, once=True, resources=["namespaces"])
        assert (code, reason) == (0, "initial sync complete (--once)")

        # without the CA the server's certificate cannot be verified: a clear start-up error
        del config["clusters"][0]["cluster"]["certificate-authority-data"]
        path.write_text(yaml.safe_dump(config))
        code, reason = await _run(path)
        assert code == 2 and "cannot reach the Kubernetes API server at https://" in reason
        assert "certificate verify failed" in reason
    finally:
        await server.stop()
