"""JetStream publishing (``--nats-jetstream``): the stream, de-duplication ids, acknowledgements.

Every change is published into a stream (created if missing, with the ``--nats-stream*``
settings; an existing one is used as it is) with a ``Nats-Msg-Id`` for de-duplication, and a
batch waits for its acknowledgements: anything not acknowledged is returned to be sent again,
in order, except a change already superseded by a stored later change of the same object
(:func:`~meshsync_nats.pending.to_resend`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import click
import nats.js.errors
from nats.js import api as js_api

from meshsync_core import ConfigError, Duration, Event, RateLimitedLog
from meshsync_nats import wire
from meshsync_nats.connection import SEND_ERRORS
from meshsync_nats.pending import object_key, to_resend

_RETENTIONS = {p.value: p for p in js_api.RetentionPolicy}


def msg_id(event: Event) -> str:
    """JetStream de-duplication id: ``<uid>|<resourceVersion>|<event>``."""
    return f"{event.uid}|{event.resource_version}|{event.type.value}"


def stream_options() -> list[click.Option]:
    """``--nats-jetstream`` and the stream's settings: ``StreamSettings`` reads these, with
    its field defaults."""
    return [
        click.Option(
            ["--nats-jetstream/--no-nats-jetstream"],
            envvar="NATS_JETSTREAM",
            default=False,
            help="[nats] Durable mode: publish into a JetStream stream and wait for acks.",
        ),
        click.Option(
            ["--nats-stream"],
            envvar="NATS_STREAM",
            default=StreamSettings.name,
            show_default=True,
            help="[nats] JetStream stream name (created if missing).",
        ),
        click.Option(
            ["--nats-stream-retention"],
            envvar="NATS_STREAM_RETENTION",
            type=click.Choice(["limits", "interest", "workqueue"], case_sensitive=False),
            default=StreamSettings.retention,
            show_default=True,
            help="[nats] Retention policy of a stream the sink creates.",
        ),
        click.Option(
            ["--nats-stream-max-age"],
            envvar="NATS_STREAM_MAX_AGE",
            type=Duration(),
            help="[nats] Maximum age of messages in a stream the sink creates (default: none).",
        ),
        click.Option(
            ["--nats-stream-replicas"],
            envvar="NATS_STREAM_REPLICAS",
            type=click.IntRange(min=1, max=5),
            default=StreamSettings.replicas,
            show_default=True,
            help="[nats] Replicas of a stream the sink creates (3 on a 3-node JetStream "
            "cluster survives the loss of a node).",
        ),
        click.Option(
            ["--nats-ack-timeout"],
            envvar="NATS_ACK_TIMEOUT",
            type=Duration(),
            default=f"{StreamSettings.ack_timeout:g}s",
            show_default=True,
            help="[nats] How long to wait for JetStream acks (and flushes) before re-sending.",
        ),
    ]


@dataclass(frozen=True)
class StreamSettings:
    """The stream the sink publishes into (and creates if missing), and the ack timeout."""

    name: str = "MESHSYNC"
    retention: str = "limits"
    max_age: float = 0.0
    replicas: int = 1
    ack_timeout: float = 5.0

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, jetstream: bool) -> StreamSettings:
        settings = cls(
            name=str(options.get("nats_stream") or cls.name),
            retention=str(options.get("nats_stream_retention") or cls.retention).lower(),
            max_age=float(options.get("nats_stream_max_age") or cls.max_age),
            replicas=int(options.get("nats_stream_replicas") or cls.replicas),
            ack_timeout=float(options.get("nats_ack_timeout") or cls.ack_timeout),
        )
        if jetstream and settings.retention not in _RETENTIONS:
            raise ConfigError(
                f"--nats-stream-retention must be one of {', '.join(_RETENTIONS)}, "
                f"not {settings.retention!r}"
            )
        if not 1 <= settings.replicas <= 5:
            raise ConfigError(f"--nats-stream-replicas must be 1 to 5, not {settings.replicas}")
        return settings


class JetStreamPublisher:
    """Publishes batches into the stream and waits for their acknowledgements.

    ``connection()`` is the current nats-py client; ``encode``, ``fit`` and ``unsendable`` are
    the sink's encoding, oversize handling and report of an event that can never be sent;
    ``published(events)`` receives the acknowledged changes, ``count(name, amount)`` keeps the
    sink's counters.
    """

    def __init__(
        self,
        settings: StreamSettings,
        *,
        connection: Callable[[], Any],
        encode: Callable[[Event], bytes],
        fit: Callable[[Event, bytes, dict[str, str] | None], bytes],
        unsendable: Callable[[Event, Exception], None],
        published: Callable[[list[Event]], None],
        count: Callable[[str, int], None],
        log: logging.Logger,
        limited: RateLimitedLog,
    ) -> None:
        self.settings = settings
        self._connection = connection
        self._encode = encode
        self._fit = fit
        self._unsendable = unsendable
        self._published = published
        self._count = count
        self.log = log
        self._limited = limited
        self.context: Any = None  # the JetStream context, made on the first publish
        self.stream_ok = False  # the stream is known to exist
        self.max_msg = -1  # the stream's max_msg_size, when it has one

    def limit(self) -> tuple[int, str] | None:
        """The stream's own message size limit, if it has one, and its name for messages."""
        if self.max_msg <= 0:
            return None
        return self.max_msg, f"max_msg_size of stream {self.settings.name}"

    async def prepare(self) -> None:
        """Before publishing: make sure the stream exists (checked again after a failure)."""
        if not self.stream_ok:
            await self.ensure_stream()

    async def ensure_stream(self) -> None:
        """Create the stream if it is missing; an existing one is used as it is."""
        jsm = self._connection().jsm()
        settings = self.settings
        try:
            info = await jsm.stream_info(settings.name)
            self.max_msg = info.config.max_msg_size or -1
            self.stream_ok = True
        except nats.js.errors.NotFoundError:
            try:
                await jsm.add_stream(
                    name=settings.name,
                    subjects=[wire.SUBJECT_CORE],
                    retention=_RETENTIONS[settings.retention],
                    max_age=settings.max_age or None,
                    storage=js_api.StorageType.FILE,
                    duplicate_window=120.0,
                    num_replicas=settings.replicas,
                )
            except Exception as exc:  # e.g. more replicas than the cluster has servers
                self._limited.log(
                    logging.ERROR,
                    "cannot create JetStream stream %s with %d replica(s) (%s); changes stay "
                    "buffered and are retried",
                    settings.name,
                    settings.replicas,
                    exc,
                    key="add-stream",
                )
                return
            self.max_msg = -1
            self.stream_ok = True
            self.log.info(
                "created JetStream stream %s (%s retention, %d replica(s)) for %s",
                settings.name,
                settings.retention,
                settings.replicas,
                wire.SUBJECT_CORE,
            )
            return
        except Exception as exc:
            self._limited.log(
                logging.ERROR,
                "JetStream is not available on this NATS server (%s); changes stay buffered "
                "and are retried: enable JetStream (nats-server -js) or drop --nats-jetstream",
                exc,
                key="no-jetstream",
            )
            return
        subjects = info.config.subjects or []
        if wire.SUBJECT_CORE not in subjects:
            self.log.warning(
                "JetStream stream %s exists but does not capture %s (subjects: %s)",
                settings.name,
                wire.SUBJECT_CORE,
                ", ".join(subjects),
            )
        replicas = info.config.num_replicas or 1
        if replicas != settings.replicas:
            self._limited.warning(
                "JetStream stream %s exists with %d replica(s), not %d: used as it is",
                settings.name,
                replicas,
                settings.replicas,
                key="stream-replicas",
            )

    async def publish(self, events: Sequence[Event]) -> list[Event]:
        """Publish in order and wait for the acks; return the events to send again."""
        nc = self._connection()
        ack_timeout = self.settings.ack_timeout
        if self.context is None:  # one context: it owns the reply subscription for the acks
            self.context = nc.jetstream(timeout=ack_timeout)
        js = self.context
        futures: list[tuple[Event, asyncio.Future[Any]]] = []
        in_flight: dict[Any, asyncio.Future[Any]] = {}  # the latest publish of each object
        rest: list[Event] = []
        for index, event in enumerate(events):
            key = object_key(event)
            earlier = in_flight.get(key)
            if earlier is not None and not await self._stored(earlier):
                # Publishing this change now could store it while the earlier one is lost
                # (a stream leader dying between the two): stop here, resend both in order.
                rest = list(events[index:])
                break
            if not nc.is_connected:
                rest = list(events[index:])
                break
            try:
                headers = {"Nats-Msg-Id": msg_id(event)}
                payload = self._fit(event, self._encode(event), headers)
                future = await js.publish_async(
                    wire.SUBJECT_CORE, payload, wait_stall=ack_timeout, headers=headers
                )
            except (*SEND_ERRORS, nats.js.errors.TooManyStalledMsgsError):
                rest = list(events[index:])
                break
            except Exception as exc:
                self._unsendable(event, exc)
                continue
            futures.append((event, future))
            in_flight[key] = future
        if futures:
            _, not_done = await asyncio.wait([f for _, f in futures], timeout=ack_timeout)
            for future in not_done:
                future.cancel()
        results: list[tuple[Event, bool]] = []
        for event, future in futures:
            error = None if future.cancelled() else future.exception()
            results.append((event, not future.cancelled() and error is None))
            if isinstance(error, nats.js.errors.NoStreamResponseError):
                self.stream_ok = False  # deleted, or JetStream was off: check again
            if error is not None:
                self._limited.warning(f"JetStream did not accept a change: {error}", key="js-nack")
        acked = sum(ok for _, ok in results)
        if acked:
            self._published([event for event, ok in results if ok])
        self._count("published", acked)
        if acked < len(results):
            self._count("ack_failures", len(results) - acked)
        return to_resend(results) + rest

    async def _stored(self, future: asyncio.Future[Any]) -> bool:
        """Whether a JetStream publish was acknowledged (waiting up to the ack timeout)."""
        if not future.done():
            await asyncio.wait([future], timeout=self.settings.ack_timeout)
        return future.done() and not future.cancelled() and future.exception() is None
