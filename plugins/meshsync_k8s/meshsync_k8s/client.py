"""A thin async Kubernetes API client working on JSON, never on model classes (aiohttp).

No generated model classes: list items and watched objects come out as their raw JSON
(:mod:`meshsync_k8s.raw_json`), decoded into plain dicts only when somebody reads them, which
is what makes the source fast and light. Every failure surfaces as :class:`ApiError` with the
HTTP status (0 for connection problems and timeouts) and the Kubernetes ``reason``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import aiohttp
import orjson

from meshsync_core import ConfigError, gc_paused
from meshsync_k8s import raw_json
from meshsync_k8s.kubeconfig import Connection
from meshsync_k8s.raw_json import ListPage

#: Page size of list calls (client-go's reflector uses 500 as well).
DEFAULT_PAGE_SIZE = 500
#: Seconds to establish a connection, and for a whole request other than a watch.
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_REQUEST_TIMEOUT = 60.0


class ApiError(Exception):
    """A failed API call: ``code`` is the HTTP status, or 0 when no response arrived."""

    def __init__(self, code: int, reason: str, message: str = "") -> None:
        self.code = code
        self.reason = reason
        self.message = message
        super().__init__(f"{code} {reason}: {message}" if message else f"{code} {reason}")

    @property
    def expired(self) -> bool:
        """The resourceVersion or continue token is too old: the caller has to re-list."""
        return self.code == 410 or self.reason in {"Expired", "Gone"}

    @property
    def transient(self) -> bool:
        """Worth retrying soon with backoff (connection trouble, 5xx, throttling)."""
        return self.code == 0 or self.code >= 500 or self.code in (408, 429)


def _status_error(code: int, body: bytes) -> ApiError:
    reason, message = "", ""
    try:
        status = orjson.loads(body)
        if isinstance(status, dict):
            reason = str(status.get("reason") or "")
            message = str(status.get("message") or "")
    except orjson.JSONDecodeError:
        message = body[:200].decode(errors="replace").strip()
    return ApiError(code, reason or _REASONS.get(code, "Error"), message)


_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    410: "Expired",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


T = TypeVar("T")


class _Unauthorized(Exception):
    """A 401: :meth:`ApiClient._with_refresh` refreshes the credentials and tries again, or
    raises ``error``."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(str(error))
        self.error = error


def _check(status: int, body: bytes) -> None:
    """Raise for an answer that is not a success (a 401 as :class:`_Unauthorized`)."""
    if status == 401:
        raise _Unauthorized(_status_error(status, body))
    if status >= 300:
        raise _status_error(status, body)


def decode(body: bytes) -> Any:
    """``orjson.loads`` with the cyclic collector paused (see :mod:`meshsync_core.gc_pause`)."""
    with gc_paused():
        return orjson.loads(body)


_NETWORK_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


