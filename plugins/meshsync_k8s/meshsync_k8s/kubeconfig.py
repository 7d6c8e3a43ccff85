"""Where the API server is and how to authenticate: kubeconfig files or the in-cluster account.

We parse kubeconfig ourselves (PyYAML) instead of going through a client library so that every
problem becomes a one-line :class:`ConfigError` naming the file, context, cluster or user at
fault. Supported: server URL, CA file/data, ``insecure-skip-tls-verify``, ``tls-server-name``,
client certificate/key (file or data), bearer token / ``tokenFile``, basic auth, ``exec``
credential plugins (client.authentication.k8s.io ``ExecCredential``), the ``oidc``
auth-provider and an http ``proxy-url``. Other auth-providers (gcp, azure: removed from client-go)
are reported as unsupported (use an ``exec`` plugin).

Lookup order (Go MeshSync's): explicit ``--kubeconfig`` > in-cluster service account >
``$KUBECONFIG`` (a list separated by ``os.pathsep``, merged like kubectl does) >
``~/.kube/config``. ``--context`` always means a kubeconfig, so it skips the in-cluster step.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import ssl
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from meshsync_core import ConfigError
from meshsync_core.settings import yaml_problem
from meshsync_k8s.oidc import OidcProvider
from meshsync_k8s.proxies import environment_proxy, proxy_url

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


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
    server_hostname: str | None = None
    #: Token file re-read on 401 (service-account tokens rotate).
    token_file: Path | None = None
    #: Exec plugin configuration, re-run on 401 (its token may have expired).
    exec_config: dict[str, Any] | None = None
    exec_base: Path | None = None
    #: ``proxy-url`` of the cluster: an ``http://`` proxy every request goes through.
    proxy: str | None = None
    #: ``auth-provider: oidc``: its ID token is refreshed on 401 (and when expired).
    oidc: OidcProvider | None = None

    def refresh_credentials(self) -> bool:
        """Re-read rotating credentials; True if something could have changed."""
        if self.token_file is not None:
            token = _read_text(self.token_file, "token file").strip()
            self.headers["Authorization"] = f"Bearer {token}"
            return True
        if self.exec_config is not None:
            token, _cert = run_exec_plugin(self.exec_config, self.exec_base)
            if token:
                self.headers["Authorization"] = f"Bearer {token}"
            return True
        if self.oidc is not None and self.oidc.can_refresh:
            self.headers["Authorization"] = f"Bearer {self.oidc.refresh()}"
            return True
        return False


def load_connection(
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    *,
    environ: Mapping[str, str] = os.environ,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
    home: Path | None = None,
) -> Connection:
    """Resolve the connection in Go MeshSync's order; raise ConfigError naming the problem."""
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
    context = _ssl_context(cafile=str(ca_file) if ca_file.exists() else None, what="in-cluster CA")
    return Connection(
        server=f"https://{host}:{port}",
        ssl=context,
        headers={"Authorization": f"Bearer {token}"},
        origin="in-cluster service account",
        context="in-cluster",
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
    out = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ConfigError(f"kubeconfig {str(file)!r}: {key}[{index}] has no name")
        body = entry.get(inner) or {}
        if not isinstance(body, dict):
            raise ConfigError(
                f"kubeconfig {str(file)!r}: {key}[{index}] ({entry['name']}) has an invalid "
                f"{inner!r} section"
            )
        out.append((entry["name"], body))
    return out


def _from_kubeconfig(files: list[Path], context_name: str | None) -> Connection:
    """Merge the files like kubectl (first definition of a name wins) and build a Connection."""
    clusters: dict[str, tuple[dict[str, Any], Path]] = {}
    users: dict[str, tuple[dict[str, Any], Path]] = {}
    contexts: dict[str, dict[str, Any]] = {}
    current = ""
    for file in files:
        data = _load_yaml(file)
        for name, body in _named_entries(data, "clusters", file):
            clusters.setdefault(name, (body, file.parent))
        for name, body in _named_entries(data, "users", file):
            users.setdefault(name, (body, file.parent))
        for name, body in _named_entries(data, "contexts", file):
            contexts.setdefault(name, body)
        if not current and isinstance(data.get("current-context"), str):
            current = data["current-context"]
    where = ", ".join(repr(str(f)) for f in files)
    name = context_name or current
    if not name:
        raise ConfigError(f"kubeconfig {where} has no current-context; pass --context")
    if name not in contexts:
        known = ", ".join(sorted(contexts)) or "none"
        raise ConfigError(f"context {name!r} not found in kubeconfig {where} (contexts: {known})")
    ctx = contexts[name]
    cluster_name = ctx.get("cluster")
    if cluster_name not in clusters:
        raise ConfigError(
            f"context {name!r} in kubeconfig {where} refers to unknown cluster {cluster_name!r}"
        )
    cluster, cluster_base = clusters[cluster_name]
    user_name = ctx.get("user")
    user: dict[str, Any] = {}
    user_base = cluster_base
    if user_name:
        if user_name not in users:
            raise ConfigError(
                f"context {name!r} in kubeconfig {where} refers to unknown user {user_name!r}"
            )
        user, user_base = users[user_name]
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith(("https://", "http://")):
        raise ConfigError(
            f"cluster {cluster_name!r} in kubeconfig {where} has no valid server URL "
            f"(got {server!r})"
        )
    origin = f"kubeconfig {where} (context {name})"
    conn = Connection(server=server.rstrip("/"), ssl=None, origin=origin, context=name)
    cert = _user_credentials(conn, user, user_base, f"user {user_name!r} in kubeconfig {where}")
    if cluster.get("proxy-url") is not None:
        conn.proxy = proxy_url(cluster["proxy-url"], f"cluster {cluster_name!r} in {where}")
    if server.startswith("https://"):
        conn.ssl = _cluster_ssl(cluster, cluster_base, f"cluster {cluster_name!r}", cert)
        if isinstance(cluster.get("tls-server-name"), str):
            conn.server_hostname = cluster["tls-server-name"]
    return conn


def _cluster_ssl(
    cluster: dict[str, Any], base: Path, what: str, cert: tuple[bytes, bytes] | None
) -> ssl.SSLContext | bool:
    cafile, cadata = _ca(cluster, "certificate-authority", base, what)
    if cluster.get("insecure-skip-tls-verify") is True and cert is None:
        return False
    context = _ssl_context(cafile=cafile, cadata=cadata, what=f"{what} CA")
    if cluster.get("insecure-skip-tls-verify") is True:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert is not None:
        _load_client_cert(context, *cert)
    return context


def _idp_ssl(config: dict[str, Any], base: Path, what: str) -> ssl.SSLContext | None:
    """The CA an oidc issuer's certificate is checked against (system CAs when unset)."""
    cafile, cadata = _ca(config, "idp-certificate-authority", base, what)
    if cafile is None and cadata is None:
        return None
    return _ssl_context(cafile=cafile, cadata=cadata, what=f"{what} idp-certificate-authority")


def _ca(config: dict[str, Any], key: str, base: Path, what: str) -> tuple[str | None, str | None]:
    """``(cafile, cadata)`` from ``<key>-data`` (base64) or the file ``<key>`` names."""
    if config.get(f"{key}-data"):
        return None, _b64(config[f"{key}-data"], f"{what} {key}-data")
    if config.get(key):
        path = _resolve(base, config[key])
        _read_text(path, f"{what} {key}")
        return str(path), None
    return None, None


def _ssl_context(
    *, cafile: str | None = None, cadata: str | None = None, what: str
) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=cafile, cadata=cadata)
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
    conn: Connection, user: dict[str, Any], base: Path, what: str
) -> tuple[bytes, bytes] | None:
    """Fill auth headers; return the client certificate and key (PEM bytes) if any."""
    if user.get("auth-provider"):
        stanza = user["auth-provider"]
        provider = stanza.get("name", "?") if isinstance(stanza, dict) else "?"
        if provider != "oidc":  # gcp and azure were removed from client-go too
            raise ConfigError(
                f"{what} uses the auth-provider {provider!r}, which is not supported; "
                "use an exec credential plugin (e.g. kubelogin, gke-gcloud-auth-plugin)"
            )
        config = stanza.get("config")
        idp_ca = _idp_ssl(config, base, what) if isinstance(config, dict) else None
        conn.oidc = OidcProvider.from_config(config, what, idp_ca)
        conn.headers["Authorization"] = f"Bearer {conn.oidc.current_token()}"
    cert = _pem(user, "client-certificate", base, what)
    key = _pem(user, "client-key", base, what)
    if user.get("token"):
        conn.headers["Authorization"] = f"Bearer {user['token']}"
    elif user.get("tokenFile"):
        conn.token_file = _resolve(base, user["tokenFile"])
        conn.refresh_credentials()
    elif user.get("username") and user.get("password") is not None:
        raw = f"{user['username']}:{user['password']}".encode()
        conn.headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
    elif user.get("exec"):
        if not isinstance(user["exec"], dict) or not user["exec"].get("command"):
            raise ConfigError(f"{what}: exec needs a command")
        conn.exec_config = user["exec"]
        conn.exec_base = base
        token, exec_cert = run_exec_plugin(user["exec"], base)
        if token:
            conn.headers["Authorization"] = f"Bearer {token}"
        if exec_cert is not None and cert is None:
            cert, key = exec_cert
    if (cert is None) != (key is None):
        raise ConfigError(f"{what} has a client certificate without a key (or the reverse)")
    return (cert, key) if cert is not None and key is not None else None


