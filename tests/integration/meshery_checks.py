"""What Meshery Server and Meshery Operator look at before they trust a MeshSync, as helpers.

* "Connected": the NATS monitor's ``/connz`` lists a client named exactly ``meshsync``.
* Meshery Operator passes the NATS token in the URL: ``BROKER_URL=nats://<token>@host:port``
  (its broker's token is ``t`` + 64 hex digits, pkg/broker GenerateToken).
* The Deployment's probes: ``/healthz`` (liveness) and ``/readyz`` (readiness) on port 11000;
  a Kubernetes httpGet probe succeeds on any status from 200 to 399.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from meshsync_testkit.nats_server import NatsServer, free_port

from meshsync_core.testing import wait_until_sync

T = TypeVar("T")


def operator_token() -> str:
    """A token shaped like the one Meshery Operator generates for its NATS broker."""
    return "t" + secrets.token_hex(32)


def token_url(server: NatsServer, token: str) -> str:
    """``nats://<token>@127.0.0.1:<port>``, as the Operator's BROKER_URL after $(NATS_TOKEN)."""
    return server.url.replace("nats://", f"nats://{token}@", 1)


@contextmanager
def monitored_nats(workdir: Path, **kwargs: Any) -> Iterator[tuple[NatsServer, int]]:
    """A real nats-server with its HTTP monitor (``/connz``) on a port of its own."""
    monitor = free_port()
    server = NatsServer(workdir, extra_config=f'http: "127.0.0.1:{monitor}"\n', **kwargs)
    with server:
        yield server, monitor


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """(status, body); status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, ""


def connz_names(monitor: int) -> list[str]:
    """The names of the clients the NATS monitor lists, as Meshery Server reads them."""
    status, body = http_get(f"http://127.0.0.1:{monitor}/connz")
    if status != 200:
        return []
    return [str(conn.get("name", "")) for conn in json.loads(body).get("connections", [])]


def probe_ok(status: int) -> bool:
    """What the kubelet's httpGet probe counts as success."""
    return 200 <= status < 400


def wait_until(
    condition: Callable[[], T],
    what: str,
    timeout: float = 30.0,
    proc: subprocess.Popen[str] | None = None,
) -> T:
    """:func:`meshsync_core.testing.wait_until_sync` with these suites' argument order."""
    return wait_until_sync(condition, timeout, what, proc=proc)


def meshery_meshsync() -> str:
    """The ``meshery-meshsync`` console script of the running interpreter's environment."""
    script = Path(sys.executable).parent / "meshery-meshsync"
    if not script.exists():
        raise AssertionError(
            f"{script} is missing: the console script comes with the package's install "
            "(pip install -e . again after pulling)"
        )
    return str(script)


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without MeshSync settings or a broker URL, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MESHSYNC_", "NATS_"))}
    env.pop("BROKER_URL", None)
    env.update(extra)
    return env


def start(
    argv: list[str], env: Mapping[str, str], cwd: Path | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=cwd,
        env=dict(env),
    )


def stop(proc: subprocess.Popen[str], timeout: float = 30.0) -> tuple[int, str, str]:
    """SIGTERM (what the kubelet sends), then wait: (exit code, stdout, stderr)."""
    if proc.poll() is None:
        proc.terminate()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return proc.returncode, out, err
