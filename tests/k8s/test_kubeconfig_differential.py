"""``meshsync_k8s.kubeconfig`` against the official ``kubernetes`` client, case by case.

Every kubeconfig in ``kubeconfig_corpus/`` (a ``*.yaml`` file, or a directory whose
``KUBECONFIG`` file lists the files to merge) is loaded for its current context and for each
of its contexts, by our loader and by ``kubernetes.config.load_kube_config``, and the two must
agree on everything that decides where and how to connect: server, CA, client certificate and
key, the Authorization header (after token files, exec plugins and oidc), certificate
verification, tls-server-name, proxy and namespace.

Where they disagree, client-go decides. When the official client is the one that deviates from
client-go, the case is listed in :data:`EXPECTED` with the reason, the fields that differ and
our (client-go's) values, so the test still checks both sides; ``docs/kubernetes.md``
("Kubeconfig semantics") lists the same differences. The corpus is copied to a temporary
directory first: certificates are generated there (trustme), and ``${...}`` placeholders are
filled in (the Python running the exec plugins, a fake oidc issuer, JWTs, certificate data).
"""

from __future__ import annotations

import base64
import os
import shutil
import stat
import string
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml
from aiohttp import web
from meshsync_k8s import kubeconfig
from meshsync_k8s.client import ApiClient
from meshsync_k8s.kubeconfig import Connection, ExecCredential, load_connection

from meshsync_core import ConfigError

from .test_oidc import FakeIssuer, jwt

k8s_config = pytest.importorskip("kubernetes.config", reason="the official client is the reference")
k8s_client = pytest.importorskip("kubernetes.client")

CORPUS = Path(__file__).parent / "kubeconfig_corpus"


# -- what may differ, and why ------------------------------------------------------------------


@dataclass(frozen=True)
class BothRefuse:
    """Neither loader accepts the case; ours says ``message`` (a fragment)."""

    message: str


@dataclass(frozen=True)
class OfficialDeviates:
    """The official client departs from client-go here; we follow client-go.

    ``ours``: the fields that differ, with our (client-go's) values (``${...}`` filled in);
    ``ours_error``: we refuse the case, as client-go does, while the official client loads it;
    ``official_fails``: the official client raises where client-go and we load.
    """

    reason: str
    ours: dict[str, Any] = field(default_factory=dict)
    ours_error: str | None = None
    official_fails: bool = False


@dataclass(frozen=True)
class Limitation:
    """Something client-go supports and we refuse (documented), with our message."""

    reason: str
    ours_error: str


@dataclass(frozen=True)
class Agree:
    """Both loaders agree. ``ours`` pins some values; ``unlike_client_go`` says why both
    deliberately differ from client-go here (documented in docs/kubernetes.md)."""

    ours: dict[str, Any] = field(default_factory=dict)
    unlike_client_go: str = ""


AGREE = Agree()
Expectation = BothRefuse | OfficialDeviates | Limitation | Agree

