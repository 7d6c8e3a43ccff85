"""A Meshery-shaped client of MeshSync's interactive requests, over NATS.

It publishes exactly what Meshery Server publishes — a ``broker.Message`` with ObjectType
``request-payload``, EventType ``ADDED`` and the request in ``Request`` — and listens where
Meshery listens: ``meshery.meshsync.logs`` for logs, the session's own subject for a shell's
output, ``active_sessions.exec`` for the session list. ``meshsync request`` is built on it, and
so are the tests that hold MeshSync to Meshery's contract.

Example::

    client = await MesheryClient.connect("nats://localhost:4222")
    logs = await client.follow_logs("shop", "web-0", "web", tail_lines=10)
    async for piece in logs:
        print(piece["data"], end="")
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import nats
import orjson
from nats.aio.client import Client

from meshsync_nats.requests import SUBJECT_REQUEST
from meshsync_nats.sessions import (
    ACTIVE_EXEC,
    EXEC_REQUEST,
    LOG_STREAM,
    OBJECT_EXEC_INPUT,
    SUBJECT_ACTIVE,
    SUBJECT_LOGS,
)

#: The key Meshery Server puts its requests under in the Payload map.
PAYLOAD_KEY = "operator"


def request_message(entity: str, payload: Any) -> bytes:
    """A request as Meshery Server's Go code marshals it (``broker.Message``)."""
    return orjson.dumps(
        {
            "ObjectType": "request-payload",
            "EventType": "ADDED",
            "Request": {"Entity": entity, "Payload": payload},
            "Object": None,
        }
    )


def log_request(
    request_id: str,
    namespace: str,
    name: str,
    container: str = "",
    *,
    follow: bool = False,
    previous: bool = False,
    tail_lines: int = 0,
    stop: bool = False,
) -> dict[str, Any]:
    """One ``model.LogRequest`` as Go encodes it (``omitempty`` on every field)."""
    entry: dict[str, Any] = {
        "id": request_id,
        "name": name,
        "namespace": namespace,
        "container": container,
        "follow": follow,
        "previous": previous,
        "taillines": tail_lines,
        "stop": stop,
    }
    return {k: v for k, v in entry.items() if v}


def exec_request(
    request_id: str, namespace: str, name: str, container: str, *, stop: bool = False
) -> dict[str, Any]:
    """One ``model.ExecRequest`` as Go encodes it."""
    entry = {"id": request_id, "name": name, "namespace": namespace, "container": container}
    if stop:
        entry["stop"] = True  # type: ignore[assignment]
    return {k: v for k, v in entry.items() if v}


class Inbox:
    """The messages of one subscription, decoded, in the order the server sent them.

    The subscription's callback queues each message at once (it never waits), so across the
    Inboxes of one connection messages are queued in the order they came off the socket: once
    a message of another Inbox has been taken, everything this one was sent before it is
    already here (``empty()`` is then exact). ``next()`` is a future that stays the same until
    its message is taken: waiting on it with a timeout, or beside another Inbox's, loses
    nothing (a cancelled ``queue.get()`` can lose its item before Python 3.12).
    """

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.subscription: Any = None
        self._next: asyncio.Future[dict[str, Any]] | None = None

    async def on_message(self, msg: Any) -> None:
        try:
            data = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            data = {"ObjectType": "undecodable", "Object": msg.data.decode(errors="replace")}
        self.queue.put_nowait(data)

    def next(self) -> asyncio.Future[dict[str, Any]]:
        if self._next is None:
            self._next = asyncio.ensure_future(self.queue.get())
        return self._next

    def take(self) -> dict[str, Any]:
        """The message ``next()`` has received (call when it is done)."""
        future, self._next = self.next(), None
        return future.result()

    async def get(self, timeout: float | None = 10.0) -> dict[str, Any]:
        message = await asyncio.wait_for(asyncio.shield(self.next()), timeout)
        self._next = None
        return message

    def empty(self) -> bool:
        """Nothing received and not taken."""
        if self._next is not None and self._next.done():
            return False
        return self.queue.empty()

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            yield await self.get(timeout=None)

    async def close(self) -> None:
        if self._next is not None:
            self._next.cancel()
        if self.subscription is not None:
            with contextlib.suppress(Exception):
                await self.subscription.unsubscribe()


