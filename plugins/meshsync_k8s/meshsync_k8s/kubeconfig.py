"""Where the API server is and how to authenticate: kubeconfig files or the in-cluster account.

We parse kubeconfig ourselves (PyYAML) instead of going through a client library so that every
problem becomes a one-line :class:`ConfigError` naming the file, context, cluster or user at
fault. Supported: server URL, CA file/data, ``insecure-skip-tls-verify``, ``tls-server-name``,
client certificate/key (file or data), bearer token / ``tokenFile``, basic auth, ``exec``
credential plugins (client.authentication.k8s.io ``ExecCredential``), the ``oidc``
auth-provider and an http ``proxy-url``. Other auth-providers (gcp, azure: removed from client-go)
are reported as unsupported (use an ``exec`` plugin).

The semantics are client-go's (``tools/clientcmd``, ``transport``, the exec and oidc plugins),
checked field by field against the official ``kubernetes`` Python client by
``tests/k8s/test_kubeconfig_differential.py``; ``docs/kubernetes.md`` ("Kubeconfig semantics")
lists where, and why, we differ from either. In short:

* merging: the first file defining a name wins, and so does the first ``current-context``; a
  name defined twice in one file is an error;
* relative paths are relative to the file that defined the cluster or user;
* precedence: ``token``/``tokenFile`` and basic auth exclude each other; an ``exec`` plugin
  runs only when the user has no token, basic auth or client certificate; the ``oidc``
  provider is used only without a token or basic auth; a token file wins over ``token``;
* an ``exec`` plugin's credentials are cached (per process, like client-go) until their
  ``expirationTimestamp``, without one until the API server answers 401;
* a context naming a user that does not exist connects without credentials (a warning).

Lookup order (Go MeshSync's): explicit ``--kubeconfig`` > in-cluster service account >
``$KUBECONFIG`` (a list separated by ``os.pathsep``, merged like kubectl does) >
``~/.kube/config``. ``--context`` always means a kubeconfig, so it skips the in-cluster step.

The in-cluster files (``token``, ``ca.crt``, ``namespace``) are read from
``/var/run/secrets/kubernetes.io/serviceaccount``, or from the directory named by
``MESHSYNC_SERVICE_ACCOUNT_DIR`` when that is set (a token projected elsewhere; the tests).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from meshsync_core import ConfigError, yaml_problem
from meshsync_k8s.oidc import OidcProvider
from meshsync_k8s.proxies import environment_proxy, proxy_url

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
#: Names another directory holding the in-cluster ``token``, ``ca.crt`` and ``namespace``.
SERVICE_ACCOUNT_DIR_ENV = "MESHSYNC_SERVICE_ACCOUNT_DIR"

#: The ``ExecCredential`` versions client-go speaks.
EXEC_API_VERSIONS = (
    "client.authentication.k8s.io/v1",
    "client.authentication.k8s.io/v1beta1",
    "client.authentication.k8s.io/v1alpha1",
)
#: The cluster extension handed to ``provideClusterInfo`` plugins as ``spec.cluster.config``.
EXEC_CLUSTER_EXTENSION = "client.authentication.k8s.io/exec"
EXEC_TIMEOUT = 60.0

#: Builds the TLS context for a client certificate (or none); kept to rebuild it on rotation.
TlsFactory = Callable[[tuple[bytes, bytes] | None], ssl.SSLContext | bool]


@dataclass(frozen=True)
class ExecCredential:
    """What one run of a credential plugin returned."""

    token: str | None
    #: PEM client certificate and key.
    cert: tuple[bytes, bytes] | None
    #: ``expirationTimestamp`` as a Unix time; None: valid until the API server refuses it.
    expires: float | None


class ExecPlugin:
    """A client-go credential plugin (``users[].user.exec``) and its cached credential.

    As in client-go, the credential is kept until its ``expirationTimestamp`` has passed
    (without one: for the life of the process) or until the API server answers 401, and one
    instance is shared by every connection with the same configuration (:func:`exec_plugin`).
    """

    def __init__(
        self, config: dict[str, Any], base: Path, what: str, cluster: dict[str, Any] | None
    ) -> None:
        self.what = what
        command = config.get("command")
        if not isinstance(command, str) or not command:
            raise ConfigError(f"{what}: exec needs a command")
        # client-go resolves a command with a path separator against the kubeconfig's directory
        # and looks a bare name up in PATH.
        if "/" in command and not os.path.isabs(command):
            command = str(base / command)
        self.command = command
        api_version = config.get("apiVersion")
        if not api_version:
            raise ConfigError(
                f"{what}: exec needs an apiVersion (one of {', '.join(EXEC_API_VERSIONS)})"
            )
        if api_version not in EXEC_API_VERSIONS:
            raise ConfigError(
                f"{what}: exec apiVersion {api_version!r} is not one of "
                f"{', '.join(EXEC_API_VERSIONS)}"
            )
        self.api_version = str(api_version)
        args = config.get("args") or []
        if not isinstance(args, list):
            raise ConfigError(f"{what}: exec args must be a list")
        self.args = [str(a) for a in args]
        self.env: dict[str, str] = {}
        env = config.get("env") or []
        if not isinstance(env, list):
            raise ConfigError(f"{what}: exec env must be a list of name/value pairs")
        for index, item in enumerate(env):
            if not isinstance(item, dict) or not item.get("name"):
                raise ConfigError(f"{what}: exec env[{index}] has no name")
            self.env[str(item["name"])] = str(item.get("value") or "")
        mode = config.get("interactiveMode") or "Never"
        if mode == "Always":
            raise ConfigError(
                f"{what}: exec interactiveMode Always needs a terminal; MeshSync runs "
                "credential plugins non-interactively (use Never or IfAvailable)"
            )
        if mode not in ("Never", "IfAvailable"):
            raise ConfigError(
                f"{what}: exec interactiveMode must be Never, IfAvailable or Always, not {mode!r}"
            )
        hint = config.get("installHint")
        self.install_hint = hint.strip() if isinstance(hint, str) else ""
        self.cluster = cluster if config.get("provideClusterInfo") is True else None
        #: Time source for expiry (tests move it forward).
        self.clock: Callable[[], float] = time.time
        #: How often the plugin ran (for tests and debugging).
        self.runs = 0
        self.current: ExecCredential | None = None
        self._lock = threading.Lock()

    def expired(self) -> bool:
        """No credential yet, or its expirationTimestamp has passed (client-go: no margin)."""
        cred = self.current
        return cred is None or (cred.expires is not None and self.clock() > cred.expires)

    def credential(self) -> ExecCredential:
        """The cached credential, or a fresh one when it has expired."""
        with self._lock:
            if self.current is None or self.expired():
                self.current = self._run()
            return self.current

    def refresh(self, refused: ExecCredential | None) -> ExecCredential:
        """After a 401 with ``refused``: run again, unless another request already did."""
        with self._lock:
            if self.current is None or self.current is refused:
                self.current = self._run()
            return self.current

    def _run(self) -> ExecCredential:
        spec: dict[str, Any] = {"interactive": False}
        if self.cluster is not None:
            spec["cluster"] = self.cluster
        info = {"apiVersion": self.api_version, "kind": "ExecCredential", "spec": spec}
        env = {**os.environ, **self.env, "KUBERNETES_EXEC_INFO": json.dumps(info)}
        name = f"{self.what}: credential plugin {self.command!r}"
        try:
            done = subprocess.run(
                [self.command, *self.args],
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=EXEC_TIMEOUT,
                check=False,
            )
        except FileNotFoundError:
            hint = f": {self.install_hint}" if self.install_hint else ""
            raise ConfigError(f"{name} not found{hint}") from None
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ConfigError(f"{name} failed: {exc}") from None
        self.runs += 1
        if done.returncode != 0:
            detail = done.stderr.decode(errors="replace").strip().splitlines()
            raise ConfigError(
                f"{name} exited with {done.returncode}" + (f": {detail[-1]}" if detail else "")
            )
        return self._parse(done.stdout, name)

    def _parse(self, stdout: bytes, name: str) -> ExecCredential:
        try:
            data = json.loads(stdout)
        except ValueError:
            data = None
        if not isinstance(data, dict) or data.get("kind") != "ExecCredential":
            raise ConfigError(f"{name} printed no ExecCredential")
        if data.get("apiVersion") != self.api_version:
            raise ConfigError(
                f"{name} printed apiVersion {data.get('apiVersion')!r}, but the kubeconfig "
                f"asks for {self.api_version}"
            )
        status = data.get("status")
        if not isinstance(status, dict):
            raise ConfigError(f"{name} printed an ExecCredential without a status")
        token = status.get("token") or ""
        cert = status.get("clientCertificateData") or ""
        key = status.get("clientKeyData") or ""
        if not all(isinstance(value, str) for value in (token, cert, key)):
            raise ConfigError(f"{name} printed an ExecCredential with non-string fields")
        if not token and not cert and not key:
            raise ConfigError(f"{name} returned neither a token nor a client certificate and key")
        if bool(cert) != bool(key):
            raise ConfigError(f"{name} returned only one of clientCertificateData, clientKeyData")
        expires = None
        if status.get("expirationTimestamp") is not None:
            expires = _rfc3339(status["expirationTimestamp"])
            if expires is None:
                raise ConfigError(
                    f"{name} printed an invalid expirationTimestamp "
                    f"{status['expirationTimestamp']!r}"
                )
        pair = (cert.encode(), key.encode()) if cert else None
        return ExecCredential(token or None, pair, expires)


_EXEC_PLUGINS: dict[str, ExecPlugin] = {}
_EXEC_PLUGINS_LOCK = threading.Lock()


def exec_plugin(config: Any, base: Path, what: str, cluster: dict[str, Any] | None) -> ExecPlugin:
    """The process-wide plugin for this configuration: like client-go's authenticator cache,
    every connection with the same exec stanza and cluster shares one cached credential."""
    if not isinstance(config, dict):
        raise ConfigError(f"{what}: exec must be a mapping with a command")
    plugin = ExecPlugin(config, base, what, cluster)
    key = json.dumps(
        [plugin.command, plugin.args, plugin.env, plugin.api_version, plugin.cluster, what],
        sort_keys=True,
        default=str,
    )
    with _EXEC_PLUGINS_LOCK:
        return _EXEC_PLUGINS.setdefault(key, plugin)


@dataclass
class Connection:
    """Everything needed to open HTTP sessions to one API server."""

    server: str
    #: ``None`` for plain http, ``False`` to skip verification, else a context.
    ssl: ssl.SSLContext | bool | None
    headers: dict[str, str] = field(default_factory=dict)
    #: Human description for messages: ``kubeconfig /x (context fake)``.
    origin: str = ""
    context: str = ""
    #: The context's namespace (``default`` when it names none, as in kubectl).
    namespace: str = "default"
    #: ``tls-server-name``: the name the server certificate is checked against (and SNI).
    server_hostname: str | None = None
    #: The PEM the server certificate is checked against; None: the system's CAs.
    ca_pem: str | None = None
    #: ``insecure-skip-tls-verify``: the server certificate is not checked.
    insecure: bool = False
    #: The PEM client certificate and key presented to the server (kubeconfig or exec plugin).
    client_cert: bytes | None = None
    client_key: bytes | None = None
    #: Token file re-read on 401 (service-account tokens rotate).
    token_file: Path | None = None
    #: The exec credential plugin, re-run when its credential expires and on 401.
    exec_plugin: ExecPlugin | None = None
    #: ``proxy-url`` of the cluster: an ``http://`` proxy every request goes through.
    proxy: str | None = None
    #: ``auth-provider: oidc``: its ID token is refreshed on 401 (and when expired).
    oidc: OidcProvider | None = None
    #: Things worth a log line that do not stop us (a context naming an unknown user).
    warnings: list[str] = field(default_factory=list)
    #: Incremented when ``ssl`` was replaced (a rotated exec client certificate): sessions
    #: opened with the old one must be closed, as client-go closes its connections.
    tls_generation: int = 0
    _tls: TlsFactory | None = field(default=None, repr=False)
    _exec_applied: ExecCredential | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def credentials_due(self) -> bool:
        """Cheap check before a request: has a credential expired that can be renewed?"""
        plugin = self.exec_plugin
        if plugin is not None and (plugin.expired() or plugin.current is not self._exec_applied):
            return True
        return self.oidc is not None and self.oidc.due

    def refresh_due(self) -> None:
        """Renew what :meth:`credentials_due` found expired (blocking: run it in a thread)."""
        with self._lock:
            if self.exec_plugin is not None:
                self._apply_exec(self.exec_plugin.credential())
            if self.oidc is not None and self.oidc.due:
                self.headers["Authorization"] = f"Bearer {self.oidc.refresh()}"

    def refresh_credentials(self, refused: str | None = None) -> bool:
        """After a 401: renew rotating credentials; True if retrying could help.

        ``refused`` is the Authorization header the API server refused; when it has already
        been replaced (another request refreshed first), nothing is run again.
        """
        with self._lock:
            if refused is not None and self.headers.get("Authorization") != refused:
                return True
            if self.token_file is not None:
                token = _read_text(self.token_file, "token file").strip()
                if token:
                    self.headers["Authorization"] = f"Bearer {token}"
                return True
            if self.exec_plugin is not None:
                self._apply_exec(self.exec_plugin.refresh(self._exec_applied))
                return True
            if self.oidc is not None and self.oidc.can_refresh:
                self.headers["Authorization"] = f"Bearer {self.oidc.refresh()}"
                return True
            return False

    def _apply_exec(self, cred: ExecCredential) -> None:
        if cred is self._exec_applied:
            return
        pair = cred.cert or (None, None)
        rotated = pair != (self.client_cert, self.client_key)
        # a rotated certificate needs a new context (and new connections); build it first, so
        # that a bad certificate changes nothing
        context = self._tls(cred.cert) if rotated and self._tls is not None else None
        if cred.token:
            self.headers["Authorization"] = f"Bearer {cred.token}"
        else:
            self.headers.pop("Authorization", None)
        if rotated:
            self.client_cert, self.client_key = pair
        if context is not None:
            self.ssl = context
            self.tls_generation += 1
        self._exec_applied = cred


def load_connection(
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    *,
    environ: Mapping[str, str] = os.environ,
    service_account_dir: Path | None = None,
    home: Path | None = None,
) -> Connection:
    """Resolve the connection in Go MeshSync's order; raise ConfigError naming the problem.

    ``service_account_dir`` defaults to ``$MESHSYNC_SERVICE_ACCOUNT_DIR``, else
    :data:`SERVICE_ACCOUNT_DIR`.
    """
    if service_account_dir is None:
        override = environ.get(SERVICE_ACCOUNT_DIR_ENV, "")
        service_account_dir = Path(override).expanduser() if override else SERVICE_ACCOUNT_DIR
    conn = _locate(kubeconfig, context, environ, service_account_dir, home)
    if conn.proxy is None:  # no proxy-url: the environment may ask for one, as in client-go
        conn.proxy = environment_proxy(conn.server, environ)
    return conn


def _locate(
    kubeconfig: str | os.PathLike[str] | None,
    context: str | None,
    environ: Mapping[str, str],
    service_account_dir: Path,
    home: Path | None,
) -> Connection:
    if kubeconfig:
        files = [Path(p).expanduser() for p in str(kubeconfig).split(os.pathsep) if p]
        for file in files:
            if not file.exists():
                raise ConfigError(f"kubeconfig {str(file)!r} does not exist")
        return _from_kubeconfig(files, context)
    if not context and _in_cluster_available(environ, service_account_dir):
        return in_cluster_connection(environ, service_account_dir)
    env_value = environ.get("KUBECONFIG", "")
    if env_value:
        listed = [Path(p).expanduser() for p in env_value.split(os.pathsep) if p]
        files = [file for file in listed if file.exists()]
        if not files:
            raise ConfigError(
                f"KUBECONFIG={env_value!r}: no such file; fix it or pass --kubeconfig"
            )
        return _from_kubeconfig(files, context)
    default = (home or Path.home()) / ".kube" / "config"
    if default.exists():
        return _from_kubeconfig([default], context)
    raise ConfigError(
        "no Kubernetes configuration found: pass --kubeconfig, set KUBECONFIG, create "
        "~/.kube/config, or run in a pod with a service account"
    )


def _in_cluster_available(environ: Mapping[str, str], sa_dir: Path) -> bool:
    return bool(
        environ.get("KUBERNETES_SERVICE_HOST")
        and environ.get("KUBERNETES_SERVICE_PORT")
        and (sa_dir / "token").exists()
    )


def in_cluster_connection(environ: Mapping[str, str], sa_dir: Path) -> Connection:
    """The pod's service account: token + CA under ``sa_dir``, host/port from the environment."""
    host = environ["KUBERNETES_SERVICE_HOST"]
    port = environ["KUBERNETES_SERVICE_PORT"]
    if ":" in host:  # IPv6
        host = f"[{host}]"
    token_file = sa_dir / "token"
    token = _read_text(token_file, "service account token").strip()
    ca_file = sa_dir / "ca.crt"
    ca_pem = _read_text(ca_file, "in-cluster CA") if ca_file.exists() else None
    namespace_file = sa_dir / "namespace"
    namespace = "default"
    if namespace_file.exists():
        namespace = _read_text(namespace_file, "service account namespace").strip() or namespace
    return Connection(
        server=f"https://{host}:{port}",
        ssl=_ssl_context(cadata=ca_pem, what="in-cluster CA"),
        headers={"Authorization": f"Bearer {token}"},
        origin="in-cluster service account",
        context="in-cluster",
        namespace=namespace,
        ca_pem=ca_pem,
        token_file=token_file,
    )


