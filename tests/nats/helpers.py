"""Shared pieces of the NATS sink tests: a subscriber that keeps Meshery's view, a source
backed by an in-memory cluster model, and engine start/stop helpers."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import nats
import orjson
from meshsync_nats import wire
from meshsync_nats.sink import NatsSink
from nats.aio.client import Client

from meshsync_core import Engine, Event, EventType, Options, Resource, Source, SourceContext
from meshsync_core.testing import wait_until

PODS = Resource(group="", version="v1", plural="pods", kind="Pod")
CONFIGMAPS = Resource(group="", version="v1", plural="configmaps", kind="ConfigMap")
SECRETS = Resource(group="", version="v1", plural="secrets", kind="Secret")
CLUSTER_ID = "c0ffee00-0000-4000-8000-00000000c1d0"


class Subscriber:
    """A nats-py subscriber that keeps every message and Meshery's view of the cluster."""

    def __init__(self) -> None:
        self.nc: Client | None = None
        self.messages: list[dict[str, Any]] = []
        self.view: dict[str, dict[str, Any]] = {}  # uid -> last Object
        self._changed = asyncio.Condition()

    async def connect(
        self, url: str, subject: str = "meshery.meshsync.core", **kwargs: Any
    ) -> None:
        options = {"reconnect_time_wait": 0.1, "max_reconnect_attempts": -1, **kwargs}
        self.nc = await nats.connect(url, **options)
        await self.nc.subscribe(subject, cb=self._on_message)
        await self.nc.flush()

    async def _on_message(self, msg: Any) -> None:
        data = orjson.loads(msg.data)
        self.messages.append(data)
        obj = data.get("Object")
        if isinstance(obj, dict):
            uid = obj["metadata"]["uid"]
            if data.get("EventType") == "DELETED":
                self.view.pop(uid, None)
            else:
                self.view[uid] = obj
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async def check() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)

        await asyncio.wait_for(check(), timeout)

    async def wait_count(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        await self.wait_for(lambda: len(self.messages) >= count, timeout)
        return self.messages

    def versions(self) -> dict[str, str]:
        return {uid: obj["metadata"].get("resourceVersion", "") for uid, obj in self.view.items()}

    async def close(self) -> None:
        if self.nc is not None:
            await self.nc.close()


class ModelSource(Source):
    """A source over an in-memory cluster: ``apply``/``delete`` change it and emit the change.

    ``current_state`` lists the model fresh; ``resync`` re-emits every object as ADDED.
    """

    name = "model"

    def __init__(self, objects: Iterable[dict[str, Any]] = ()) -> None:
        super().__init__(Options())
        self.model: dict[str, tuple[Resource, dict[str, Any]]] = {}
        self._initial = list(objects)
        self._ctx: SourceContext | None = None
        self._ready = asyncio.Event()
        self._rv = itertools.count(1000)
        self.resyncs = 0

    async def run(self, ctx: SourceContext) -> None:
        self._ctx = ctx
        for obj in self._initial:
            await self.apply(obj)
        ctx.initial_sync_complete()
        self._ready.set()
        await asyncio.Event().wait()

    async def started(self) -> None:
        await asyncio.wait_for(self._ready.wait(), 10)

    async def apply(self, obj: dict[str, Any], resource: Resource = PODS) -> dict[str, Any]:
        """Create or update an object (a new resourceVersion) and emit the change."""
        assert self._ctx is not None or not self._ready.is_set()
        uid = obj["metadata"]["uid"]
        obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(next(self._rv))}}
        event_type = EventType.MODIFIED if uid in self.model else EventType.ADDED
        self.model[uid] = (resource, obj)
        await self._emit(Event(event_type, obj, resource, cluster_id=CLUSTER_ID))
        return obj

    async def delete(self, uid: str) -> None:
        resource, obj = self.model.pop(uid)
        await self._emit(Event(EventType.DELETED, obj, resource, cluster_id=CLUSTER_ID))

    async def _emit(self, event: Event) -> None:
        if self._ctx is None:
            raise RuntimeError("source not running")
        await self._ctx.emit(event)

    async def resync(self) -> None:
        self.resyncs += 1
        for resource, obj in list(self.model.values()):
            await self._emit(Event(EventType.ADDED, obj, resource, cluster_id=CLUSTER_ID))

    async def _state(self) -> AsyncIterator[Event]:
        for resource, obj in list(self.model.values()):
            yield Event(EventType.ADDED, obj, resource, cluster_id=CLUSTER_ID)

    def current_state(self) -> AsyncIterator[Event]:
        return self._state()

    def versions(self) -> dict[str, str]:
        return {uid: obj["metadata"]["resourceVersion"] for uid, (_, obj) in self.model.items()}