class ExecClient:
    """One shell session, seen from Meshery's side."""

    def __init__(self, client: MesheryClient, request: dict[str, Any], inbox: Inbox) -> None:
        self.client = client
        self.request = request
        self.inbox = inbox
        self.session_id = (
            f"exec.{request['namespace']}.{request['name']}.{request['container']}.{request['id']}"
        )

    async def send(self, line: str) -> None:
        """What Meshery publishes for a typed line (MeshSync appends the newline)."""
        assert self.client.nc is not None
        message = {"ObjectType": OBJECT_EXEC_INPUT, "EventType": "", "Request": None}
        await self.client.nc.publish(
            f"input.{self.session_id}", orjson.dumps({**message, "Object": line})
        )

    async def read_until(self, text: str, timeout: float = 15.0) -> str:
        """Output (``exec-output`` messages) up to and including ``text``; an ``error``
        message raises AssertionError with its text."""
        seen = ""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while text not in seen:
            message = await self.inbox.get(max(deadline - loop.time(), 0.001))
            if message.get("ObjectType") == "error":
                raise AssertionError(f"error from MeshSync: {message.get('Object')}")
            if message.get("ObjectType") == "exec-output":
                seen += message.get("Object") or ""
        return seen

    async def wait_open(self, active: Inbox, timeout: float = 30.0) -> None:
        """Until ``active_sessions.exec`` lists this session: MeshSync hears its input then."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            message = await active.get(max(deadline - loop.time(), 0.001))
            if message.get("ObjectType") == "active-exec" and self.session_id in (
                message.get("Object") or []
            ):
                return

    async def stop(self) -> None:
        await self.client.publish_request(
            EXEC_REQUEST, {PAYLOAD_KEY: {**self.request, "stop": True}}
        )

    async def close(self) -> None:
        await self.inbox.close()


class MesheryClient:
    """A NATS connection that talks to MeshSync the way Meshery Server does."""

    def __init__(self, nc: Client) -> None:
        self.nc: Client | None = nc

    @classmethod
    async def connect(cls, url: str, **kwargs: Any) -> MesheryClient:
        options = {"name": "meshery-server", "max_reconnect_attempts": -1, **kwargs}
        return cls(await nats.connect(url, **options))

    async def publish_request(self, entity: str, payload: Any) -> None:
        assert self.nc is not None
        await self.nc.publish(SUBJECT_REQUEST, request_message(entity, payload))
        await self.nc.flush()

    async def subscribe(self, subject: str) -> Inbox:
        assert self.nc is not None
        inbox = Inbox()
        inbox.subscription = await self.nc.subscribe(subject, cb=inbox.on_message)
        await self.nc.flush()  # in force at the server before anything is asked
        return inbox

    async def logs_inbox(self) -> Inbox:
        """Every log message MeshSync publishes (all sessions share the subject)."""
        return await self.subscribe(SUBJECT_LOGS)

    async def request_logs(self, request: dict[str, Any]) -> None:
        await self.publish_request(LOG_STREAM, {PAYLOAD_KEY: request})

    async def stop_logs(self, request: dict[str, Any]) -> None:
        await self.publish_request(LOG_STREAM, {PAYLOAD_KEY: {**request, "stop": True}})

    async def open_exec(
        self, namespace: str, name: str, container: str, request_id: str | None = None
    ) -> ExecClient:
        """Subscribe to the session's subject, then ask for the shell (Meshery's order)."""
        request = exec_request(request_id or uuid.uuid4().hex, namespace, name, container)
        subject = f"exec.{namespace}.{name}.{container}.{request['id']}"
        session = ExecClient(self, request, await self.subscribe(subject))
        await self.publish_request(EXEC_REQUEST, {PAYLOAD_KEY: request})
        return session

    async def sessions_inbox(self) -> Inbox:
        return await self.subscribe(SUBJECT_ACTIVE)

    async def request_active(self) -> None:
        await self.publish_request(ACTIVE_EXEC, None)

    async def close(self) -> None:
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()
            self.nc = None