#: Keyed by case id (``file`` for its current context, ``file@context``); a ``file`` key also
#: covers that file's explicit contexts unless ``file@context`` has its own entry.
EXPECTED: dict[str, Expectation] = {
    "http-server": Agree(
        ours={"authorization": "Bearer static-token"},
        unlike_client_go="client-go sends no credentials to a plain http server",
    ),
    "exec-without-interactive-mode": Agree(
        ours={"authorization": "Bearer exec-token"},
        unlike_client_go="client-go requires interactiveMode with client.authentication.k8s.io/v1",
    ),
    "oidc-id-token-only": Agree(
        ours={"authorization": "Bearer ${jwt_valid}"},
        unlike_client_go="client-go requires idp-issuer-url and client-id even without refreshing",
    ),
    "missing-user": Agree(ours={"authorization": None, "client_cert": None}),
    "server-path": Agree(ours={"host": "https://rancher.example.com/k8s/clusters/c-abc12"}),
    "namespaces": Agree(ours={"namespace": "dev", "authorization": "Bearer alice-token"}),
    "namespaces@prod": Agree(ours={"namespace": "prod", "authorization": "Bearer bob-token"}),
    "namespaces@bare": Agree(ours={"namespace": "default"}),
    "namespaces@local": Agree(ours={"namespace": "kube-system", "authorization": None}),
    "token-file": Agree(ours={"authorization": "Bearer file-token", "ca": "${ca}"}),
    "client-cert-files": Agree(
        ours={"client_cert": "${client_cert}", "client_key": "${client_key}"}
    ),
    "insecure-skip-tls-verify@with-cert": Agree(
        ours={"verify_ssl": False, "client_cert": "${client_cert}"}
    ),
    "tls-server-name": Agree(ours={"tls_server_name": "kubernetes.default.svc"}),
    "proxy-url": Agree(ours={"proxy": "http://user:pw@proxy.example.com:3128"}),
    "exec-env-args": Agree(ours={"authorization": "Bearer token-from-the-environment"}),
    "exec-relative-command": Agree(ours={"authorization": "Bearer relative-command-token"}),
    "exec-provide-cluster-info": Agree(
        ours={"authorization": "Bearer for https://kube.example.com:6443 meshsync-corpus"}
    ),
    "exec-cert": Agree(ours={"authorization": None, "client_cert": "${client_cert}"}),
    "oidc-expired": Agree(ours={"authorization": "Bearer ${jwt_refreshed}"}),
    "token-file-newline": OfficialDeviates(
        "the official client sends a token file as it is, trailing newline included; client-go "
        "trims it",
        ours={"authorization": "Bearer newline-token"},
    ),
    "token-and-token-file": OfficialDeviates(
        "with token and tokenFile, client-go sends the file's token (it re-reads the file and "
        "falls back to token only if that fails); the official client sends token",
        ours={"authorization": "Bearer file-token"},
    ),
    "token-and-basic-auth": OfficialDeviates(
        "client-go refuses a user with a token and basic auth (more than one authentication "
        "method); the official client sends the token",
        ours_error="has both a token and a username/password",
    ),
    "client-cert-file-and-data": OfficialDeviates(
        "client-go refuses client-certificate together with client-certificate-data; the "
        "official client takes the data",
        ours_error="sets both client-certificate and client-certificate-data",
    ),
    "ca-file-and-data": OfficialDeviates(
        "client-go refuses certificate-authority together with certificate-authority-data; "
        "the official client takes the data",
        ours_error="sets both certificate-authority and certificate-authority-data",
    ),
    "insecure-with-ca": OfficialDeviates(
        "client-go refuses a CA together with insecure-skip-tls-verify; the official client "
        "ignores the CA",
        ours_error="sets both insecure-skip-tls-verify and a certificate-authority",
    ),
    "proxy-url-socks5": Limitation(
        "only http:// proxies are supported (client-go also speaks socks5 and https)",
        ours_error="socks5 proxies are not supported",
    ),
    "no-server": OfficialDeviates(
        "client-go refuses a cluster without a server; the official client loads it with an "
        "empty host",
        ours_error="has no valid server URL",
    ),
    "missing-cluster": BothRefuse("refers to unknown cluster 'nowhere'"),
    "no-current-context": BothRefuse("has no current-context; pass --context"),
    "no-current-context@only": AGREE,
    "duplicate-names": OfficialDeviates(
        "client-go refuses to decode a file that defines a name twice; the official client "
        "takes the first definition",
        ours_error="clusters has two entries named 'c'",
    ),
    "exec-and-basic-auth": OfficialDeviates(
        "client-go never runs an exec plugin for a user with basic auth; the official client "
        "prefers the plugin's token",
        ours={"authorization": "Basic " + base64.b64encode(b"admin:secret").decode()},
    ),
    "exec-and-client-cert": OfficialDeviates(
        "client-go never runs an exec plugin for a user with a client certificate; the "
        "official client adds the plugin's token",
        ours={"authorization": None},
    ),
    "exec-token-and-cert": OfficialDeviates(
        "client-go uses both the token and the client certificate a plugin returns; the "
        "official client drops the certificate",
        ours={"client_cert": "${client_cert}", "client_key": "${client_key}"},
    ),
    "exec-wrong-api-version": OfficialDeviates(
        "client-go fails when the plugin answers another apiVersion; the official client logs "
        "the error and connects without credentials",
        ours_error="printed apiVersion 'client.authentication.k8s.io/v1beta1', but the "
        "kubeconfig asks for client.authentication.k8s.io/v1",
    ),
    "exec-failing": OfficialDeviates(
        "client-go fails when the plugin fails; the official client logs it and connects "
        "without credentials",
        ours_error="exited with 3: the plugin failed on purpose",
    ),
    "exec-no-credential": OfficialDeviates(
        "client-go fails when the plugin returns neither a token nor a certificate; the "
        "official client logs it and connects without credentials",
        ours_error="returned neither a token nor a client certificate and key",
    ),
    "exec-without-api-version": OfficialDeviates(
        "client-go requires exec.apiVersion; the official client logs the error and connects "
        "without credentials",
        ours_error="exec needs an apiVersion",
    ),
    "exec-interactive-always": OfficialDeviates(
        "client-go fails for interactiveMode Always without a terminal; the official client "
        "ignores interactiveMode",
        ours_error="interactiveMode Always needs a terminal",
    ),
    "exec-and-auth-provider": OfficialDeviates(
        "client-go refuses a user with both an exec plugin and an auth-provider; the official "
        "client uses the auth-provider",
        ours_error="has both an auth-provider and an exec plugin",
    ),
    "oidc-expiring-soon": OfficialDeviates(
        "the official client refreshes an oidc id-token 5 minutes before it expires, client-go "
        "10 seconds before",
        ours={"authorization": "Bearer ${jwt_soon}"},
    ),
    "oidc-refresh-token-only": OfficialDeviates(
        "client-go fetches an id-token with the refresh-token; the official client requires "
        "an id-token",
        ours={"authorization": "Bearer ${jwt_refreshed}"},
        official_fails=True,
    ),
    "oidc-not-a-jwt": OfficialDeviates(
        "client-go fails for an id-token that is not a JWT; the official client ignores the "
        "provider and connects without credentials",
        ours_error="id-token is not a JWT",
    ),
    "oidc-expired-no-refresh": BothRefuse("has expired (or has no exp claim) and cannot be"),
    "oidc-and-token": OfficialDeviates(
        "client-go's bearer token wins over an auth-provider; the official client prefers the "
        "provider",
        ours={"authorization": "Bearer static-token"},
    ),
    "auth-provider-gcp": OfficialDeviates(
        "client-go removed the gcp auth-provider; the official client still sends its cached "
        "access-token",
        ours_error="auth-provider 'gcp', which is not supported",
    ),
    "merged-current-context": OfficialDeviates(
        "client-go takes the current-context of the first file that sets one; the official "
        "client that of the last",
        ours={
            "host": "https://first.example.com:6443",
            "authorization": "Bearer first-token",
            "namespace": "first",
        },
    ),
    "merged-current-context@first": AGREE,
    "merged-current-context@second": AGREE,
    "merged-relative-paths": OfficialDeviates(
        "client-go resolves a user's relative paths against the user's own file; the official "
        "client against the cluster's file (here: a client certificate that does not exist)",
        ours={
            "client_cert": "${client_cert}",
            "ca": "${ca}",
            "authorization": "Bearer file-token",
        },
        official_fails=True,
    ),
}


