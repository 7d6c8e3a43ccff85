"""Pod logs and exec through the Kubernetes API, as kubectl does them.

* Logs: ``GET /api/v1/namespaces/<ns>/pods/<name>/log`` (``container``, ``follow``,
  ``previous``, ``timestamps``, ``tailLines``), read as the server sends it.
* Exec: ``pods/<name>/exec`` over a WebSocket speaking the ``v5.channel.k8s.io`` protocol
  (kubectl 1.30+), ``v4.channel.k8s.io`` when the server offers no v5. Every binary message
  starts with its channel: 0 stdin, 1 stdout, 2 stderr, 3 the final ``Status`` (JSON), 4
  terminal resize; v5 adds 255, "close this channel" (half-closing stdin).

Both go through the source's :class:`~meshsync_k8s.client.ApiClient`, so they use its TLS,
credentials (refreshed as for every request) and proxy, and the cluster's RBAC decides what
is allowed: ``get`` on ``pods/log``, ``create`` on ``pods/exec`` (and ``get``, which API
servers before 1.35 check for the WebSocket's GET). Every failure is a
:class:`~meshsync_core.StreamError` whose message is the API server's own (``pods "web" not
found``, ``container "x" is not valid for pod "web"``, the RBAC refusal naming the user).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from meshsync_core import ExecSession, LogOptions, StreamError, StreamTarget
from meshsync_core import streams as kinds
from meshsync_k8s.client import ApiClient, ApiError

#: WebSocket subprotocols offered for exec, in order of preference (kubectl's).
EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
_NETWORK_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)


def stream_error(exc: ApiError, what: str) -> StreamError:
    """An API failure as a StreamError of the right kind, the server's message kept."""
    if exc.code == 403:
        kind = kinds.FORBIDDEN
    elif exc.code == 404:
        kind = kinds.NOT_FOUND
    elif exc.code in (400, 422):
        kind = kinds.INVALID
    else:
        kind = kinds.UNAVAILABLE
    detail = exc.message or exc.reason
    status = f"HTTP {exc.code} {exc.reason}" if exc.code else exc.reason
    return StreamError(f"{what}: {detail} ({status})", kind=kind, code=exc.code)


def pod_path(target: StreamTarget, subresource: str) -> str:
    if not target.namespace or not target.name:
        raise StreamError("a pod needs a namespace and a name", kind=kinds.INVALID)
    namespace, name = quote(target.namespace, safe=""), quote(target.name, safe="")
    return f"/api/v1/namespaces/{namespace}/pods/{name}/{subresource}"


def log_params(target: StreamTarget, options: LogOptions) -> dict[str, str]:
    """The query of a pods/log request (only what differs from the server's defaults)."""
    params: dict[str, str] = {}
    if target.container:
        params["container"] = target.container
    if options.follow:
        params["follow"] = "true"
    if options.previous:
        params["previous"] = "true"
    if options.timestamps:
        params["timestamps"] = "true"
    if options.tail_lines is not None:
        if options.tail_lines < 0:
            raise StreamError("tail lines must be 0 or more", kind=kinds.INVALID)
        params["tailLines"] = str(options.tail_lines)
    return params


def exec_params(target: StreamTarget, command: Sequence[str], tty: bool) -> list[tuple[str, str]]:
    """The query of a pods/exec request, as client-go encodes ``PodExecOptions``."""
    if not command:
        raise StreamError("exec needs a command", kind=kinds.INVALID)
    params = [("command", part) for part in command]
    if target.container:
        params.append(("container", target.container))
    params += [("stdin", "true"), ("stdout", "true"), ("stderr", "true")]
    if tty:
        params.append(("tty", "true"))
    return params


