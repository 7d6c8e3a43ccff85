"""``NatsSink``: delivers every change to Meshery Server over NATS, without silent loss.

How a change travels::

    deliver([...]) --live--> publish (no flush per message) --> unconfirmed segment
                   \\--NATS down--> PendingBuffer (bounded, coalescing) --reconnect--> publish

Core NATS has no acknowledgement, so the sink confirms with a round trip in a background task
(a marker message to its own inbox, behind the changes), never per message. Whatever was
published but not confirmed when the connection drops (plus a short window of recently confirmed
changes the server may not have forwarded yet) goes back into the pending buffer and is sent
again after reconnecting, after ``--nats-resend-delay`` so that subscribers such as Meshery
Server have reconnected too.
If the buffer ever had to drop a state, the sink asks the sources to resync once NATS is back,
so the consumer still ends up with the current state.

With ``--nats-jetstream`` every change is published into a JetStream stream with a
``Nats-Msg-Id`` for de-duplication, and ``deliver`` waits for the acknowledgements; anything not
acknowledged is kept and sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import Counter, deque
from collections.abc import Sequence
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import api as js_api

from meshsync_core import (
    ConfigError,
    Event,
    MeshSyncError,
    Options,
    RateLimitedLog,
    Sink,
    SinkContext,
)
from meshsync_core import __version__ as core_version
from meshsync_nats import wire
from meshsync_nats.connection import ConnectionSettings, mask_url
from meshsync_nats.index_store import KvIndexStore
from meshsync_nats.oversize import Oversize, headers_size
from meshsync_nats.pending import PendingBuffer, object_key, to_resend
from meshsync_nats.requests import QUEUE_GROUP, SUBJECT_REQUEST, RequestHandler
from meshsync_nats.sessions import SessionManager, SessionPolicy, nats_authenticated

#: Recently confirmed changes are re-sent after a reconnect: the server may have taken them but
#: died before forwarding them to subscribers.
REPLAY_WINDOW = 0.5
#: Events published per step when emptying the pending buffer.
PUMP_BATCH = 500
_RETENTIONS = {p.value: p for p in js_api.RetentionPolicy}
_SEND_ERRORS = (
    nats.errors.OutboundBufferLimitError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.StaleConnectionError,
    ConnectionError,
)


class NatsDeliveryError(MeshSyncError):
    """Changes were still waiting for NATS when the run ended: they never reached Meshery."""


def msg_id(event: Event) -> str:
    """JetStream de-duplication id: ``<uid>|<resourceVersion>|<event>``."""
    return f"{event.uid}|{event.resource_version}|{event.type.value}"


class NatsSink(Sink):
    """Publishes changes on ``meshery.meshsync.core`` and answers Meshery's requests."""

    name = "nats"
    aliases = ("broker",)
    description = "publish changes to NATS for Meshery Server (Go MeshSync's wire contract)"
    #: Confirmed changes (a returned marker, a JetStream ack) go to the published index.
    confirms_publication = True

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        self.meshery_ids = bool(options.get("meshery_ids", False))
        self.jetstream = bool(options.get("nats_jetstream", False))
        self.stream = str(options.get("nats_stream") or "MESHSYNC")
        self.retention = str(options.get("nats_stream_retention") or "limits").lower()
        self.max_age = float(options.get("nats_stream_max_age") or 0.0)
        self.replicas = int(options.get("nats_stream_replicas") or 1)
        self.ack_timeout = float(options.get("nats_ack_timeout") or 5.0)
        delay = options.get("nats_resend_delay")
        self.resend_delay = 2.0 if delay is None else float(delay)
        capacity = int(options.get("nats_buffer_size") or 10_000)
        self.pending = PendingBuffer(max(capacity, 1), keep_all=self.jetstream)
        # Checked here, with every other component's options, before anything starts.
        self.settings = ConnectionSettings.from_options(options)
        self.session_policy = SessionPolicy.from_options(options)
        self._tls_cert = options.get("nats_tls_cert") or None
        self.sessions: SessionManager | None = None
        if self.jetstream and self.retention not in _RETENTIONS:
            raise ConfigError(
                f"--nats-stream-retention must be one of {', '.join(_RETENTIONS)}, "
                f"not {self.retention!r}"
            )
        if not 1 <= self.replicas <= 5:
            raise ConfigError(f"--nats-stream-replicas must be 1 to 5, not {self.replicas}")
        self.index_bucket = str(options.get("nats_index_bucket", "meshsync-index") or "")
        self.index_replicas = int(options.get("nats_index_replicas") or self.replicas)
        self.nc = NATS()
        self.oversize = Oversize(self.log, self.metrics, meshery_ids=self.meshery_ids)
        self._stream_max_msg = -1  # the stream's max_msg_size, when it has one
        #: Delivery counts (published, buffered, disconnects, ...), for tests and logs.
        self.counts: Counter[str] = Counter()
        self.metrics.describe(
            "published_total", "Changes handed to NATS (acked in JetStream mode)."
        )
        self.metrics.describe("buffer_dropped_total", "Pending states dropped: buffer full.")
        self.metrics.describe("pending_changes", "Changes waiting for NATS.")
        self.metrics.describe("connected", "1 while connected to NATS.")
        self._ctx: SinkContext | None = None
        self._requests: RequestHandler | None = None
        self._js: Any = None
        self._stream_ok = False  # the JetStream stream is known to exist
        self._live = False  # connected and nothing pending: publish directly
        self._closing = False
        self._pumping = False
        self._resync_needed = False
        self._first_attempt = asyncio.Event()  # the first connection attempt has ended
        self._progress = asyncio.Event()  # the pump moved on, or the connection changed
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connector: asyncio.Task[None] | None = None
        self._confirmer: asyncio.Task[None] | None = None
        self._confirm_wake = asyncio.Event()
        self._marker_subject = ""
        self._marker_seq = itertools.count(1)
        self._markers: dict[int, asyncio.Future[None]] = {}
        self._segment: list[Event] = []  # published, not yet part of a confirmation
        self._sealed: list[list[Event]] = []  # waiting for the PONG of a flush
        self._recent: deque[tuple[float, list[Event]]] = deque()  # confirmed lately
        self._failures = 0
        self._last_failure_log = 0.0
        self._auth_logged = False
        self._connected_once = False
        self._last_error = ""  # why the last connection attempt failed, for the final report
        self._dropped_reported = 0
        self._limited = RateLimitedLog(self.log)

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self, ctx: SinkContext) -> None:
        """Start connecting in the background: with NATS down the run goes on, buffering, and
        retries forever (the settings were checked when the sink was built)."""
        self._ctx = ctx
        self.sessions = SessionManager(
            log=self.log.getChild("sessions"),
            publish=self._publish_reply,
            subscribe=self._subscribe,
            streams=lambda: ctx.workload_streams,
            authenticated=self._authenticated,
            policy=self.session_policy,
            metrics=self.metrics,
        )
        self._requests = RequestHandler(
            log=self.log,
            publish=self._publish_reply,
            current_state=ctx.current_state,
            request_resync=ctx.request_resync,
            version=core_version,
            meshery_ids=self.meshery_ids,
            sessions=self.sessions,
            oversize=self.oversize,
            max_payload=lambda: self.nc.max_payload,
        )
        self.log.info(
            "connecting to NATS at %s%s", self.settings.display, " (JetStream)" * self.jetstream
        )
        self._connector = asyncio.create_task(self._connect(), name="nats:connect")
        if not self.jetstream:
            self._confirmer = asyncio.create_task(self._confirm_loop(), name="nats:confirm")
        # Usually NATS is up: start connected rather than buffer the initial sync. When it is
        # down, the first failed attempt ends this wait and the run goes on, buffering.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(
                asyncio.shield(self._first_attempt.wait()), self.settings.connect_timeout + 1.0
            )

    def index_store(self) -> KvIndexStore | None:
        """The published index in a JetStream key-value bucket (``--nats-index-bucket``)."""
        if not self.index_bucket:
            return None
        return KvIndexStore(
            self.nc, self.index_bucket, self.index_replicas,
            connected=self._wait_connected, log=self.log,
        )  # fmt: skip

    async def _wait_connected(self) -> bool:
        """Whether NATS is connected, once the first connection attempt has ended."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(
                asyncio.shield(self._first_attempt.wait()), self.settings.connect_timeout + 1.0
            )
        return self.nc.is_connected

    @property
    def ready(self) -> bool:
        """Connected (with its stream, in JetStream mode), and every source has synced."""
        return (
            self.nc.is_connected
            and (self._stream_ok or not self.jetstream)
            and self._ctx is not None
            and self._ctx.synced
        )

    async def on_synced(self) -> None:
        self.log.info(
            "initial state handed to NATS (%d published, %d buffered)",
            self.counts["published"],
            len(self.pending),
        )

    async def close(self) -> None:
        """Send what is still pending (bounded), then close the connection."""
        if self.sessions is not None:  # first: their last messages go out with the rest
            await self.sessions.close()
        if self._connector is not None and not self._connector.done():
            self._connector.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._connector
        if self.nc.is_connected:
            try:
                await asyncio.wait_for(self._final_flush(), timeout=self.ack_timeout + 5.0)
            except (asyncio.TimeoutError, *_SEND_ERRORS, nats.errors.Error) as exc:
                self.log.warning("could not flush to NATS at shutdown: %s", exc or "timeout")
        if self._ctx is not None and self.nc.is_connected:
            with contextlib.suppress(Exception):  # lost writes cost duplicates, never losses
                await asyncio.wait_for(self._ctx.flush_published(), timeout=self.ack_timeout)
        self._closing = True
        undelivered = len(self.pending)
        for task in [self._confirmer, *self._tasks]:
            if task is not None:
                task.cancel()
        await asyncio.gather(
            *(t for t in [self._confirmer, *self._tasks] if t is not None),
            return_exceptions=True,
        )
        with contextlib.suppress(Exception):
            await self.nc.close()
        self.log.info(
            "NATS sink closed: %d published, %d coalesced, %d dropped",
            self.counts["published"],
            self.pending.coalesced,
            self.pending.dropped,
        )
        if self.counts["unsendable"]:
            self.log.warning(
                "%d change(s) were never delivered: too large for NATS even without their "
                "largest fields, or not encodable (see the errors above)",
                self.counts["unsendable"],
            )
        if undelivered:
            # The run could not do its job (a --once run publishing nothing): it fails, saying why.
            raise NatsDeliveryError(self._undelivered_reason(undelivered))

    def _undelivered_reason(self, count: int) -> str:
        assert self.settings is not None
        why = f" ({self._last_error})" if self._last_error else ""
        if not self._connected_once:
            return (
                f"could not connect to NATS at {self.settings.display}{why}: "
                f"{count} change(s) not delivered"
            )
        return f"{count} change(s) could not be delivered to NATS before shutdown{why}"

    async def _final_flush(self) -> None:
        async with self._lock:
            while self.pending and self.nc.is_connected:
                failed = await self._publish_batch(self.pending.drain(PUMP_BATCH))
                if failed:
                    self.pending.add_older(failed)
                    break
            await self._roundtrip()
            if self._ctx is not None:  # everything published so far is confirmed now
                for segment in self._sealed:
                    self._ctx.published(segment)
                self._ctx.published(self._segment)
            self._segment, self._sealed = [], []

    # -- connection ------------------------------------------------------------------------

    async def _connect(self) -> None:
        try:
            await self._connect_and_start()
        except asyncio.CancelledError:
            raise
        except Exception:
            self.log.exception("NATS sink could not start its connection")
        finally:
            self._first_attempt.set()

    async def _connect_and_start(self) -> None:
        assert self.settings is not None
        await self.nc.connect(
            **self.settings.kwargs(),
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        self._failures = 0
        self._auth_logged = False
        self._connected_once = True
        self._last_error = ""
        self.log.info("connected to NATS at %s", self._current_url())
        self._marker_subject = self.nc.new_inbox()
        await self.nc.subscribe(self._marker_subject, cb=self._on_marker)
        await self.nc.subscribe(SUBJECT_REQUEST, queue=QUEUE_GROUP, cb=self._on_request)
        # The server has both subscriptions once this round trip is back: "ready" then
        # includes answering requests.
        await self._roundtrip()
        if self.jetstream:
            await self._ensure_stream()
        if self.pending:
            # Changes piled up while NATS was unreachable: give subscribers that start along
            # with the server (Meshery Server) the same head start as after a reconnect.
            await self._resume()
        else:
            await self._pump()

    def _current_url(self) -> str:
        url = self.nc.connected_url
        return mask_url(url.geturl()) if url is not None else "?"

    async def _ensure_stream(self) -> None:
        """Create the stream if it is missing; an existing one is used as it is."""
        jsm = self.nc.jsm()
        try:
            info = await jsm.stream_info(self.stream)
            self._stream_max_msg = info.config.max_msg_size or -1
            self._stream_ok = True
        except nats.js.errors.NotFoundError:
            try:
                await jsm.add_stream(
                    name=self.stream,
                    subjects=[wire.SUBJECT_CORE],
                    retention=_RETENTIONS[self.retention],
                    max_age=self.max_age or None,
                    storage=js_api.StorageType.FILE,
                    duplicate_window=120.0,
                    num_replicas=self.replicas,
                )
            except Exception as exc:  # e.g. more replicas than the cluster has servers
                self._warn_limited(
                    "cannot create JetStream stream %s with %d replica(s) (%s); changes stay "
                    "buffered and are retried",
                    self.stream,
                    self.replicas,
                    exc,
                    key="add-stream",
                    level=logging.ERROR,
                )
                return
            self._stream_max_msg = -1
            self._stream_ok = True
            self.log.info(
                "created JetStream stream %s (%s retention, %d replica(s)) for %s",
                self.stream,
                self.retention,
                self.replicas,
                wire.SUBJECT_CORE,
            )
            return
        except Exception as exc:
            self._warn_limited(
                "JetStream is not available on this NATS server (%s); changes stay buffered "
                "and are retried: enable JetStream (nats-server -js) or drop --nats-jetstream",
                exc,
                key="no-jetstream",
                level=logging.ERROR,
            )
            return
        subjects = info.config.subjects or []
        if wire.SUBJECT_CORE not in subjects:
            self.log.warning(
                "JetStream stream %s exists but does not capture %s (subjects: %s)",
                self.stream,
                wire.SUBJECT_CORE,
                ", ".join(subjects),
            )
        replicas = info.config.num_replicas or 1
        if replicas != self.replicas:
            self._warn_limited(
                "JetStream stream %s exists with %d replica(s), not %d: used as it is",
                self.stream,
                replicas,
                self.replicas,
                key="stream-replicas",
            )

    async def _on_error(self, exc: Exception) -> None:
        text = str(exc) or type(exc).__name__
        lowered = text.lower()
        assert self.settings is not None
        if (
            isinstance(exc, nats.errors.AuthorizationError)
            or "authoriz" in lowered
            or ("authentication" in lowered)
        ):
            self._first_attempt.set()
            self._last_error = f"credentials rejected: {text.strip(chr(39))}"
            if not self._auth_logged:
                self._auth_logged = True
                self.log.error(
                    "NATS at %s rejected the credentials (%s): check --nats-user/"
                    "--nats-password, --nats-token, --nats-creds or --nats-nkey-seed; "
                    "retrying quietly every %gs in case the server side is fixed",
                    self.settings.display,
                    text.strip("'"),
                    self.settings.reconnect_wait,
                )
            else:
                self.log.debug("NATS still rejects the credentials: %s", text)
            return
        if not self.nc.is_connected:
            self._first_attempt.set()
            # a server that refused the credentials then resets the connection: the refusal
            # stays the reason to report (a successful connect clears it)
            if not self._last_error.startswith("credentials rejected"):
                self._last_error = text
            self._failures += 1
            now = time.monotonic()
            if self._failures <= 5 or now - self._last_failure_log >= 60.0:
                self._last_failure_log = now
                self.log.warning(
                    "cannot reach NATS at %s (%s); retrying every %gs, forever "
                    "(attempt %d, %d change(s) buffered)",
                    self.settings.display,
                    text,
                    self.settings.reconnect_wait,
                    self._failures,
                    len(self.pending),
                )
            return
        if isinstance(exc, (nats.errors.UnexpectedEOF, nats.errors.StaleConnectionError, OSError)):
            # The connection is going away; the disconnect handler says so in plain words.
            self.log.debug("NATS connection error: %s", text)
            return
        self._warn_limited(f"NATS error: {text}")

    async def _on_disconnected(self) -> None:
        if self._closing:
            return
        self._live = False
        self._progress.set()
        self._count("disconnects", 1)
        self._gauges()
        self._requeue_unconfirmed()
        self.log.warning(
            "lost the connection to NATS; buffering changes (up to %d objects) until it is back",
            self.pending.capacity,
        )

    async def _on_reconnected(self) -> None:
        self._failures = 0
        self._auth_logged = False
        self._count("reconnects", 1)
        self._gauges()
        self.log.info(
            "reconnected to NATS at %s; re-sending %d buffered change(s) in %gs",
            self._current_url(),
            len(self.pending),
            self.resend_delay,
        )
        self._spawn(self._resume())

    async def _resume(self) -> None:
        if self.resend_delay > 0 and not self.jetstream:
            # Subscribers (Meshery Server) reconnect too; core NATS drops what they miss.
            await asyncio.sleep(self.resend_delay)
        await self._pump()

    def _requeue_unconfirmed(self) -> None:
        """Everything not known to be through goes back in front of the pending buffer."""
        cutoff = time.monotonic() - REPLAY_WINDOW
        older: list[Event] = []
        for confirmed_at, segment in self._recent:
            if confirmed_at >= cutoff:
                older.extend(segment)
        for segment in self._sealed:
            older.extend(segment)
        older.extend(self._segment)
        self._recent.clear()
        self._sealed = []
        self._segment = []
        if older:
            self.pending.add_older(older)
            self._note_drops()

    # -- delivery --------------------------------------------------------------------------

    async def deliver(self, events: Sequence[Event]) -> None:
        if not self._live or self.pending:
            self._buffer(events)
            await self._wait_while_catching_up()
            return
        async with self._lock:
            failed = await self._publish_batch(events)
        if failed:
            self._buffer(failed)

    async def _wait_while_catching_up(self) -> None:
        """Connected and re-sending the backlog: slow the sources down (engine backpressure)
        instead of letting a fast initial sync overflow the buffer. While disconnected there is
        nobody to wait for, so the buffer coalesces and, if it must, drops."""
        half = self.pending.capacity // 2
        while (
            not self._closing
            and not self._live
            and self.nc.is_connected
            and len(self.pending) > half
        ):
            self._progress.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._progress.wait(), 1.0)

    def _buffer(self, events: Sequence[Event]) -> None:
        self._count("buffered", len(events))
        self.pending.extend(events)
        self._note_drops()
        self.metrics.set("pending_changes", float(len(self.pending)))
        if self._live and self.nc.is_connected:
            self._live = False
            self._spawn(self._pump())

    def _note_drops(self) -> None:
        dropped = self.pending.dropped
        if dropped > self._dropped_reported:
            self._resync_needed = True
            self._count("buffer_dropped", dropped - self._dropped_reported)
            self._warn_limited(
                "NATS buffer full (%d objects): dropped the oldest pending state of %d "
                "object(s) so far; a resync follows once NATS is back",
                self.pending.capacity,
                dropped,
                key="buffer-full",
            )
            self._dropped_reported = dropped

    async def _pump(self) -> None:
        """Empty the pending buffer in order, then go live; retry with backoff on failure."""
        if self._pumping:
            return
        self._pumping = True
        backoff = 0.5
        try:
            while not self._closing and self.nc.is_connected:
                if self.jetstream and not self._stream_ok:
                    await self._ensure_stream()
                async with self._lock:
                    if not self.pending:
                        self._live = True
                        break
                    failed = await self._publish_batch(self.pending.drain(PUMP_BATCH))
                    if failed:
                        self.pending.add_older(failed)
                self._progress.set()
                if failed:
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 10.0)
                else:
                    backoff = 0.5
        finally:
            self._pumping = False
            self._progress.set()
            self._gauges()
        if self._live and self._resync_needed and self._ctx is not None:
            self._resync_needed = False
            self.log.warning(
                "changes were dropped while NATS was unreachable; asking the sources to resync"
            )
            await self._ctx.request_resync()

    async def _publish_batch(self, events: Sequence[Event]) -> list[Event]:
        """Publish in order; return the events that could not be sent (from the first failure)."""
        if self.jetstream:
            return await self._publish_jetstream(events)
        nc = self.nc
        publish = nc.publish
        envelope = wire.event_envelope
        meshery_ids = self.meshery_ids
        sent = 0
        for index, event in enumerate(events):
            if not nc.is_connected:
                self._count("published", sent)
                return list(events[index:])
            try:
                payload = envelope(event, meshery_ids=meshery_ids)
                if len(payload) > nc.max_payload:
                    payload = self._fit(event, payload, None)
                await publish(wire.SUBJECT_CORE, payload)
            except _SEND_ERRORS:
                self._count("published", sent)
                return list(events[index:])
            except Exception as exc:
                self._unsendable(event, exc)
                continue
            if not nc.is_connected:
                # Dropped while this one was being written, and the disconnect handler may
                # already have re-queued the segment: keep it (a duplicate at worst).
                self._count("published", sent)
                return list(events[index:])
            # Not a local alias: the disconnect handler swaps the list while we await.
            self._segment.append(event)
            sent += 1
        self._count("published", sent)
        self._confirm_wake.set()
        return []

    def _fit(self, event: Event, payload: bytes, headers: dict[str, str] | None) -> bytes:
        """The payload, or one without the object's largest fields when it is over what the
        server (and the stream) accepts; :class:`~meshsync_nats.oversize.TooLarge` if even
        that is too big (see ``meshsync_nats.oversize``)."""
        limit, what = self.nc.max_payload, "the server's max_payload"
        if self.jetstream and 0 < self._stream_max_msg < limit:
            limit, what = self._stream_max_msg, f"max_msg_size of stream {self.stream}"
        if headers:
            limit -= headers_size(headers)
            what += " less the headers"
        if len(payload) <= limit:
            return payload
        return self.oversize.fit(event, len(payload), limit, what)

    def _unsendable(self, event: Event, exc: Exception) -> None:
        """An event that can never be sent (too big even truncated, not encodable): counted
        per resource as not delivered, one error line per object and minute."""
        self.counts["unsendable"] += 1
        self.metrics.inc("unsendable_total", resource=event.resource.key)
        self._warn_limited(
            "cannot publish %s to NATS: %s",
            event.describe(),
            exc,
            key=f"unsendable:{event.uid or event.describe()}",
            level=logging.ERROR,
        )

    async def _publish_jetstream(self, events: Sequence[Event]) -> list[Event]:
        if self._js is None:  # one context: it owns the reply subscription for the acks
            self._js = self.nc.jetstream(timeout=self.ack_timeout)
        js = self._js
        envelope = wire.event_envelope
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
            if not self.nc.is_connected:
                rest = list(events[index:])
                break
            try:
                headers = {"Nats-Msg-Id": msg_id(event)}
                payload = self._fit(event, envelope(event, meshery_ids=self.meshery_ids), headers)
                future = await js.publish_async(
                    wire.SUBJECT_CORE, payload, wait_stall=self.ack_timeout, headers=headers
                )
            except (*_SEND_ERRORS, nats.js.errors.TooManyStalledMsgsError):
                rest = list(events[index:])
                break
            except Exception as exc:
                self._unsendable(event, exc)
                continue
            futures.append((event, future))
            in_flight[key] = future
        if futures:
            _, not_done = await asyncio.wait([f for _, f in futures], timeout=self.ack_timeout)
            for future in not_done:
                future.cancel()
        results: list[tuple[Event, bool]] = []
        for event, future in futures:
            error = None if future.cancelled() else future.exception()
            results.append((event, not future.cancelled() and error is None))
            if isinstance(error, nats.js.errors.NoStreamResponseError):
                self._stream_ok = False  # deleted, or JetStream was off: check again
            if error is not None:
                self._warn_limited(f"JetStream did not accept a change: {error}", key="js-nack")
        acked = sum(ok for _, ok in results)
        if self._ctx is not None and acked:
            self._ctx.published([event for event, ok in results if ok])
        self._count("published", acked)
        if acked < len(results):
            self._count("ack_failures", len(results) - acked)
        return to_resend(results) + rest

    async def _stored(self, future: asyncio.Future[Any]) -> bool:
        """Whether a JetStream publish was acknowledged (waiting up to the ack timeout)."""
        if not future.done():
            await asyncio.wait([future], timeout=self.ack_timeout)
        return future.done() and not future.cancelled() and future.exception() is None

    # -- confirmation (core NATS) -------------------------------------------------------------

    async def _confirm_loop(self) -> None:
        """Round trips behind the publishes: what a returned marker covers reached the server."""
        while True:
            await self._confirm_wake.wait()
            self._confirm_wake.clear()
            if not self._segment or not self.nc.is_connected:
                continue
            segment, self._segment = self._segment, []
            self._sealed.append(segment)
            try:
                await self._roundtrip()
            except asyncio.CancelledError:
                raise
            except Exception:
                # Disconnected (the callback re-queues every sealed segment) or slow: a later
                # marker confirms this segment too, since markers come back in order.
                continue
            now = time.monotonic()
            while self._sealed:
                done = self._sealed.pop(0)
                self._recent.append((now, done))
                if self._ctx is not None:
                    self._ctx.published(done)
                if done is segment:
                    break
            cutoff = now - REPLAY_WINDOW
            while self._recent and self._recent[0][0] < cutoff:
                self._recent.popleft()

    async def _roundtrip(self) -> None:
        """Wait until the server has processed everything published so far.

        A marker goes to our own inbox through the same ordered output buffer as the changes;
        its echo proves the server took everything before it. (nats-py's ``flush()`` writes its
        PING straight to the socket, so it can overtake commands still in the client's buffer.)
        """
        token = next(self._marker_seq)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._markers[token] = future
        try:
            await self.nc.publish(self._marker_subject, str(token).encode())
            # Not asyncio.wait_for: before Python 3.12 it drops a cancellation that arrives
            # with the echo (CPython gh-86296), and close() then waits forever for the
            # confirmer it has just cancelled.
            await asyncio.wait([future], timeout=max(self.ack_timeout, 1.0))
            if not future.done():
                raise asyncio.TimeoutError
        finally:
            self._markers.pop(token, None)

    async def _on_marker(self, msg: Msg) -> None:
        try:
            future = self._markers.get(int(msg.data))
        except ValueError:
            return
        if future is not None and not future.done():
            future.set_result(None)

    # -- requests --------------------------------------------------------------------------

    async def _on_request(self, msg: Msg) -> None:
        # Each request in its own task: a long informer-store answer must not hold up others.
        if self._requests is not None:
            self._spawn(self._requests.handle(msg.data))

    async def _publish_reply(self, subject: str, data: bytes) -> None:
        await self.nc.publish(subject, data)

    async def _subscribe(self, subject: str, callback: Any) -> Any:
        """A plain subscription for a session's input; returns its unsubscribe."""

        async def deliver(msg: Msg) -> None:
            await callback(msg.data)

        subscription = await self.nc.subscribe(subject, cb=deliver)
        return subscription.unsubscribe

    def _authenticated(self) -> tuple[bool, str]:
        info = getattr(self.nc, "_server_info", None) if self.nc.is_connected else None
        return nats_authenticated(self.settings, info, self._tls_cert)

    # -- helpers ---------------------------------------------------------------------------

    def _count(self, name: str, amount: int) -> None:
        """Keep a counter for tests and logs and export it (``meshsync_nats_<name>_total``)."""
        self.counts[name] += amount
        self.metrics.inc(f"{name}_total", amount)

    def _gauges(self) -> None:
        self.metrics.set("connected", 1.0 if self.nc.is_connected else 0.0)
        self.metrics.set("pending_changes", float(len(self.pending)))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _warn_limited(
        self, message: str, *args: Any, key: str | None = None, level: int = logging.WARNING
    ) -> None:
        """A warning (or ``level``) at most once a minute per key; repeats go to debug."""
        self._limited.log(level, message, *args, key=key)
