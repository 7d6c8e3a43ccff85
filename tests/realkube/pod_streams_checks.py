"""Pod logs and exec, checked the same way against the real kube-apiserver (kwok's node server
behind it) and against the project's fake: ``tests/realkube/test_kwok_logs_exec.py`` and
``tests/k8s_fake/test_logs_exec.py`` both run every check here, so what the fake copies from the
real server is asserted, byte for byte where the wire is byte-exact, in one place.

Each check gets a :class:`StreamTarget`: where the server is, a pod with two containers
(``app`` and ``side``) on a node, a pod that is not scheduled, and how to add log lines. Status
bodies outside a WebSocket are compared parsed (the real server ends them with a newline and
orders ``details`` before ``code``; the fake's other endpoints do not).

What kube sends (recorded from kube-apiserver v1.37.2 + kwok v0.8.0):

- ``pods/log``: ``text/plain``, chunked; errors are Status JSON: 400 BadRequest for a missing
  container name (``choose one of: [app side]``) or an unknown one, 404 for the pod, 400 for a
  query value that is not an integer, 422 Invalid for ``tailLines<0``, ``limitBytes<1``,
  ``sinceSeconds`` with ``sinceTime``, ``stream``. A pod with no node answers 204 No Content.
- ``pods/exec`` WebSocket: v5 is chosen whenever offered (the apiserver's translator), other
  protocols go to the node. Frames are ``[channel] + data``: first ``b"\\x01"`` (an empty frame
  on the lowest output channel opened: stdout, else stderr, else 3), then output, then the
  Status on 3, then a close frame 1000. v5 Success is ``{"metadata":{},"status":"Success"}``,
  v4's ``{"status":"Success"}``. Without stdin/stdout/stderr, v5 opens the socket and sends
  ``b"\\x03"`` and an InternalError Status; v4 is refused with 400 ``text/plain``. Errors
  before the upgrade (pod, container, no node, no Upgrade header) are Status JSON as for logs;
  POST with a WebSocket upgrade is 405; an unsupported subprotocol 403 with no body.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import re
import ssl
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
TIMEOUT = 20.0  # seconds for one frame or line; every wait is for an event, this bounds it
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ")
V5_SUCCESS = b'{"metadata":{},"status":"Success"}'
V4_SUCCESS = b'{"status":"Success"}'
UPGRADE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


@dataclass
class StreamTarget:
    name: str  # "real" or "fake"
    url: str
    ssl: ssl.SSLContext | None
    namespace: str
    pod: str  # containers "app" and "side", on a node, with "one" already logged by "app"
    unscheduled: str  # one container "app", no node
    #: append(container, text, at=None): one log line of the container, now or stamped `at`
    append: Callable[..., None]
    #: append_previous(container, text): a line of the container's previous instance
    append_previous: Callable[[str, str], None]

    def session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ssl or False))

    def path(self, sub: str, pod: str | None = None, **query: Any) -> str:
        base = f"{self.url}/api/v1/namespaces/{self.namespace}/pods/{pod or self.pod}/{sub}"
        pairs = []
        for key, value in query.items():
            for item in value if isinstance(value, list) else [value]:
                pairs.append(f"{key}={quote(str(item), safe='')}")
        return base + ("?" + "&".join(pairs) if pairs else "")

    def exec_path(self, *command: str, pod: str | None = None, **query: Any) -> str:
        return self.path("exec", pod, **query, command=list(command))


def status(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = details
    return body


def invalid_log_options(pod: str, field: str, message: str, reason: str) -> dict:
    summary = f"{field}: {message}"
    return status(
        422,
        "Invalid",
        f'PodLogOptions "{pod}" is invalid: {summary}',
        {
            "name": pod,
            "kind": "PodLogOptions",
            "causes": [
                {"reason": reason, "message": message, **({"field": field} if field else {})}
            ],
        },
    )


async def get(session: aiohttp.ClientSession, url: str, **kwargs: Any) -> tuple[int, dict, bytes]:
    async with session.get(url, **kwargs) as response:
        return response.status, dict(response.headers), await response.read()


# -- logs ------------------------------------------------------------------------------------


async def check_log_errors(t: StreamTarget) -> None:
    pod = t.pod
    async with t.session() as s:
        cases = [
            (
                t.path("log"),
                status(
                    400,
                    "BadRequest",
                    f"a container name must be specified for pod {pod}, choose one of: [app side]",
                ),
            ),
            (
                t.path("log", container="nosuch"),
                status(400, "BadRequest", f"container nosuch is not valid for pod {pod}"),
            ),
            (
                t.path("log", "nosuch", container="app"),
                status(
                    404, "NotFound", 'pods "nosuch" not found', {"name": "nosuch", "kind": "pods"}
                ),
            ),
            (
                t.path("log", container="app", tailLines="x"),
                status(400, "BadRequest", 'strconv.ParseInt: parsing "x": invalid syntax'),
            ),
            (
                t.path("log", container="app", tailLines=""),
                status(400, "BadRequest", 'strconv.ParseInt: parsing "": invalid syntax'),
            ),
            (
                t.path("log", container="app", limitBytes=99999999999999999999),
                status(
                    400,
                    "BadRequest",
                    'strconv.ParseInt: parsing "99999999999999999999": value out of range',
                ),
            ),
            (
                t.path("log", container="app", sinceTime="2025-01-01T00:00:00"),
                status(
                    400,
                    "BadRequest",
                    'parsing time "2025-01-01T00:00:00" as "2006-01-02T15:04:05Z07:00": cannot '
                    'parse "" as "Z07:00"',
                ),
            ),
            (
                t.path("log", container="app", sinceTime="yesterday"),
                status(
                    400,
                    "BadRequest",
                    'parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse '
                    '"yesterday" as "2006"',
                ),
            ),
            (
                t.path("log", container="app", tailLines=-1, limitBytes=0),
                status(
                    422,
                    "Invalid",
                    f'PodLogOptions "{pod}" is invalid: [tailLines: Invalid value: -1: must be '
                    "greater than or equal to 0, limitBytes: Invalid value: 0: must be greater "
                    "than 0]",
                    {
                        "name": pod,
                        "kind": "PodLogOptions",
                        "causes": [
                            {
                                "reason": "FieldValueInvalid",
                                "message": "Invalid value: -1: must be greater than or equal to 0",
                                "field": "tailLines",
                            },
                            {
                                "reason": "FieldValueInvalid",
                                "message": "Invalid value: 0: must be greater than 0",
                                "field": "limitBytes",
                            },
                        ],
                    },
                ),
            ),
            (
                t.path("log", container="app", sinceSeconds=0),
                invalid_log_options(
                    pod,
                    "sinceSeconds",
                    "Invalid value: 0: must be greater than 0",
                    "FieldValueInvalid",
                ),
            ),
            (
                t.path("log", container="app", tailLines=-1),
                invalid_log_options(
                    pod,
                    "tailLines",
                    "Invalid value: -1: must be greater than or equal to 0",
                    "FieldValueInvalid",
                ),
            ),
            (
                t.path("log", container="app", limitBytes=0),
                invalid_log_options(
                    pod,
                    "limitBytes",
                    "Invalid value: 0: must be greater than 0",
                    "FieldValueInvalid",
                ),
            ),
            (
                t.path("log", container="app", stream="Stderr"),
                invalid_log_options(
                    pod, "stream", "Forbidden: may not be specified", "FieldValueForbidden"
                ),
            ),
            (
                t.path("log", container="app", sinceSeconds=10, sinceTime="2025-01-01T00:00:00Z"),
                invalid_log_options(
                    pod,
                    "[]",  # kube's field.NewPath("") prints as []
                    "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
                    "FieldValueForbidden",
                ),
            ),
        ]
        for url, expected in cases:
            code, headers, body = await get(s, url)
            assert (code, headers["Content-Type"]) == (expected["code"], "application/json"), (
                t.name,
                url,
                code,
                body,
            )
            assert json.loads(body) == expected, (t.name, url)
        async with s.post(t.path("log", container="app")) as response:
            assert response.status == 405, t.name
            assert await response.json() == {
                **status(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                ),
                "details": {},
            }
        # no node: nobody to ask, so kube-apiserver answers 204 No Content by itself
        code, headers, body = await get(s, t.path("log", t.unscheduled, container="app"))
        assert (code, body) == (204, b""), (t.name, code, body)
        assert "Content-Type" not in headers, (t.name, headers)


async def check_log_options(t: StreamTarget) -> None:
    t.append("app", "two")
    t.append("app", "three")
    t.append("side", "side-one")
    t.append("app", "long ago", at=datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc))
    async with t.session() as s:

        async def log(**query: Any) -> bytes:
            code, headers, body = await get(s, t.path("log", **query))
            assert code == 200, (t.name, query, body)
            assert headers["Content-Type"] == "text/plain", (t.name, headers)
            assert headers.get("Transfer-Encoding") == "chunked", (t.name, headers)
            return body

        assert await log(container="app") == b"one\ntwo\nthree\nlong ago\n"
        assert await log(container="side") == b"side-one\n"
        assert await log(container="app", tailLines=2) == b"three\nlong ago\n"
        assert await log(container="app", tailLines=0) == b""
        assert await log(container="app", limitBytes=6) == b"one\ntw"
        assert await log(container="app", sinceTime="2021-01-01T00:00:00Z") == b"one\ntwo\nthree\n"
        assert await log(container="app", sinceSeconds=3600) == b"one\ntwo\nthree\n"
        stamped = (await log(container="app", timestamps="true")).decode().splitlines()
        assert [STAMP.sub("", line) for line in stamped] == ["one", "two", "three", "long ago"]
        assert all(STAMP.match(line) for line in stamped), stamped
        assert stamped[3].startswith("2020-01-01T00:00:00.000000000Z "), stamped
        # ?follow= and any other value but "0"/"false" are true, as kube parses booleans
        assert await log(container="app", timestamps="0") == b"one\ntwo\nthree\nlong ago\n"

        code, _, body = await get(s, t.path("log", container="app", previous="true"))
        assert code == 400 and json.loads(body)["reason"] == "BadRequest", (t.name, body)
        t.append_previous("app", "before the restart")
        assert await log(container="app", previous="true") == b"before the restart\n"


async def check_follow(t: StreamTarget) -> None:
    async with t.session() as s:
        async with s.get(t.path("log", container="app", follow="true")) as response:
            assert response.status == 200
            assert await asyncio.wait_for(response.content.readline(), TIMEOUT) == b"one\n"
            t.append("app", "live 1")
            assert await asyncio.wait_for(response.content.readline(), TIMEOUT) == b"live 1\n"
            t.append("app", "live 2")
            t.append("app", "live 3")
            assert await asyncio.wait_for(response.content.readline(), TIMEOUT) == b"live 2\n"
            assert await asyncio.wait_for(response.content.readline(), TIMEOUT) == b"live 3\n"
        async with s.get(t.path("log", container="app", follow="true", tailLines=1)) as response:
            assert await asyncio.wait_for(response.content.readline(), TIMEOUT) == b"live 3\n"
            t.append("app", "live 4")
            assert await asyncio.wait_for(response.content.readline(), TIMEOUT) == b"live 4\n"


# -- exec ------------------------------------------------------------------------------------


@dataclass
class Session:
    protocol: str
    frames: list[tuple[int, bytes]]
    close_code: int | None

    def data(self, channel: int) -> bytes:
        return b"".join(d for c, d in self.frames if c == channel)


async def exec_session(
    s: aiohttp.ClientSession,
    url: str,
    protocols: list[str],
    steps: list[bytes | tuple[int, bytes]] = (),  # type: ignore[assignment]
) -> Session:
    """Run one exec: send each step (raw frame bytes, or (channel, wait-for text on stdout)
    then continue), collect every frame until the server's close frame."""
    frames: list[tuple[int, bytes]] = []
    async with s.ws_connect(url, protocols=protocols, autoclose=False) as ws:
        pending = list(steps)

        async def receive() -> aiohttp.WSMessage:
            return await asyncio.wait_for(ws.receive(), TIMEOUT)

        while True:
            while pending and isinstance(pending[0], bytes):
                await ws.send_bytes(pending.pop(0))
            message = await receive()
            if message.type == aiohttp.WSMsgType.BINARY:
                raw = bytes(message.data)
                frames.append((raw[0], raw[1:]))
                if pending and not isinstance(pending[0], bytes):
                    channel, text = pending[0]
                    if text in b"".join(d for c, d in frames if c == channel):
                        pending.pop(0)
                continue
            assert message.type == aiohttp.WSMsgType.CLOSE, (message.type, message.data)
            close_code = message.data
            await ws.close()
            return Session(ws.protocol or "", frames, close_code)