# -- kubeconfig ---------------------------------------------------------------------------------


def _load_yaml(file: Path) -> dict[str, Any]:
    text = _read_text(file, "kubeconfig")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"kubeconfig {str(file)!r} {yaml_problem(exc)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"kubeconfig {str(file)!r} is not a kubeconfig: expected a mapping with clusters, "
            f"users and contexts, got {type(data).__name__}"
        )
    return data


def _named_entries(data: dict[str, Any], key: str, file: Path) -> list[tuple[str, dict[str, Any]]]:
    entries = data.get(key) or []
    if not isinstance(entries, list):
        raise ConfigError(f"kubeconfig {str(file)!r}: {key!r} must be a list")
    inner = key[:-1]  # clusters -> cluster
    out: dict[str, dict[str, Any]] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ConfigError(f"kubeconfig {str(file)!r}: {key}[{index}] has no name")
        name = entry["name"]
        body = entry.get(inner) or {}
        if not isinstance(body, dict):
            raise ConfigError(
                f"kubeconfig {str(file)!r}: {key}[{index}] ({name}) has an invalid "
                f"{inner!r} section"
            )
        if name in out:  # client-go refuses to decode such a file
            raise ConfigError(f"kubeconfig {str(file)!r}: {key} has two entries named {name!r}")
        out[name] = body
    return list(out.items())