# -- the corpus ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    files: tuple[str, ...]  # relative to the corpus
    context: str | None  # None: the current-context


def _cases() -> list[Case]:
    entries: list[tuple[str, tuple[str, ...]]] = []
    for path in sorted(CORPUS.iterdir()):
        if path.suffix == ".yaml":
            entries.append((path.stem, (path.name,)))
        elif (path / "KUBECONFIG").exists():
            listed = (path / "KUBECONFIG").read_text().split()
            entries.append((path.name, tuple(f"{path.name}/{name}" for name in listed)))
    cases = []
    for name, files in entries:
        contexts: list[str] = []
        for file in files:
            data = yaml.safe_load((CORPUS / file).read_text()) or {}
            for entry in data.get("contexts") or []:
                if entry["name"] not in contexts:
                    contexts.append(entry["name"])
        cases.append(Case(name, files, None))
        cases.extend(Case(f"{name}@{ctx}", files, ctx) for ctx in contexts)
    return cases


CASES = _cases()


def _expected(case: Case) -> Expectation:
    if case.id in EXPECTED:
        return EXPECTED[case.id]
    return EXPECTED.get(case.id.split("@")[0], AGREE)


@dataclass
class Corpus:
    root: Path
    values: dict[str, str]

    def paths(self, case: Case) -> str:
        return os.pathsep.join(str(self.root / file) for file in case.files)

    def fill(self, value: Any) -> Any:
        return string.Template(value).substitute(self.values) if isinstance(value, str) else value

    def runs(self, counter: str) -> int:
        path = self.root / "runs" / counter
        return len(path.read_text().splitlines()) if path.exists() else 0