async def upgrade_refused(s: aiohttp.ClientSession, url: str, method: str = "GET", **headers: str):
    """An exec request the server answers without upgrading: (status, headers, body)."""
    async with s.request(method, url, headers={**UPGRADE, **headers}) as response:
        return response.status, dict(response.headers), await response.read()


async def check_exec_framing(t: StreamTarget) -> None:
    script = "echo hi; echo err >&2"
    async with t.session() as s:
        url = t.exec_path("/bin/sh", "-c", script, container="app", stdout="true", stderr="true")
        for protocols, chosen, success in (
            ([V5, V4], V5, V5_SUCCESS),
            ([V4, V5], V5, V5_SUCCESS),  # v5 whenever offered, whatever the client's order
            ([V4], V4, V4_SUCCESS),
        ):
            run = await exec_session(s, url, protocols)
            assert run.protocol == chosen, (t.name, protocols, run)
            assert run.frames[0] == (1, b""), (t.name, run.frames)
            assert run.frames[-1] == (3, success), (t.name, run.frames)
            assert run.data(1) == b"hi\n" and run.data(2) == b"err\n", (t.name, run.frames)
            assert {c for c, _ in run.frames} == {1, 2, 3}
            assert run.close_code == 1000, (t.name, run)
        only_stderr = t.exec_path("/bin/sh", "-c", script, container="app", stderr="true")
        run = await exec_session(s, only_stderr, [V5])
        assert run.frames[0] == (2, b"") and run.data(2) == b"err\n" and run.data(1) == b""
        for protocol in ("v3.channel.k8s.io", "bogus.example.com"):
            code, _, body = await upgrade_refused(s, url, **{"Sec-WebSocket-Protocol": protocol})
            assert (code, body) == (403, b""), (t.name, protocol, code, body)