Entry = tuple[dict[str, Any], Path]


def _from_kubeconfig(files: list[Path], context_name: str | None) -> Connection:
    """Merge the files like kubectl (first definition of a name wins) and build a Connection."""
    tables: dict[str, dict[str, Entry]] = {"clusters": {}, "users": {}, "contexts": {}}
    current = ""
    for file in files:
        data = _load_yaml(file)
        for key, table in tables.items():
            for name, body in _named_entries(data, key, file):
                table.setdefault(name, (body, file.parent))
        if not current and isinstance(data.get("current-context"), str):
            current = data["current-context"]
    clusters, users, contexts = tables["clusters"], tables["users"], tables["contexts"]
    where = ", ".join(repr(str(f)) for f in files)
    name = context_name or current
    if not name:
        raise ConfigError(f"kubeconfig {where} has no current-context; pass --context")
    if name not in contexts:
        known = ", ".join(sorted(contexts)) or "none"
        raise ConfigError(f"context {name!r} not found in kubeconfig {where} (contexts: {known})")
    ctx = contexts[name][0]
    cluster_name = ctx.get("cluster")
    if not cluster_name:
        raise ConfigError(f"context {name!r} in kubeconfig {where} names no cluster")
    if cluster_name not in clusters:
        raise ConfigError(
            f"context {name!r} in kubeconfig {where} refers to unknown cluster {cluster_name!r}"
        )
    cluster, cluster_base = clusters[cluster_name]
    user_name = ctx.get("user")
    user: dict[str, Any] = {}
    user_base = cluster_base
    warnings = []
    if user_name and user_name not in users:
        # client-go connects anonymously; say so, a typo is the likelier story
        warnings.append(
            f"context {name!r} in kubeconfig {where} refers to unknown user {user_name!r}: "
            "connecting without credentials, as kubectl does"
        )
    elif user_name:
        user, user_base = users[user_name]
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith(("https://", "http://")):
        raise ConfigError(
            f"cluster {cluster_name!r} in kubeconfig {where} has no valid server URL "
            f"(got {server!r})"
        )
    namespace = ctx.get("namespace")
    conn = Connection(
        server=server.rstrip("/"),
        ssl=None,
        origin=f"kubeconfig {where} (context {name})",
        context=name,
        namespace=namespace if isinstance(namespace, str) and namespace else "default",
        warnings=warnings,
    )
    cluster_what = f"cluster {cluster_name!r} in kubeconfig {where}"
    conn.ca_pem = _pem_text(cluster, "certificate-authority", cluster_base, cluster_what)
    conn.insecure = cluster.get("insecure-skip-tls-verify") is True
    if conn.insecure and conn.ca_pem is not None:
        raise ConfigError(
            f"{cluster_what} sets both insecure-skip-tls-verify and a certificate-authority; "
            "remove one (client-go refuses this too)"
        )
    if isinstance(cluster.get("tls-server-name"), str) and cluster["tls-server-name"]:
        conn.server_hostname = cluster["tls-server-name"]
    if cluster.get("proxy-url") is not None:
        conn.proxy = proxy_url(cluster["proxy-url"], cluster_what)
    user_what = f"user {user_name!r} in kubeconfig {where}"
    _user_credentials(conn, user, user_base, user_what, _exec_cluster(server, cluster, conn))
    if server.startswith("https://"):
        ca_pem, insecure = conn.ca_pem, conn.insecure

        def tls(cert: tuple[bytes, bytes] | None) -> ssl.SSLContext | bool:
            return _tls_context(ca_pem, insecure, cert, f"cluster {cluster_name!r}")

        pair = (conn.client_cert, conn.client_key) if conn.client_cert is not None else None
        conn.ssl = tls(pair)  # type: ignore[arg-type]
        conn._tls = tls
    return conn


