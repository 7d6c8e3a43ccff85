"""A thin async Kubernetes API client working on decoded JSON dicts (aiohttp + orjson).

No generated model classes: a Pod is decoded once by orjson and handed on as that dict, which
is what makes the source fast and light. Every failure surfaces as :class:`ApiError` with the
HTTP status (0 for connection problems and timeouts) and the Kubernetes ``reason``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import aiohttp
import orjson

from meshsync_k8s.kubeconfig import Connection

#: Page size of list calls (client-go's reflector uses 500 as well).
DEFAULT_PAGE_SIZE = 500


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

_gc_pauses = 0
_gc_reenable = False
_gc_paused_since = 0.0
#: Longest stretch (s) that overlapping pauses may keep the collector from running.
MAX_GC_PAUSE = 1.0


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for a block (nestable, safe across tasks).

    Decoded JSON is a tree: reference counting frees every page as soon as the sinks are done
    with it, and the cyclic collector can find nothing in it. But a 500-object page is ~75,000
    containers, so without a pause the collector runs ~100 young-generation passes per page
    and keeps re-traversing the pages in flight - which halves list throughput. The pause is
    held while a page is decoded and emitted; the collector runs normally between pages.
    """
    global _gc_pauses, _gc_reenable, _gc_paused_since
    if _gc_pauses == 0:
        _gc_reenable = gc.isenabled()
        _gc_paused_since = time.monotonic()
        gc.disable()
    _gc_pauses += 1
    try:
        yield
    finally:
        _gc_pauses -= 1
        if _gc_pauses == 0:
            if _gc_reenable:
                gc.enable()
        elif _gc_reenable and time.monotonic() - _gc_paused_since > MAX_GC_PAUSE:
            # Overlapping pauses (several lists, a slow sink) must not starve the collector:
            # collect the young generations now and then, as it would have done by itself.
            gc.collect(1)
            _gc_paused_since = time.monotonic()


def decode(body: bytes) -> Any:
    """``orjson.loads`` with the cyclic collector paused (see :func:`gc_paused`)."""
    with gc_paused():
        return orjson.loads(body)


_NETWORK_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


class ApiClient:
    """One aiohttp session to the API server; cheap to share between all watchers."""

    def __init__(
        self,
        connection: Connection,
        *,
        connect_timeout: float = 10.0,
        request_timeout: float = 60.0,
    ) -> None:
        self.connection = connection
        self.base = connection.server.rstrip("/")
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
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

    def _kwargs(self, timeout: aiohttp.ClientTimeout) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"headers": self.connection.headers, "timeout": timeout}
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
        for attempt in (1, 2):
            try:
                async with self.session.get(
                    self.base + path, params=params, **self._kwargs(timeout)
                ) as resp:
                    body = await resp.read()
                    if resp.status == 401 and attempt == 1 and await self._refresh():
                        continue
                    if resp.status >= 300:
                        raise _status_error(resp.status, body)
                    return body
            except ApiError:
                raise
            except _NETWORK_ERRORS as exc:
                raise ApiError(0, type(exc).__name__, _describe(exc, self.base)) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _refresh(self) -> bool:
        try:
            return await asyncio.to_thread(self.connection.refresh_credentials)
        except Exception:
            return False

    async def list_pages(
        self, path: str, params: Mapping[str, Any] | None = None, limit: int = DEFAULT_PAGE_SIZE
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield each page (a decoded List) of a paginated list.

        The next page is requested as soon as the current one is decoded, so the server
        prepares page n+1 while the caller processes page n. It is kept as bytes until the
        caller asks for it: a decoded page weighs ~5x its JSON.
        """
        base = {**(params or {}), "limit": str(limit)}
        pending: asyncio.Future[bytes] | None = asyncio.ensure_future(self.get_bytes(path, base))
        try:
            while pending is not None:
                body = await pending
                pending = None
                try:
                    page = decode(body)
                except orjson.JSONDecodeError as exc:
                    raise ApiError(0, "InvalidResponse", f"GET {path}: not JSON ({exc})") from None
                del body
                if not isinstance(page, dict):
                    raise ApiError(0, "InvalidResponse", f"GET {path}: not a List")
                meta = page.get("metadata")
                token = meta.get("continue") if isinstance(meta, dict) else None
                if token:
                    query = {**base, "continue": token}
                    pending = asyncio.ensure_future(self.get_bytes(path, query))
                yield page
                del page, meta  # do not hold this page while the next one is awaited
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending

    async def _open_stream(
        self, path: str, query: Mapping[str, Any], timeout: aiohttp.ClientTimeout
    ) -> aiohttp.ClientResponse:
        """Start a streaming GET; on 401 refresh rotating credentials and try once more."""
        for attempt in (1, 2):
            resp = await self.session.get(self.base + path, params=query, **self._kwargs(timeout))
            if resp.status < 300:
                return resp
            async with resp:
                body = await resp.read()
            if resp.status == 401 and attempt == 1 and await self._refresh():
                continue
            raise _status_error(resp.status, body)
        raise AssertionError("unreachable")  # pragma: no cover

    async def watch(
        self,
        path: str,
        params: Mapping[str, Any],
        *,
        inactivity_timeout: float,
    ) -> AsyncIterator[tuple[str, Any]]:
        """Yield ``(type, object)`` from a watch stream until the server ends it.

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
                            event = orjson.loads(line)
                            kind, obj = event["type"], event["object"]
                        except (orjson.JSONDecodeError, KeyError, TypeError):
                            yield "MALFORMED", bytes(line[:120])
                            continue
                        yield kind, obj
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