async def check_exec_stdin(t: StreamTarget) -> None:
    script = "read a; echo got:$a"
    async with t.session() as s:
        url = t.exec_path("/bin/sh", "-c", script, container="app", stdin="true", stdout="true")
        # v5: stdin frames, then [255, 0] closes stdin (kubectl's end of input)
        run = await exec_session(s, url, [V5], [b"\x00hel", b"\x00lo\n", b"\xff\x00"])
        assert run.data(1) == b"got:hello\n" and run.frames[-1] == (3, V5_SUCCESS), run.frames
        run = await exec_session(s, url, [V4], [b"\x00hello\n"])
        assert run.data(1) == b"got:hello\n" and run.frames[-1] == (3, V4_SUCCESS), run.frames


async def check_exec_tty(t: StreamTarget) -> None:
    """A TTY (stdin too: kwok 0.8.0 crashes on a TTY without stdin): one output stream, CRLF
    line ends, and the terminal size from resize messages on channel 4."""
    async with t.session() as s:
        url = t.exec_path("/bin/sh", container="app", stdin="true", stdout="true", tty="true")
        steps: list[bytes | tuple[int, bytes]] = [
            b'\x04{"Width":100,"Height":30}',
            b"\x00echo ready\n",
            (1, b"ready\r\n"),
            # again once the shell runs: a resize that reaches the node before the terminal
            # exists may be lost (seen with kwok under load)
            b'\x04{"Width":100,"Height":30}',
            b"\x00stty size\n",
            (1, b"30 100\r\n"),
            b"\x00echo tty-ok\n",
            (1, b"tty-ok\r\n"),
            b"\x00exit\n",
        ]
        run = await exec_session(s, url, [V5, V4], steps)
        assert b"30 100\r\n" in run.data(1) and b"tty-ok\r\n" in run.data(1), (t.name, run)
        assert run.data(2) == b"" and run.frames[-1] == (3, V5_SUCCESS), (t.name, run.frames)