def exit_failure(status: Any) -> str | None:
    """The failure a ``Status`` on the error channel reports (a non-zero exit in kubectl's
    words, anything else as the server's message)."""
    if not isinstance(status, dict) or status.get("status") == "Success":
        return None
    if status.get("reason") == "NonZeroExitCode":
        causes = (status.get("details") or {}).get("causes") or []
        for cause in causes:
            if isinstance(cause, dict) and cause.get("reason") == "ExitCode":
                return f"command terminated with exit code {cause.get('message')}"
    return str(status.get("message") or status.get("reason") or "command failed")


class WebSocketExec:
    """A running exec: stdin in, stdout and stderr out (merged), the final status kept."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, target: StreamTarget) -> None:
        self.ws = ws
        self.target = target
        #: The subprotocol the server chose.
        self.protocol = ws.protocol or ""
        self._failure: str | None = None
        self._closed = False

    @property
    def failure(self) -> str | None:
        return self._failure

    async def send(self, data: bytes) -> None:
        if self._closed or self.ws.closed:
            raise StreamError(f"the exec session in {self.target.describe()} has ended")
        try:
            await self.ws.send_bytes(bytes((STDIN,)) + data)
        except (*_NETWORK_ERRORS, RuntimeError) as exc:
            raise StreamError(f"cannot write to {self.target.describe()}: {exc}") from None

    async def output(self) -> AsyncIterator[bytes]:
        ws = self.ws
        while True:
            try:
                msg = await ws.receive()
            except _NETWORK_ERRORS as exc:
                self._failure = self._failure or f"connection lost: {exc}"
                return
            if msg.type is aiohttp.WSMsgType.BINARY:
                data: bytes = msg.data
                if not data:
                    continue
                channel, payload = data[0], data[1:]
                if channel in (STDOUT, STDERR):
                    if payload:
                        yield payload
                elif channel == ERROR and payload:
                    try:
                        self._failure = exit_failure(orjson.loads(payload))
                    except orjson.JSONDecodeError:
                        self._failure = payload.decode(errors="replace").strip() or None
            elif msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
            ):
                return
            elif msg.type is aiohttp.WSMsgType.ERROR:
                if not self._closed:
                    self._failure = self._failure or f"connection lost: {ws.exception()}"
                return
            # text frames belong to the base64 protocols, which are not offered

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(*_NETWORK_ERRORS, RuntimeError):
            if self.protocol.startswith("v5.") and not self.ws.closed:
                await self.ws.send_bytes(bytes((CLOSE, STDIN)))
        with contextlib.suppress(*_NETWORK_ERRORS, RuntimeError):
            await self.ws.close()


class PodStreams:
    """:class:`~meshsync_core.WorkloadStreams` for the pods of one cluster."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    async def stream_logs(self, target: StreamTarget, options: LogOptions) -> AsyncIterator[bytes]:
        what = f"cannot read the log of {target.describe()}"
        path = pod_path(target, "log")
        params = log_params(target, options)
        try:
            resp = await self.client.open_stream(path, params)
        except ApiError as exc:
            raise stream_error(exc, what) from None
        try:
            async for chunk in resp.content.iter_any():
                if chunk:
                    yield chunk
        except _NETWORK_ERRORS as exc:
            raise StreamError(
                f"the log of {target.describe()} broke off: {exc or type(exc).__name__}"
            ) from None
        finally:
            resp.close()

    async def open_exec(
        self, target: StreamTarget, command: Sequence[str], *, tty: bool = True
    ) -> ExecSession:
        path = pod_path(target, "exec")
        params = exec_params(target, command, tty)
        try:
            ws = await self.client.ws_connect(path, params, EXEC_PROTOCOLS)
        except ApiError as exc:
            raise stream_error(exc, f"cannot exec in {target.describe()}") from None
        if ws.protocol not in EXEC_PROTOCOLS:
            await ws.close()
            raise StreamError(
                f"cannot exec in {target.describe()}: the API server speaks none of "
                f"{', '.join(EXEC_PROTOCOLS)} (chose {ws.protocol or 'no subprotocol'})"
            )
        return WebSocketExec(ws, target)
