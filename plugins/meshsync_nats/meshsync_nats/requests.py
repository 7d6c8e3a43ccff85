"""Requests Meshery Server sends on ``meshery.meshsync.request`` and how each is answered.

A request is ``{"Request": {"Entity": "<name>", "Payload": ...}}``. Each handler is small and
independent; a malformed request or an unknown entity is logged with its reason and ignored,
never disturbing the event stream or other requests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson

from meshsync_core import Event
from meshsync_nats import wire

SUBJECT_REQUEST = "meshery.meshsync.request"
QUEUE_GROUP = "meshsync-request-stream"
SUBJECT_META = "meshsync-meta"
#: Go sends at most five objects per informer-store message; Meshery relies on nothing more.
STORE_BATCH = 5

INFORMER_STORE = "informer-store"
RESYNC = "resync-discovery"
META = "meshsync-meta"
#: Pod logs, shells and the session list: ``meshsync_nats.sessions``.
SESSION_ENTITIES = frozenset({"log-stream", "exec-request", "active-exec"})

Publish = Callable[[str, bytes], Awaitable[None]]


class BadRequest(ValueError):
    """A request we cannot act on; the message is the reason, for one log line."""


def parse_request(data: bytes) -> tuple[str, Any]:
    """``(entity, payload)`` of a request message, or :class:`BadRequest`."""
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"not JSON ({exc.msg})") from None
    if not isinstance(message, dict):
        raise BadRequest("not a JSON object")
    request = message.get("Request")
    if not isinstance(request, dict):
        raise BadRequest('no "Request" object')
    entity = request.get("Entity")
    if not isinstance(entity, str) or not entity:
        raise BadRequest('no "Request.Entity" string')
    return entity, request.get("Payload")


def reply_subject(payload: Any) -> str:
    """The ``Reply`` subject of an informer-store payload (a dict, or the subject itself)."""
    reply = payload.get("Reply", payload.get("reply")) if isinstance(payload, dict) else payload
    if not isinstance(reply, str) or not reply.strip() or any(c in reply for c in " \t\r\n"):
        raise BadRequest('informer-store needs "Payload": {"Reply": "<subject>"}')
    return reply


class RequestHandler:
    """Dispatches one request message; the sink supplies how to publish and reach the engine."""

    def __init__(
        self,
        *,
        log: logging.Logger,
        publish: Publish,
        current_state: Callable[[], AsyncIterator[Event]],
        request_resync: Callable[[], Awaitable[None]],
        version: str,
        meshery_ids: bool = False,
        sessions: Any = None,
        oversize: Any = None,
        max_payload: Callable[[], int] | None = None,
    ) -> None:
        self.log = log
        #: :class:`~meshsync_nats.oversize.Oversize` and the server's limit: answers made to
        #: fit it (None: sent as they are).
        self.oversize = oversize
        self.max_payload = max_payload
        #: A :class:`~meshsync_nats.sessions.SessionManager` (None: those entities unsupported).
        self.sessions = sessions
        self.publish = publish
        self.current_state = current_state
        self.request_resync = request_resync
        self.version = version
        self.meshery_ids = meshery_ids
        self._last_logged: dict[str, float] = {}
        self.handled: dict[str, int] = {}

    def _warn(self, message: str, *args: Any) -> None:
        """One warning per distinct message per minute, so a misbehaving client cannot flood
        the log; repeats go to debug."""
        text = message % args if args else message
        now = time.monotonic()
        if now - self._last_logged.get(text, -1e9) >= 60.0:
            if len(self._last_logged) > 1000:
                self._last_logged.clear()
            self._last_logged[text] = now
            self.log.warning("%s", text)
        else:
            self.log.debug("%s", text)

    async def handle(self, data: bytes) -> None:
        try:
            entity, payload = parse_request(data)
        except BadRequest as exc:
            self._warn("ignoring malformed request on %s: %s", SUBJECT_REQUEST, str(exc))
            return
        self.handled[entity] = self.handled.get(entity, 0) + 1
        self.log.debug("request %r received", entity)
        try:
            if entity == INFORMER_STORE:
                await self.informer_store(reply_subject(payload))
            elif entity == RESYNC:
                self.log.info("resync-discovery requested: re-listing every resource")
                await self.request_resync()
            elif entity == META:
                await self.publish(SUBJECT_META, wire.reply(self.version))
            elif entity in SESSION_ENTITIES and self.sessions is not None:
                await self.sessions.handle(entity, payload)
            elif entity in SESSION_ENTITIES:
                self._warn("request %r is not served by this sink; ignored", entity)
            else:
                self._warn("ignoring request with unknown entity %r", entity)
        except BadRequest as exc:
            self._warn("ignoring malformed %s request: %s", entity, str(exc))
        except Exception:
            self.log.exception("failed to answer %s request", entity)

    async def informer_store(self, reply: str) -> None:
        """Every current object, re-shaped, at most five per message, streamed (never all
        held in memory): the objects come from the sources' fresh lists via the transforms."""
        started = time.monotonic()
        batch: list[tuple[Event, wire.MesheryObject]] = []
        sent = 0
        meshery_ids = self.meshery_ids
        async for event in self.current_state():
            batch.append((event, wire.event_to_meshery(event, meshery_ids=meshery_ids)))
            if len(batch) == STORE_BATCH:
                await self._publish_store(reply, batch)
                sent += len(batch)
                batch = []
        if batch:
            await self._publish_store(reply, batch)
            sent += len(batch)
        self.log.info(
            "answered informer-store on %s: %d object(s) in %.2fs",
            reply,
            sent,
            time.monotonic() - started,
        )

    async def _publish_store(self, reply: str, batch: list[tuple[Event, Any]]) -> None:
        """One answer message, or several when it would be over the server's max_payload."""
        if self.oversize is None or self.max_payload is None:
            await self.publish(reply, wire.object_batch([obj for _, obj in batch]))
            return
        for message in self.oversize.store_messages(batch, self.max_payload()):
            await self.publish(reply, message)