async def check_exec_errors(t: StreamTarget) -> None:
    pod = t.pod
    async with t.session() as s:
        json_cases = [
            (
                t.exec_path("echo", stdout="true"),
                status(
                    400,
                    "BadRequest",
                    f"a container name must be specified for pod {pod}, choose one of: [app side]",
                ),
            ),
            (
                t.exec_path("echo", container="nosuch", stdout="true"),
                status(400, "BadRequest", f"container nosuch is not valid for pod {pod}"),
            ),
            (
                t.exec_path("echo", pod="nosuch", stdout="true"),
                status(
                    404, "NotFound", 'pods "nosuch" not found', {"name": "nosuch", "kind": "pods"}
                ),
            ),
            (
                t.exec_path("echo", pod=t.unscheduled, stdout="true"),
                status(400, "BadRequest", f"pod {t.unscheduled} does not have a host assigned"),
            ),
        ]
        for url, expected in json_cases:
            for protocol in (V5, V4):
                code, _, body = await upgrade_refused(
                    s, url, **{"Sec-WebSocket-Protocol": protocol}
                )
                assert code == expected["code"], (t.name, url, code, body)
                assert json.loads(body) == expected, (t.name, url)
        url = t.exec_path("echo", "x", container="app", stdout="true")
        for method in ("GET", "POST"):  # no Upgrade header: kubectl's old SPDY client or a typo
            async with s.request(method, url) as response:
                assert response.status == 400, (t.name, method)
                assert await response.json() == status(
                    400, "BadRequest", "Upgrade request required"
                )
        code, _, _ = await upgrade_refused(s, url, "POST", **{"Sec-WebSocket-Protocol": V5})
        assert code == 405, (t.name, code)  # WebSockets are GET only

        nothing = t.exec_path("echo", container="app")
        run = await exec_session(s, nothing, [V5])
        inner = "unable to upgrade connection: you must specify at least 1 of stdin, stdout, stderr"
        assert run.frames == [
            (3, b""),
            (
                3,
                json.dumps(
                    {
                        "metadata": {},
                        "status": "Failure",
                        "message": f"Internal error occurred: {inner}",
                        "reason": "InternalError",
                        "details": {"causes": [{"message": inner}]},
                        "code": 500,
                    },
                    separators=(",", ":"),
                ).encode(),
            ),
        ], (t.name, run.frames)
        code, headers, body = await upgrade_refused(s, nothing, **{"Sec-WebSocket-Protocol": V4})
        assert (code, body) == (400, b"you must specify at least 1 of stdin, stdout, stderr\n")
        assert headers["Content-Type"] == "text/plain; charset=utf-8", headers