def _pem(user: dict[str, Any], key: str, base: Path, what: str) -> bytes | None:
    if user.get(f"{key}-data"):
        return _b64(user[f"{key}-data"], f"{what} {key}-data").encode()
    if user.get(key):
        path = _resolve(base, user[key])
        return _read_text(path, f"{what} {key}").encode()
    return None


def run_exec_plugin(
    config: dict[str, Any], base: Path | None
) -> tuple[str | None, tuple[bytes, bytes] | None]:
    """Run a client-go credential plugin; return its token and/or client certificate."""
    command = str(config.get("command"))
    if "/" in command and not os.path.isabs(command) and base is not None:
        command = str(_resolve(base, command))
    args = [str(a) for a in config.get("args") or []]
    env = dict(os.environ)
    for item in config.get("env") or []:
        if isinstance(item, dict) and "name" in item:
            env[str(item["name"])] = str(item.get("value", ""))
    api_version = config.get("apiVersion", "client.authentication.k8s.io/v1")
    env["KUBERNETES_EXEC_INFO"] = json.dumps(
        {"apiVersion": api_version, "kind": "ExecCredential", "spec": {"interactive": False}}
    )
    try:
        done = subprocess.run(
            [command, *args], env=env, capture_output=True, timeout=60, check=False
        )
    except FileNotFoundError:
        hint = config.get("installHint")
        raise ConfigError(
            f"credential plugin {command!r} not found" + (f": {hint.strip()}" if hint else "")
        ) from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"credential plugin {command!r} failed: {exc}") from None
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        raise ConfigError(
            f"credential plugin {command!r} exited with {done.returncode}"
            + (f": {detail[-1]}" if detail else "")
        )
    try:
        status = json.loads(done.stdout)["status"]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"credential plugin {command!r} printed no ExecCredential") from None
    token = status.get("token") if isinstance(status, dict) else None
    cert = None
    if isinstance(status, dict) and status.get("clientCertificateData"):
        cert = (
            str(status["clientCertificateData"]).encode(),
            str(status.get("clientKeyData", "")).encode(),
        )
    return token, cert


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