def pod(name: str, namespace: str = "default", **fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}"},
        "spec": {"containers": [{"name": "main", "image": "nginx"}]},
        **fields,
    }


def nats_options(url: str, **more: Any) -> Options:
    """Options for a test sink: fast reconnects, short resend delay."""
    return Options(
        {
            "broker_url": url,
            "nats_reconnect_wait": 0.1,
            "nats_resend_delay": 0.3,
            "nats_ack_timeout": 2.0,
            **more,
        }
    )


class Running:
    """An engine running in the background: ``async with Running(engine) as run:``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.task: asyncio.Task[Any] | None = None

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(self.engine.run())
        return self

    async def stop(self) -> Any:
        self.engine.stop("test done")
        assert self.task is not None
        return await asyncio.wait_for(self.task, 30)

    async def __aexit__(self, *exc: object) -> None:
        if self.task is not None and not self.task.done():
            await self.stop()


async def wait_connected(sink: NatsSink, timeout: float = 10.0) -> None:
    await wait_until(lambda: sink.nc.is_connected and sink.outage.live, timeout, "sink connected")


def log_lines(caplog: Any, level: int = logging.WARNING, contains: str = "") -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= level and contains.lower() in r.getMessage().lower()
    ]


#: Values Go sends as JSON text. Go's text has sorted keys, ours the object's own order: the
#: goldens hold Go's, and each such string is compared as the JSON it holds.
_JSON_TEXT_META = ("ownerReferences", "finalizers")
_JSON_TEXT_TOP = ("immutable", "data", "binaryData", "stringData")


def as_json(message: dict) -> dict:
    """A message with every JSON-text field parsed (after checking it is text)."""
    obj = dict(message["Object"])
    meta = obj["metadata"] = dict(obj["metadata"])
    for field in _JSON_TEXT_META:
        if field in meta:
            assert isinstance(meta[field], str), field
            meta[field] = json.loads(meta[field])
    for field in ("spec", "status"):
        if field in obj:
            assert isinstance(obj[field]["attribute"], str), field
            obj[field] = {**obj[field], "attribute": json.loads(obj[field]["attribute"])}
    for field in _JSON_TEXT_TOP:
        if field in obj:
            assert isinstance(obj[field], str), field
            obj[field] = json.loads(obj[field])
    return {**message, "Object": obj}


async def indexed_uids(url: str, bucket: str = "meshsync-index") -> set[str]:
    """The uids the published index bucket holds, read by an independent nats-py client
    (empty while the bucket does not exist yet)."""
    nc = await nats.connect(url)
    try:
        kv = await nc.jetstream().key_value(bucket)
        keys = await kv.keys()
    except Exception:  # no bucket, or no keys yet
        return set()
    finally:
        await nc.close()
    return {key.split(".", 1)[1] for key in keys if not key.startswith("_meshsync.")}


async def wait_indexed(url: str, uids: set[str], timeout: float = 20.0) -> None:
    """Wait until the index bucket holds every one of ``uids`` (it is written in the background,
    about once a second)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not uids <= await indexed_uids(url):
        if loop.time() > deadline:
            missing = len(uids - await indexed_uids(url))
            raise AssertionError(f"the index still lacks {missing} object(s) after {timeout}s")
        await asyncio.sleep(0.05)


def envelope(event_type: str, obj: dict[str, Any], cluster_id: str, **kwargs: Any) -> bytes:
    """The message for one change of a decoded object through the slow path (decode, reshape,
    encode): the reference the sink's fast path is tested against."""
    return wire.object_message(event_type, wire.to_meshery(obj, cluster_id, **kwargs))
