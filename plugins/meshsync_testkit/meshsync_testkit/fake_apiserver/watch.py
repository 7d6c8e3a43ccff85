"""Serving one watch: a chunked stream of newline-delimited JSON events.

A :class:`~.store.Watcher` collects events under the store lock (from any thread); the
:class:`WatchStream` here runs on the server's event loop, drains that queue and writes the
events, plus bookmarks, the ``sendInitialEvents`` marker, and the faults a test asked for
(expire, drop, hang). It ends the stream on ``timeoutSeconds`` exactly like kube-apiserver:
a clean end of the chunked body with no final event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from . import tables
from .encoding import bookmark_line, event_line, render
from .errors import ApiError, bad_request, status_body
from .resources import ResourceType
from .store import Entry, Watcher

if TYPE_CHECKING:
    from .server import FakeApiServer

#: Events per write while replaying a large initial state (keeps each chunk a few MB).
BATCH = 500


def truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true")


@dataclass(slots=True)
class WatchOptions:
    """The query parameters of a watch request that shape the stream."""

    start_rv: int | None  # None: start with ADDED for the current state
    send_initial: bool
    bookmarks: bool
    timeout: float | None
    as_table: bool
    include_object: str

    @classmethod
    def parse(cls, query: Mapping[str, str], accept: str) -> WatchOptions:
        rv = query.get("resourceVersion", "")
        send_initial = truthy(query.get("sendInitialEvents"))
        try:
            start_rv = None if rv in ("", "0") or send_initial else int(rv)
        except ValueError:
            raise bad_request(f"invalid resource version: {rv!r}") from None
        raw_timeout = query.get("timeoutSeconds")
        try:
            timeout = float(raw_timeout) if raw_timeout else None
        except ValueError:
            raise bad_request(f"invalid timeoutSeconds {raw_timeout!r}") from None
        return cls(
            start_rv=start_rv,
            send_initial=send_initial,
            bookmarks=truthy(query.get("allowWatchBookmarks")),
            timeout=timeout,
            as_table=tables.wants_table(accept),
            include_object=query.get("includeObject", "PartialObjectMetadata"),
        )


def make_notifier(loop: asyncio.AbstractEventLoop, wake: asyncio.Event) -> Callable[[], None]:
    """A thread-safe, coalescing "you have events" callback for one watch."""
    pending = False

    def fire() -> None:
        nonlocal pending
        pending = False
        wake.set()

    def notify() -> None:
        nonlocal pending
        if pending:
            return
        pending = True
        with contextlib.suppress(RuntimeError):  # loop already closed: nobody to wake
            loop.call_soon_threadsafe(fire)

    return notify


class WatchStream:
    """One open watch connection."""

    def __init__(
        self,
        server: FakeApiServer,
        request: web.Request,
        rt: ResourceType,
        watcher: Watcher,
        wake: asyncio.Event,
        opts: WatchOptions,
    ) -> None:
        self.server = server
        self.request = request
        self.rt = rt
        self.watcher = watcher
        self.wake = wake
        self.opts = opts
        self.response = web.StreamResponse(
            status=200,
            headers={"Content-Type": "application/json", "Cache-Control": "no-cache, private"},
        )
        self.response.enable_chunked_encoding()
        self._table_header_sent = False

    async def run(self) -> web.StreamResponse:
        store = self.server.store
        try:
            store.add_watcher(self.watcher, self.opts.start_rv)
        except ApiError as err:
            # kube-apiserver reports a too-old resourceVersion inside the stream, not as a 410.
            await self.response.prepare(self.request)
            await self.response.write(event_line(b"ERROR", orjson.dumps(err.status())))
            await self.response.write_eof()
            return self.response
        try:
            await self.response.prepare(self.request)
            if await self._serve():
                await self.response.write_eof()
        except ConnectionError:
            pass  # the client went away
        finally:
            store.remove_watcher(self.watcher)
        return self.response

    async def _serve(self) -> bool:
        """Stream until the watch ends; False if the connection was cut on purpose."""
        loop = asyncio.get_running_loop()
        faults = self.server.faults
        interval = self.server.bookmark_interval
        deadline = loop.time() + self.opts.timeout if self.opts.timeout else None
        next_bookmark = loop.time() + interval
        initial_end_pending = self.opts.send_initial
        while True:
            self.wake.clear()
            control = self.watcher.control
            if control == "drop":
                if self.request.transport is not None:
                    self.request.transport.abort()
                return False
            now = loop.time()
            hung = faults.watches_hung and control not in ("close", "expire")
            if not hung:
                items, rv = self.server.store.drain(self.watcher)
                for start in range(0, len(items), BATCH):
                    await self.response.write(self._encode(items[start : start + BATCH]))
                tail: list[bytes] = []
                if initial_end_pending:
                    tail.append(bookmark_line(self.rt, rv, initial_end=True))
                    initial_end_pending = False
                if self.opts.bookmarks and now >= next_bookmark:
                    tail.append(bookmark_line(self.rt, rv))
                    next_bookmark = now + interval
                if control == "expire":
                    status = status_body(410, f"too old resource version: {rv}", "Expired")
                    tail.append(event_line(b"ERROR", orjson.dumps(status)))
                if tail:
                    await self.response.write(b"".join(tail))
                if control in ("expire", "close") or self.server.stopping:
                    return True
                if deadline is not None and now >= deadline:
                    return True
            # A hung stream sends nothing and never times out: it looks dead to the client.
            waits = [] if hung else [t - now for t in (deadline,) if t is not None]
            if self.opts.bookmarks and not hung:
                waits.append(next_bookmark - now)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.wake.wait(), max(0.0, min(waits)) if waits else None)

    def _encode(self, items: list[tuple[str, Entry]]) -> bytes:
        lines = []
        for kind, entry in items:
            raw = render(entry, self.rt)
            if self.opts.as_table:
                row = tables.row(entry, self.opts.include_object, raw)
                # Like kube-apiserver, only the first Table event carries the column headers.
                raw = tables.table([row], with_columns=not self._table_header_sent)
                self._table_header_sent = True
            lines.append(event_line(kind.encode(), raw))
        return b"".join(lines)