def build_corpus(target: Path, issuer: FakeIssuer) -> Corpus:
    """Copy the corpus to ``target``: certificates generated, placeholders filled in."""
    root = target / "corpus"
    shutil.copytree(CORPUS, root)
    ca = trustme.CA()
    client = ca.issue_cert("meshsync-corpus.example")
    pki = root / "pki"
    pki.mkdir()
    pems = {
        "ca": ca.cert_pem.bytes().decode(),
        "client_cert": client.cert_chain_pems[0].bytes().decode(),
        "client_key": client.private_key_pem.bytes().decode(),
    }
    (pki / "ca.crt").write_text(pems["ca"])
    (pki / "client.crt").write_text(pems["client_cert"])
    (pki / "client.key").write_text(pems["client_key"])
    # a relative command: a script next to the kubeconfigs, started through its #! line
    (root / "bin").mkdir()
    script = root / "bin" / "cred"
    script.write_text(f"#!{sys.executable}\n" + (root / "plugins" / "cred.py").read_text())
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    values = {
        **pems,
        **{f"{k}_data": base64.b64encode(v.encode()).decode() for k, v in pems.items()},
        "python": sys.executable,
        "corpus": str(root),
        "issuer": issuer.url,
        "jwt_valid": jwt("corpus", 365 * 86400),
        "jwt_expired": jwt("expired", -3600),
        "jwt_soon": jwt("soon", 180),
        "jwt_refreshed": issuer.next_token,
    }
    for path in root.rglob("*"):
        if path.suffix == ".yaml":
            path.write_text(string.Template(path.read_text()).substitute(values))
    return Corpus(root, values)


@pytest.fixture(scope="module")
def issuer() -> Iterator[FakeIssuer]:
    with FakeIssuer() as running:
        yield running


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, issuer: FakeIssuer) -> Corpus:
    return build_corpus(tmp_path_factory.mktemp("kubeconfig"), issuer)


# -- the two loaders, seen the same way ------------------------------------------------------------

TLS_FIELDS = ("ca", "client_cert", "client_key", "verify_ssl", "tls_server_name")


def _read(path: str | None) -> str | None:
    return Path(path).read_text() if path else None


def _tls_only_for_https(view: dict[str, Any]) -> dict[str, Any]:
    """Plain http never uses TLS settings (the official client does not even read them)."""
    if not str(view["host"]).startswith("https://"):
        for name in TLS_FIELDS:
            view.pop(name, None)
    return view