def _tls_context(
    ca_pem: str | None, insecure: bool, cert: tuple[bytes, bytes] | None, what: str
) -> ssl.SSLContext | bool:
    if insecure and cert is None:
        return False
    context = _ssl_context(cadata=ca_pem, what=f"{what} CA")
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert is not None:
        _load_client_cert(context, *cert)
    return context


def _exec_cluster(server: str, cluster: dict[str, Any], conn: Connection) -> dict[str, Any]:
    """``spec.cluster`` of the ExecCredential handed to ``provideClusterInfo`` plugins
    (client-go's ``ConfigToExecCluster``: the CA always as data)."""
    info: dict[str, Any] = {"server": server}
    if conn.server_hostname:
        info["tls-server-name"] = conn.server_hostname
    if conn.insecure:
        info["insecure-skip-tls-verify"] = True
    if conn.ca_pem is not None:
        info["certificate-authority-data"] = base64.b64encode(conn.ca_pem.encode()).decode()
    if conn.proxy:
        info["proxy-url"] = conn.proxy
    if cluster.get("disable-compression") is True:
        info["disable-compression"] = True
    for extension in cluster.get("extensions") or []:
        if isinstance(extension, dict) and extension.get("name") == EXEC_CLUSTER_EXTENSION:
            info["config"] = extension.get("extension")
    return info


