"""Connection settings: URL, authentication and TLS options -> nats-py ``connect`` arguments.

Everything the user can get wrong is checked here, before any connection attempt, and reported
as one :class:`~meshsync_core.ConfigError` line (exit 2): a malformed URL, a missing or
unreadable credentials, key or certificate file, conflicting authentication options.
Credentials never appear in messages: :func:`mask_url` hides them in URLs.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import click
import nats.errors

from meshsync_core import ConfigError, Duration

DEFAULT_PORT = 4222
_SCHEMES = {"nats", "tls", "ws", "wss"}
#: The connection cannot take a message now (not the message's fault): send it again later.
SEND_ERRORS = (
    nats.errors.OutboundBufferLimitError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.StaleConnectionError,
    ConnectionError,
)


def mask_url(url: str) -> str:
    """``nats://user:***@host:4222``: the URL with any password or token replaced."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if "@" not in parts.netloc:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, sep, _ = userinfo.partition(":")
    shown = f"{user}:***" if sep else "***"
    return urlunsplit(parts._replace(netloc=f"{shown}@{hostport}"))


def normalise_url(text: str) -> str:
    """One server address as a URL: ``host:port`` and ``host`` get ``nats://`` (and 4222)."""
    raw = text.strip()
    if not raw:
        raise ConfigError("empty NATS server address in --broker-url/BROKER_URL")
    if "://" not in raw:
        raw = f"nats://{raw}"
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"invalid NATS URL {mask_url(raw)!r}: {exc}") from None
    if parts.scheme not in _SCHEMES:
        raise ConfigError(
            f"invalid NATS URL {mask_url(raw)!r}: scheme must be one of "
            f"{', '.join(sorted(_SCHEMES))} (or give host:port)"
        )
    if not parts.hostname:
        raise ConfigError(f"invalid NATS URL {mask_url(raw)!r}: no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"invalid NATS URL {mask_url(raw)!r}: unexpected path or query")
    if port is None and parts.scheme in {"nats", "tls"}:
        raw = urlunsplit(parts._replace(netloc=f"{parts.netloc}:{DEFAULT_PORT}"))
    return raw


def parse_servers(value: Any) -> list[str]:
    """Every server of ``--broker-url``: comma- or space-separated, or a list."""
    if value is None:
        items: list[str] = []
    elif isinstance(value, str):
        items = value.replace(",", " ").split()
    else:
        items = [str(v) for part in value for v in str(part).replace(",", " ").split()]
    if not items:
        raise ConfigError(
            "no NATS server given: set --broker-url or BROKER_URL (e.g. nats://meshery-nats:4222)"
        )
    return [normalise_url(item) for item in items]


def _readable_file(path: str, what: str) -> str:
    expanded = os.path.expanduser(path)
    try:
        with open(expanded, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path!r}: {exc.strerror or exc}") from None
    return expanded


def tls_context(ca: str | None, cert: str | None, key: str | None) -> ssl.SSLContext:
    """A client TLS context verifying the server (with ``ca`` if given), with a client cert."""
    if key and not cert:
        raise ConfigError("--nats-tls-key needs --nats-tls-cert")
    try:
        context = ssl.create_default_context(
            cafile=_readable_file(ca, "NATS TLS CA file (--nats-tls-ca)") if ca else None
        )
    except ssl.SSLError as exc:
        raise ConfigError(f"invalid NATS TLS CA file {ca!r}: {exc}") from None
    if cert:
        cert_path = _readable_file(cert, "NATS TLS certificate (--nats-tls-cert)")
        key_path = _readable_file(key, "NATS TLS key (--nats-tls-key)") if key else None
        try:
            context.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as exc:
            raise ConfigError(
                f"invalid NATS TLS client certificate/key {cert!r}: {exc.reason or exc}"
            ) from None
    return context


#: Wait between connection attempts (``--nats-reconnect-wait``); attempts never stop.
RECONNECT_WAIT = 2.0
#: How long one connection attempt may take (``nats_connect_timeout``, no flag).
CONNECT_TIMEOUT = 5.0


def connection_options() -> list[click.Option]:
    """Where and how to connect: ``ConnectionSettings.from_options`` reads these."""
    return [
        click.Option(
            ["--broker-url", "broker_url"],
            envvar="BROKER_URL",
            help="[nats] NATS server URL(s): nats://host:4222, host:4222, tls://host:4222; "
            "several comma-separated for a cluster. Env: BROKER_URL.",
        ),
        click.Option(
            ["--nats-user"],
            envvar="NATS_USER",
            help="[nats] User name for user/password authentication. Env: NATS_USER.",
        ),
        click.Option(
            ["--nats-password"],
            envvar="NATS_PASSWORD",
            help="[nats] Password for --nats-user. Env: NATS_PASSWORD.",
        ),
        click.Option(
            ["--nats-token"],
            envvar="NATS_TOKEN",
            help="[nats] Token authentication. Env: NATS_TOKEN.",
        ),
        click.Option(
            ["--nats-creds"],
            envvar="NATS_CREDS",
            type=click.Path(dir_okay=False),
            help="[nats] Credentials file (JWT + NKEY seed). Env: NATS_CREDS.",
        ),
        click.Option(
            ["--nats-nkey-seed"],
            envvar="NATS_NKEY_SEED",
            type=click.Path(dir_okay=False),
            help="[nats] File holding an NKEY user seed. Env: NATS_NKEY_SEED.",
        ),
        click.Option(
            ["--nats-tls-ca"],
            envvar="NATS_TLS_CA",
            type=click.Path(dir_okay=False),
            help="[nats] CA certificate (PEM) to verify the server; enables TLS. Env: NATS_TLS_CA.",
        ),
        click.Option(
            ["--nats-tls-cert"],
            envvar="NATS_TLS_CERT",
            type=click.Path(dir_okay=False),
            help="[nats] Client certificate (PEM) for mutual TLS. Env: NATS_TLS_CERT.",
        ),
        click.Option(
            ["--nats-tls-key"],
            envvar="NATS_TLS_KEY",
            type=click.Path(dir_okay=False),
            help="[nats] Private key of --nats-tls-cert. Env: NATS_TLS_KEY.",
        ),
        click.Option(
            ["--nats-reconnect-wait"],
            envvar="NATS_RECONNECT_WAIT",
            type=Duration(),
            default=f"{RECONNECT_WAIT:g}s",
            show_default=True,
            help="[nats] Wait between connection attempts; attempts never stop.",
        ),
    ]


@dataclass
class ConnectionSettings:
    """Everything needed to connect, validated; ``kwargs()`` gives nats-py's arguments."""

    servers: list[str]
    user: str | None = None
    password: str | None = None
    token: str | None = None
    creds: str | None = None
    nkey_seed: str | None = None
    tls: ssl.SSLContext | None = None
    reconnect_wait: float = RECONNECT_WAIT
    connect_timeout: float = CONNECT_TIMEOUT
    name: str = "meshsync"
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> ConnectionSettings:
        servers = parse_servers(options.get("broker_url"))
        user = options.get("nats_user") or None
        password = options.get("nats_password") or None
        token = options.get("nats_token") or None
        creds = options.get("nats_creds") or None
        seed = options.get("nats_nkey_seed") or None
        if password and not user:
            raise ConfigError("--nats-password needs --nats-user")
        methods = [
            name
            for name, given in (
                ("--nats-user", user),
                ("--nats-token", token),
                ("--nats-creds", creds),
                ("--nats-nkey-seed", seed),
            )
            if given
        ]
        if len(methods) > 1:
            raise ConfigError(f"choose one NATS authentication method, not {' and '.join(methods)}")
        if creds or seed:
            try:
                import nkeys  # noqa: F401
            except ImportError:  # pragma: no cover - a declared dependency
                raise ConfigError(
                    "NKEY/credentials authentication needs: pip install nkeys"
                ) from None
        ca = options.get("nats_tls_ca") or None
        cert = options.get("nats_tls_cert") or None
        key = options.get("nats_tls_key") or None
        wants_tls = bool(ca or cert or key) or any(
            s.startswith(("tls://", "wss://")) for s in servers
        )
        return cls(
            servers=servers,
            user=user,
            password=password,
            token=token,
            creds=_readable_file(creds, "NATS credentials file (--nats-creds)") if creds else None,
            nkey_seed=_readable_file(seed, "NATS NKEY seed file (--nats-nkey-seed)")
            if seed
            else None,
            tls=tls_context(ca, cert, key) if wants_tls else None,
            reconnect_wait=float(options.get("nats_reconnect_wait") or RECONNECT_WAIT),
            connect_timeout=float(options.get("nats_connect_timeout") or CONNECT_TIMEOUT),
        )

    @property
    def display(self) -> str:
        """The servers for log lines, credentials masked."""
        return ", ".join(mask_url(s) for s in self.servers)

    def kwargs(self) -> dict[str, Any]:
        """Arguments for ``nats.aio.client.Client.connect`` (callbacks are added by the sink).

        ``max_reconnect_attempts=-1``: never give up (Go stops after 60 tries and needs a
        restart). ``pending_size=0`` would make nats-py refuse to buffer while reconnecting; we
        keep its small buffer and hold everything else in our own coalescing buffer.
        """
        kwargs: dict[str, Any] = {
            "servers": list(self.servers),
            "name": self.name,
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": self.reconnect_wait,
            "connect_timeout": self.connect_timeout,
            **self.extra,
        }
        if self.user:
            kwargs["user"] = self.user
            kwargs["password"] = self.password or ""
        if self.token:
            kwargs["token"] = self.token
        if self.creds:
            kwargs["user_credentials"] = self.creds
        if self.nkey_seed:
            kwargs["nkeys_seed"] = self.nkey_seed
        if self.tls is not None:
            kwargs["tls"] = self.tls
        return kwargs