def ours(conn: Connection) -> dict[str, Any]:
    return _tls_only_for_https(
        {
            "host": conn.server,
            "authorization": conn.headers.get("Authorization"),
            "ca": conn.ca_pem,
            "client_cert": conn.client_cert.decode() if conn.client_cert else None,
            "client_key": conn.client_key.decode() if conn.client_key else None,
            "verify_ssl": not conn.insecure,
            "tls_server_name": conn.server_hostname,
            "proxy": conn.proxy,
            "namespace": conn.namespace,
        }
    )


def official(paths: str, context: str | None) -> dict[str, Any]:
    cfg = k8s_client.Configuration()
    k8s_config.load_kube_config(
        config_file=paths, context=context, client_configuration=cfg, persist_config=False
    )
    # the context load_kube_config chose (list_kube_config_contexts needs a current-context)
    loader = k8s_config.kube_config._get_kube_config_loader(filename=paths, active_context=context)
    chosen = loader.current_context
    return _tls_only_for_https(
        {
            "host": cfg.host,
            # the header the client sends: the refresh hook (exec expiry) runs first
            "authorization": cfg.auth_settings().get("BearerToken", {}).get("value"),
            "ca": _read(cfg.ssl_ca_cert),
            "client_cert": _read(cfg.cert_file),
            "client_key": _read(cfg.key_file),
            "verify_ssl": cfg.verify_ssl,
            "tls_server_name": cfg.tls_server_name,
            "proxy": cfg.proxy,
            "namespace": chosen["context"].get("namespace") or "default",
        }
    )


@pytest.fixture
def insecure_oauth(monkeypatch: pytest.MonkeyPatch) -> None:
    # the official client refreshes oidc tokens with requests-oauthlib, which refuses the fake
    # issuer's plain http unless told otherwise
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
@pytest.mark.usefixtures("insecure_oauth")
def test_corpus_case(case: Case, corpus: Corpus) -> None:
    expected = _expected(case)
    paths = corpus.paths(case)
    ours_error: ConfigError | None = None
    try:
        mine = ours(load_connection(paths, case.context, environ={}, home=corpus.root))
    except ConfigError as exc:
        ours_error = exc
    official_error: Exception | None = None
    try:
        theirs = official(paths, case.context)
    except Exception as exc:
        official_error = exc

    if ours_error is not None:
        assert "\n" not in str(ours_error), "a ConfigError is one line"
        refusals = (BothRefuse, Limitation, OfficialDeviates)
        wanted = getattr(expected, "message", None) or getattr(expected, "ours_error", None)
        assert isinstance(expected, refusals) and wanted, f"we refuse: {ours_error}"
        assert wanted in str(ours_error)
        if isinstance(expected, BothRefuse):
            assert official_error is not None, "the official client loads it"
        else:
            assert official_error is None, f"the official client refuses too: {official_error}"
        return
    assert isinstance(expected, (Agree, OfficialDeviates)), "we load it"
    assert not getattr(expected, "ours_error", None), "we load it"
    wanted = {k: corpus.fill(v) for k, v in expected.ours.items()}
    assert {k: mine.get(k) for k in wanted} == wanted
    if isinstance(expected, OfficialDeviates) and expected.official_fails:
        assert official_error is not None, "the official client loads it now"
        return
    assert official_error is None, f"only the official client fails: {official_error!r}"
    differing = {k for k in mine if mine[k] != theirs.get(k)}
    should_differ = set(wanted) if isinstance(expected, OfficialDeviates) else set()
    assert differing == should_differ, {k: (mine[k], theirs.get(k)) for k in differing}


def test_expectations_name_corpus_cases() -> None:
    ids = {c.id for c in CASES} | {c.id.split("@")[0] for c in CASES}
    assert set(EXPECTED) <= ids, set(EXPECTED) - ids
    assert len(CASES) > 80  # every file, for its current context and each explicit one


# -- beyond the field comparison -------------------------------------------------------------------


@pytest.fixture
def fresh(tmp_path: Path, issuer: FakeIssuer) -> Corpus:
    """A corpus of its own, so plugin run counters start at zero."""
    return build_corpus(tmp_path, issuer)