def _idp_ssl(config: dict[str, Any], base: Path, what: str) -> ssl.SSLContext | None:
    """The CA an oidc issuer's certificate is checked against (system CAs when unset)."""
    # client-go's oidc provider prefers the data to the file, without complaining about both
    pem = _pem_text(config, "idp-certificate-authority", base, what, both_allowed=True)
    if pem is None:
        return None
    return _ssl_context(cadata=pem, what=f"{what} idp-certificate-authority")


def _pem_text(
    config: dict[str, Any], key: str, base: Path, what: str, *, both_allowed: bool = False
) -> str | None:
    """The PEM text of ``<key>-data`` (base64) or of the file ``<key>`` names (relative to
    the kubeconfig); both set is an error (client-go's validation), unless ``both_allowed``."""
    data, file = config.get(f"{key}-data"), config.get(key)
    if data and file and not both_allowed:
        raise ConfigError(f"{what} sets both {key} and {key}-data; keep one")
    if data:
        return _b64(data, f"{what} {key}-data")
    if file:
        return _read_text(_resolve(base, file), f"{what} {key}")
    return None


def _ssl_context(*, cadata: str | None = None, what: str) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cadata=cadata)
    except (ssl.SSLError, ValueError, OSError) as exc:
        raise ConfigError(f"invalid {what}: {exc}") from None