class ApiClient:
    """One aiohttp session to the API server; cheap to share between all watchers."""

    def __init__(
        self,
        connection: Connection,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        self.connection = connection
        self.base = connection.server.rstrip("/")
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self._session: aiohttp.ClientSession | None = None
        self._tls_generation = connection.tls_generation

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._tls_generation = self.connection.tls_generation
            ssl_arg: Any = True if self.connection.ssl is None else self.connection.ssl
            # One long-lived HTTP/1.1 connection per watch: no pool limit.
            connector = aiohttp.TCPConnector(limit=0, ssl=ssl_arg, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"Accept": "application/json", "User-Agent": "meshsync-python"},
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def _fresh_credentials(self) -> None:
        """Before a request: renew an expired exec or oidc credential (client-go does so per
        request), and after a rotated client certificate drop the connections made with the
        old one (client-go closes them too; watches on them resume from their last version)."""
        if self.connection.credentials_due():
            try:
                await asyncio.to_thread(self.connection.refresh_due)
            except ConfigError as exc:
                raise ApiError(0, "CredentialError", str(exc)) from None
        if self.connection.tls_generation != self._tls_generation:
            self._tls_generation = self.connection.tls_generation
            await self.close()

    def _kwargs(self, timeout: aiohttp.ClientTimeout) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"headers": self.connection.headers, "timeout": timeout}
        if self.connection.proxy:
            kwargs["proxy"] = self.connection.proxy
        if self.connection.server_hostname:
            kwargs["server_hostname"] = self.connection.server_hostname
        return kwargs

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``path`` and decode its JSON body; raise ApiError on any failure."""
        body = await self.get_bytes(path, params)
        try:
            return decode(body)
        except orjson.JSONDecodeError as exc:
            raise ApiError(0, "InvalidResponse", f"GET {path}: not JSON ({exc})") from None

    async def get_retrying(
        self, path: str, params: Mapping[str, Any] | None = None, attempts: int = 4
    ) -> Any:
        """:meth:`get`, retrying HTTP 5xx/429 answers a few times (start-up, discovery).

        Connection failures are not retried here: at start-up they mean a wrong address, and
        the user should hear about it at once.
        """
        for attempt in range(attempts):
            try:
                return await self.get(path, params)
            except ApiError as exc:
                if exc.code == 0 or not exc.transient or attempt == attempts - 1:
                    raise
                await asyncio.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def get_bytes(self, path: str, params: Mapping[str, Any] | None = None) -> bytes:
        timeout = aiohttp.ClientTimeout(
            total=self.request_timeout, sock_connect=self.connect_timeout
        )

        async def once() -> bytes:
            try:
                async with self.session.get(
                    self.base + path, params=params, **self._kwargs(timeout)
                ) as resp:
                    body = await resp.read()
            except _NETWORK_ERRORS as exc:
                raise ApiError(0, type(exc).__name__, _describe(exc, self.base)) from None
            _check(resp.status, body)
            return body

        return await self._with_refresh(once)

    async def send(self, method: str, path: str, body: Any = None) -> Any:
        """One JSON request (GET, POST, PUT, DELETE) decoded; raise ApiError on any failure.

        For the few writes MeshSync makes (its leader Lease); lists and watches stream instead.
        """
        timeout = aiohttp.ClientTimeout(
            total=self.request_timeout, sock_connect=self.connect_timeout
        )
        data = None if body is None else orjson.dumps(body)

        async def once() -> Any:
            kwargs = self._kwargs(timeout)
            if data is not None:
                kwargs["headers"] = {**kwargs["headers"], "Content-Type": "application/json"}
            try:
                async with self.session.request(
                    method, self.base + path, data=data, **kwargs
                ) as resp:
                    answer = await resp.read()
            except _NETWORK_ERRORS as exc:
                raise ApiError(0, type(exc).__name__, _describe(exc, self.base)) from None
            _check(resp.status, answer)
            try:
                return decode(answer) if answer else None
            except orjson.JSONDecodeError as exc:
                raise ApiError(0, "InvalidResponse", f"{method} {path}: not JSON ({exc})") from None

        return await self._with_refresh(once)

    async def _with_refresh(self, once: Callable[[], Awaitable[T]]) -> T:
        """Run one request; when the server answers 401, refresh rotating credentials (an exec
        plugin's token, an OIDC token, a projected service-account token) and try once more.
        The one place every request kind (plain, streaming, WebSocket) goes through."""
        for first in (True, False):
            await self._fresh_credentials()
            sent = self.connection.headers.get("Authorization")
            try:
                return await once()
            except _Unauthorized as refused:
                if first and await self._refresh(sent):
                    continue
                raise refused.error from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _refresh(self, refused: str | None) -> bool:
        try:
            return await asyncio.to_thread(self.connection.refresh_credentials, refused)
        except Exception:
            return False

    async def list_pages(
        self, path: str, params: Mapping[str, Any] | None = None, limit: int = DEFAULT_PAGE_SIZE
    ) -> AsyncGenerator[ListPage, None]:
        """Yield each page of a paginated list, its items as undecoded JSON slices.

        The next page is requested as soon as the current one is split, so the server
        prepares page n+1 while the caller processes page n.
        """
        base = {**(params or {}), "limit": str(limit)}
        pending: asyncio.Future[bytes] | None = asyncio.ensure_future(self.get_bytes(path, base))
        try:
            while pending is not None:
                body = await pending
                pending = None
                try:
                    page = raw_json.decode_page(body)
                except raw_json.DecodeError as exc:
                    problem = f"GET {path}: not a List ({exc})"
                    raise ApiError(0, "InvalidResponse", problem) from None
                del body
                token = page.continue_token
                if token:
                    query = {**base, "continue": token}
                    pending = asyncio.ensure_future(self.get_bytes(path, query))
                yield page
                del page  # do not hold this page while the next one is awaited
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending

    async def _open_stream(
        self, path: str, query: Mapping[str, Any], timeout: aiohttp.ClientTimeout
    ) -> aiohttp.ClientResponse:
        """Start a streaming GET (through :meth:`_with_refresh`)."""

        async def once() -> aiohttp.ClientResponse:
            resp = await self.session.get(self.base + path, params=query, **self._kwargs(timeout))
            if resp.status < 300:
                return resp
            async with resp:
                body = await resp.read()
            _check(resp.status, body)
            raise AssertionError("unreachable")  # pragma: no cover - _check raised

        return await self._with_refresh(once)

    async def open_stream(
        self, path: str, params: Mapping[str, Any], *, read_timeout: float | None = None
    ) -> aiohttp.ClientResponse:
        """A streaming GET (pod logs): the response, to read and close; raises ApiError.

        ``read_timeout`` bounds the silence between two chunks (None: a followed log may
        stay quiet for as long as it likes).
        """
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.connect_timeout, sock_read=read_timeout
        )
        try:
            return await self._open_stream(path, params, timeout)
        except ApiError:
            raise
        except _NETWORK_ERRORS as exc:
            raise ApiError(0, type(exc).__name__, _describe(exc, self.base)) from None

    async def ws_connect(
        self, path: str, params: Any, protocols: Sequence[str]
    ) -> aiohttp.ClientWebSocketResponse:
        """Open a WebSocket to ``path`` (``pods/<name>/exec``) offering ``protocols`` in order
        of preference; the server picks one (``ws.protocol``). Raises ApiError.

        A refused upgrade carries no readable body in aiohttp, so the Kubernetes ``Status``
        message is fetched with the same request as a plain ``POST`` (refused the same way,
        before anything runs: the server wants an upgrade).
        """

        async def once() -> aiohttp.ClientWebSocketResponse:
            kwargs = self._kwargs(aiohttp.ClientTimeout(total=self.request_timeout))
            kwargs["timeout"] = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10.0)
            try:
                return await self.session.ws_connect(
                    self.base + path,
                    params=params,
                    protocols=tuple(protocols),
                    autoping=True,
                    **kwargs,
                )
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status >= 300:
                    refusal = await self._refusal(path, params, exc.status)
                    raise (_Unauthorized(refusal) if exc.status == 401 else refusal) from None
                raise ApiError(
                    0, "UpgradeFailed", f"WebSocket upgrade failed: {exc.message}"
                ) from None
            except _NETWORK_ERRORS as exc:
                raise ApiError(0, type(exc).__name__, _describe(exc, self.base)) from None

        return await self._with_refresh(once)

    async def _refusal(self, path: str, params: Any, status: int) -> ApiError:
        """Why the server refused a WebSocket upgrade: its ``Status`` for the same request."""
        timeout = aiohttp.ClientTimeout(total=self.request_timeout)
        try:
            async with self.session.post(
                self.base + path, params=params, **self._kwargs(timeout)
            ) as resp:
                body = await resp.read()
                if resp.status == status:
                    return _status_error(status, body)
        except _NETWORK_ERRORS:
            pass
        return ApiError(status, _REASONS.get(status, "Error"), "WebSocket upgrade refused")

    async def watch(
        self,
        path: str,
        params: Mapping[str, Any],
        *,
        inactivity_timeout: float,
    ) -> AsyncGenerator[tuple[str, Any], None]:
        """Yield ``(type, raw object JSON)`` from a watch stream until the server ends it.

        A line that is not a watch event is yielded as ``("MALFORMED", what is wrong)``.

        ``inactivity_timeout`` bounds the silence between two chunks, so a stream that died
        without a FIN (a vanished load balancer) is noticed. Raises ApiError.
        """
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.connect_timeout, sock_read=inactivity_timeout
        )
        query = {**params, "watch": "1"}
        try:
            resp = await self._open_stream(path, query, timeout)
            async with resp:
                pending = bytearray()
                async for chunk in resp.content.iter_any():
                    pending += chunk
                    start = 0
                    while True:
                        end = pending.find(b"\n", start)
                        if end < 0:
                            break
                        line = pending[start:end]
                        start = end + 1
                        if not line.strip():
                            continue
                        try:
                            event = raw_json.decode_watch_line(line)
                        except raw_json.DecodeError as exc:
                            # never the line itself: it may be part of a Secret
                            yield "MALFORMED", f"{len(line)} bytes; {exc}"
                            continue
                        yield event.type, event.object
                    if start:
                        del pending[:start]
        except ApiError:
            raise
        except _NETWORK_ERRORS as exc:
            raise ApiError(0, type(exc).__name__, _describe(exc, self.base)) from None


def _describe(exc: BaseException, base: str) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"no data from {base} in time"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]