def test_exec_plugin_is_not_run_when_the_user_has_other_credentials(fresh: Corpus) -> None:
    for name, authorization in [
        ("exec-and-token", "Bearer static-token"),
        ("exec-and-basic-auth", "Basic YWRtaW46c2VjcmV0"),
        ("exec-and-client-cert", None),
    ]:
        conn = load_connection(str(fresh.root / f"{name}.yaml"), environ={})
        assert conn.headers.get("Authorization") == authorization
        assert conn.exec_plugin is None
        assert fresh.runs(name) == 0, name


def test_unknown_user_connects_without_credentials_and_warns(corpus: Corpus) -> None:
    conn = load_connection(str(corpus.root / "missing-user.yaml"), environ={})
    assert "Authorization" not in conn.headers and conn.client_cert is None
    assert len(conn.warnings) == 1
    assert "refers to unknown user 'ghost'" in conn.warnings[0]
    assert "connecting without credentials" in conn.warnings[0]


def _exec_kubeconfig(path: Path, corpus: Corpus, *args: str, server: str | None = None) -> Path:
    config = {
        "current-context": "x",
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [{"name": "c", "cluster": {"server": server or "http://127.0.0.1:1"}}],
        "users": [
            {
                "name": "u",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1",
                        "interactiveMode": "Never",
                        "command": sys.executable,
                        "args": [str(corpus.root / "plugins" / "cred.py"), *args],
                    }
                },
            }
        ],
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _later(seconds: float):
    return lambda: time.time() + seconds


def test_exec_credential_is_cached_until_its_expiration(fresh: Corpus, tmp_path: Path) -> None:
    args = ("--token", "tok", "--numbered", "--count", "expiring", "--expires-in", "3600")
    path = _exec_kubeconfig(tmp_path / "kc", fresh, *args)
    conn = load_connection(str(path), environ={})
    plugin = conn.exec_plugin
    assert plugin is not None and conn.headers["Authorization"] == "Bearer tok-1"
    assert not conn.credentials_due()
    # the process-wide cache, as in client-go: loading again does not run the plugin again
    again = load_connection(str(path), environ={})
    assert again.exec_plugin is plugin and again.headers["Authorization"] == "Bearer tok-1"
    plugin.clock = _later(3000)  # well before it (the plugin may have run seconds ago)
    assert not conn.credentials_due() and fresh.runs("expiring") == 1
    plugin.clock = _later(3700)  # past expirationTimestamp: renewed before the next request
    assert conn.credentials_due()
    conn.refresh_due()
    assert conn.headers["Authorization"] == "Bearer tok-2" and fresh.runs("expiring") == 2
    plugin.clock = time.time
    assert not conn.credentials_due()
    assert again.credentials_due()  # the other connection picks the new credential up
    again.refresh_due()
    assert again.headers["Authorization"] == "Bearer tok-2" and fresh.runs("expiring") == 2
    # a 401 runs it again, once, however many requests were refused with the same token
    assert conn.refresh_credentials("Bearer tok-2")
    assert conn.headers["Authorization"] == "Bearer tok-3"
    assert conn.refresh_credentials("Bearer tok-2")
    assert fresh.runs("expiring") == 3


def test_exec_credential_without_expiration_lasts_until_refused(
    fresh: Corpus, tmp_path: Path
) -> None:
    path = _exec_kubeconfig(tmp_path / "kc", fresh, "--token", "t", "--numbered", "--count", "n")
    conn = load_connection(str(path), environ={})
    assert conn.exec_plugin is not None
    conn.exec_plugin.clock = _later(10 * 365 * 86400)
    assert not conn.credentials_due() and fresh.runs("n") == 1
    assert conn.refresh_credentials(conn.headers["Authorization"])
    assert conn.headers["Authorization"] == "Bearer t-2"