def _load_client_cert(context: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    # ssl only loads certificates from files; write them to private temporary files.
    with tempfile.TemporaryDirectory(prefix="meshsync-") as tmp:
        cert_path = Path(tmp) / "client.crt"
        key_path = Path(tmp) / "client.key"
        for path, data in ((cert_path, cert), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
        try:
            context.load_cert_chain(str(cert_path), str(key_path))
        except (ssl.SSLError, ValueError, OSError) as exc:
            raise ConfigError(f"invalid client certificate or key: {exc}") from None


def _user_credentials(
    conn: Connection, user: dict[str, Any], base: Path, what: str, cluster: dict[str, Any]
) -> None:
    """Fill the Authorization header and the client certificate, in client-go's precedence."""
    token = _text(user.get("token"))
    token_file = _text(user.get("tokenFile"))
    basic = bool(_text(user.get("username")) or _text(user.get("password")))
    if (token or token_file) and basic:
        raise ConfigError(
            f"{what} has both a token and a username/password; client-go allows only one"
        )
    cert = _pem_text(user, "client-certificate", base, what)
    key = _pem_text(user, "client-key", base, what)
    if cert is not None and key is None:
        raise ConfigError(f"{what} has a client certificate but no client-key(-data)")
    provider, exec_config = user.get("auth-provider"), user.get("exec")
    if provider is not None and exec_config is not None:
        raise ConfigError(f"{what} has both an auth-provider and an exec plugin; use one")
    plugin = exec_plugin(exec_config, base, what, cluster) if exec_config is not None else None
    oidc_config = _oidc_config(provider, what) if provider is not None else None

    if token_file:
        conn.token_file = _resolve(base, token_file)
        # client-go reads the file at every request (cached for a minute) and falls back to
        # ``token`` only when that fails
        try:
            from_file = _read_text(conn.token_file, f"{what} tokenFile").strip()
        except ConfigError:
            if not token:
                raise
            from_file = ""
        if not from_file and not token:
            raise ConfigError(f"{what} tokenFile {str(conn.token_file)!r} is empty")
        conn.headers["Authorization"] = f"Bearer {from_file or token}"
    elif token:
        conn.headers["Authorization"] = f"Bearer {token}"
    elif basic:
        raw = f"{_text(user.get('username'))}:{_text(user.get('password'))}".encode()
        conn.headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
    if cert is not None and key is not None:
        conn.client_cert, conn.client_key = cert.encode(), key.encode()
    # client-go uses an exec plugin only when nothing else identifies the user
    if plugin is not None and not (token or token_file or basic or cert is not None):
        conn.exec_plugin = plugin
        conn._apply_exec(plugin.credential())
    # ... and the oidc provider only when no token or basic auth header is set already
    if oidc_config is not None and not (token or token_file or basic):
        idp_ca = _idp_ssl(oidc_config, base, what)
        conn.oidc = OidcProvider.from_config(oidc_config, what, idp_ca)
        conn.headers["Authorization"] = f"Bearer {conn.oidc.current_token()}"


def _oidc_config(stanza: Any, what: str) -> dict[str, Any]:
    provider = stanza.get("name", "?") if isinstance(stanza, dict) else "?"
    if provider != "oidc":  # gcp and azure were removed from client-go too
        raise ConfigError(
            f"{what} uses the auth-provider {provider!r}, which is not supported; "
            "use an exec credential plugin (e.g. kubelogin, gke-gcloud-auth-plugin)"
        )
    config = stanza.get("config")
    if not isinstance(config, dict):
        raise ConfigError(f"{what}: auth-provider oidc needs a config mapping")
    return config


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:([Zz])|([+-])(\d\d):(\d\d))$"
)


def _rfc3339(value: Any) -> float | None:
    """An RFC 3339 timestamp (``2026-01-02T03:04:05.123456789Z``) as a Unix time, or None."""
    match = _RFC3339.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    offset = timedelta(0)
    if not zulu:
        offset = timedelta(hours=int(off_h), minutes=int(off_m)) * (1 if sign == "+" else -1)
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second),
            tzinfo=timezone(offset),
        )  # fmt: skip
    except ValueError:
        return None
    return moment.timestamp() + (float(f"0.{fraction}") if fraction else 0.0)


def _b64(value: Any, what: str) -> str:
    try:
        return base64.b64decode(str(value), validate=False).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ConfigError(f"{what} is not valid base64") from None


def _resolve(base: Path, value: Any) -> Path:
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else base / path


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"cannot read {what} {str(path)!r}: {reason}") from None