# -- kubectl ---------------------------------------------------------------------------------


def kubectl(binary: str, kubeconfig: str, namespace: str, *args: str, stdin: str | None = None):
    return subprocess.run(
        [binary, "--kubeconfig", kubeconfig, "-n", namespace, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def check_kubectl_logs(t: StreamTarget, binary: str, kubeconfig: str) -> None:
    t.append("app", "two")
    run = kubectl(binary, kubeconfig, t.namespace, "logs", t.pod)
    assert (run.returncode, run.stdout) == (0, "one\ntwo\n"), run
    assert 'Defaulted container "app" out of: app, side' in run.stderr, run.stderr
    run = kubectl(binary, kubeconfig, t.namespace, "logs", t.pod, "-c", "app", "--tail=1")
    assert (run.returncode, run.stdout) == (0, "two\n"), run
    run = kubectl(binary, kubeconfig, t.namespace, "logs", t.pod, "-c", "app", "--timestamps")
    assert [STAMP.sub("", line) for line in run.stdout.splitlines()] == ["one", "two"], run
    run = kubectl(binary, kubeconfig, t.namespace, "logs", t.pod, "-c", "app", "--previous")
    assert run.returncode == 1 and "Error from server (BadRequest): " in run.stderr, run
    t.append_previous("app", "previous one")
    run = kubectl(binary, kubeconfig, t.namespace, "logs", t.pod, "-c", "app", "--previous")
    assert (run.returncode, run.stdout) == (0, "previous one\n"), run
    run = kubectl(binary, kubeconfig, t.namespace, "logs", "nosuch")
    assert run.returncode == 1, run
    assert f'pods "nosuch" not found in namespace "{t.namespace}"' in run.stderr, run.stderr


def check_kubectl_follow(t: StreamTarget, binary: str, kubeconfig: str) -> subprocess.Popen:
    """`kubectl logs -f` sees lines as they are appended; returns the still-running process."""
    proc = subprocess.Popen(
        [binary, "--kubeconfig", kubeconfig, "-n", t.namespace, "logs", "-f", t.pod, "-c", "app"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = LineReader(proc)
    assert lines.next() == "one\n"
    t.append("app", "followed 1")
    assert lines.next() == "followed 1\n"
    t.append("app", "followed 2")
    assert lines.next() == "followed 2\n"
    return proc


class LineReader:
    """Lines of a process's stdout, each awaited with a bound (a thread does the blocking)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self._lines: list[str] = []
        self._ready = threading.Condition()
        self._done = False
        threading.Thread(target=self._pump, args=(proc,), daemon=True).start()

    def _pump(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._ready:
                self._lines.append(line)
                self._ready.notify_all()
        with self._ready:
            self._done = True
            self._ready.notify_all()

    def next(self, timeout: float = TIMEOUT) -> str:
        with self._ready:
            if not self._ready.wait_for(lambda: self._lines or self._done, timeout):
                raise AssertionError(f"no line within {timeout} s")
            if not self._lines:
                return ""  # end of output
            return self._lines.pop(0)


def check_kubectl_exec(t: StreamTarget, binary: str, kubeconfig: str) -> None:
    run = kubectl(binary, kubeconfig, t.namespace, "exec", t.pod, "-c", "app", "--",
                  "/bin/sh", "-c", "echo hi")  # fmt: skip
    assert (run.returncode, run.stdout, run.stderr) == (0, "hi\n", ""), run
    run = kubectl(binary, kubeconfig, t.namespace, "exec", t.pod, "--", "echo", "hi")
    assert (run.returncode, run.stdout) == (0, "hi\n"), run
    assert 'Defaulted container "app" out of: app, side' in run.stderr, run.stderr
    run = kubectl(binary, kubeconfig, t.namespace, "exec", t.pod, "-c", "app", "--",
                  "/bin/sh", "-c", "echo out; echo err >&2")  # fmt: skip
    assert (run.returncode, run.stdout, run.stderr) == (0, "out\n", "err\n"), run
    run = kubectl(binary, kubeconfig, t.namespace, "exec", "-i", t.pod, "-c", "app", "--",
                  "/bin/sh", "-c", "read a; read b; echo got:$a/$b",
                  stdin="first\nsecond\n")  # fmt: skip
    assert (run.returncode, run.stdout) == (0, "got:first/second\n"), run
    run = kubectl(binary, kubeconfig, t.namespace, "exec", t.pod, "-c", "nosuch", "--", "echo")
    assert run.returncode == 1, run
    assert f"container nosuch is not valid for pod {t.pod}" in run.stderr, run.stderr