def test_official_client_exec_caching(fresh: Corpus, tmp_path: Path) -> None:
    """What the official client does, pinned (docs/kubernetes.md compares it with ours)."""

    def header_after_requests(counter: str, *args: str) -> list[str]:
        path = _exec_kubeconfig(tmp_path / counter, fresh, "--count", counter, *args)
        cfg = k8s_client.Configuration()
        k8s_config.load_kube_config(str(path), client_configuration=cfg, persist_config=False)
        return [cfg.auth_settings()["BearerToken"]["value"] for _ in range(3)]

    # no expiry: run once, for the life of the configuration (and never again on a 401)
    assert header_after_requests("none", "--token", "t", "--numbered") == ["Bearer t-1"] * 3
    # an hour: cached
    assert (
        header_after_requests("hour", "--token", "t", "--numbered", "--expires-in", "3600")
        == ["Bearer t-1"] * 3
    )
    # two minutes: inside its 5-minute margin, so the plugin runs before every request
    tokens = header_after_requests("soon", "--token", "t", "--numbered", "--expires-in", "120")
    assert tokens == ["Bearer t-2", "Bearer t-3", "Bearer t-4"] and fresh.runs("soon") == 4


async def test_api_client_renews_an_expired_exec_credential_before_the_request(
    fresh: Corpus, tmp_path: Path
) -> None:
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response({"kind": "Namespace", "metadata": {"name": "kube-system"}})

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        args = ("--token", "tok", "--numbered", "--count", "api", "--expires-in", "60")
        path = _exec_kubeconfig(tmp_path / "kc", fresh, *args, server=f"http://127.0.0.1:{port}")
        conn = load_connection(str(path), environ={})
        client = ApiClient(conn)
        try:
            await client.get("/api/v1/namespaces/kube-system")
            assert conn.exec_plugin is not None
            conn.exec_plugin.clock = _later(61)
            await client.get("/api/v1/namespaces/kube-system")
            conn.exec_plugin.clock = time.time
            await client.get("/api/v1/namespaces/kube-system")
        finally:
            await client.close()
    finally:
        await runner.cleanup()
    assert seen == ["Bearer tok-1", "Bearer tok-2", "Bearer tok-2"]  # renewed without a 401
    assert fresh.runs("api") == 2


def test_an_expired_oidc_token_is_refreshed_before_the_next_request(
    corpus: Corpus, issuer: FakeIssuer
) -> None:
    conn = load_connection(str(corpus.root / "oidc.yaml"), environ={})
    assert conn.oidc is not None and not conn.credentials_due()
    conn.oidc.id_token = jwt("expired-meanwhile", 5)  # inside client-go's 10 s margin
    assert conn.credentials_due()
    conn.refresh_due()
    assert conn.headers["Authorization"] == f"Bearer {issuer.next_token}"
    assert not conn.credentials_due()


def test_a_rotated_exec_client_certificate_gets_a_new_tls_context(corpus: Corpus) -> None:
    conn = load_connection(str(corpus.root / "exec-cert.yaml"), environ={})
    first = conn.ssl
    assert conn.client_cert == corpus.values["client_cert"].encode()
    assert conn.tls_generation == 0
    leaf = trustme.CA().issue_cert("rotated.example")
    rotated = (leaf.cert_chain_pems[0].bytes(), leaf.private_key_pem.bytes())
    conn._apply_exec(ExecCredential(None, rotated, None))
    assert conn.client_cert == rotated[0] and conn.tls_generation == 1
    assert conn.ssl is not first and not isinstance(conn.ssl, bool)


def test_expiration_timestamps() -> None:
    parse = kubeconfig._rfc3339
    assert parse("1970-01-01T00:00:00Z") == 0
    assert parse("1970-01-01T01:00:00+01:00") == 0
    assert parse("2024-05-06T07:08:09.123456789Z") == pytest.approx(1714979289.123456789)
    for bad in ("yesterday", "2024-05-06", "2024-13-01T00:00:00Z", 12):
        assert parse(bad) is None
