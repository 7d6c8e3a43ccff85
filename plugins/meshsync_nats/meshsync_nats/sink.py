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
from collections import Counter
from collections.abc import Awaitable, Sequence
from typing import Any

import click
import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from meshsync_core import (
    Duration,
    Event,
    MeshSyncError,
    Options,
    RateLimitedLog,
    Sink,
    SinkContext,
)
from meshsync_core import __version__ as core_version
from meshsync_nats.confirmation import Confirmation
from meshsync_nats.connection import SEND_ERRORS, ConnectionSettings
from meshsync_nats.connection_log import ConnectionLog
from meshsync_nats.index_store import KvIndexStore
from meshsync_nats.jetstream import JetStreamPublisher, StreamSettings
from meshsync_nats.outage import OutagePump
from meshsync_nats.oversize import Oversize
from meshsync_nats.pending import PendingBuffer
from meshsync_nats.publishing import CorePublisher
from meshsync_nats.requests import QUEUE_GROUP, SUBJECT_REQUEST, RequestHandler
from meshsync_nats.sessions import SessionManager, SessionPolicy, nats_authenticated


class NatsDeliveryError(MeshSyncError):
    """Changes were still waiting for NATS when the run ended: they never reached Meshery."""


#: Wait after a reconnect before re-sending buffered changes (``--nats-resend-delay``).
RESEND_DELAY = 2.0
#: Objects whose latest change is kept while NATS is unreachable (``--nats-buffer-size``).
BUFFER_SIZE = 10_000
#: The key-value bucket of the published index (``--nats-index-bucket``).
INDEX_BUCKET = "meshsync-index"


def sink_options() -> list[click.Option]:
    """The sink's own options (buffering, the published index, ids): read in ``NatsSink``."""
    return [
        click.Option(
            ["--nats-resend-delay"],
            envvar="NATS_RESEND_DELAY",
            type=Duration(),
            default=f"{RESEND_DELAY:g}s",
            show_default=True,
            help="[nats] After a reconnect, wait this long (for subscribers to reconnect too) "
            "before re-sending buffered changes. Core NATS only.",
        ),
        click.Option(
            ["--nats-buffer-size"],
            envvar="NATS_BUFFER_SIZE",
            type=click.IntRange(min=1),
            default=BUFFER_SIZE,
            show_default=True,
            help="[nats] Objects whose latest change is kept while NATS is unreachable; beyond "
            "it the oldest states are dropped (counted, logged, then a resync).",
        ),
        click.Option(
            ["--nats-index-bucket"],
            envvar="NATS_INDEX_BUCKET",
            default=INDEX_BUCKET,
            show_default=True,
            help="[nats] JetStream key-value bucket of the published index (created if "
            "missing; needs JetStream on the server). Empty: keep no index in NATS.",
        ),
        click.Option(
            ["--nats-index-replicas"],
            envvar="NATS_INDEX_REPLICAS",
            type=click.IntRange(min=1, max=5),
            default=None,
            help="[nats] Replicas of the index bucket the sink creates [default: "
            "--nats-stream-replicas].",
        ),
        click.Option(
            ["--meshery-ids/--no-meshery-ids"],
            envvar="MESHSYNC_MESHERY_IDS",
            default=False,
            help="[nats] Fill id fields the way Meshery computes them (Go sends empty ids).",
        ),
    ]


class NatsSink(Sink):
    """Publishes changes on ``meshery.meshsync.core`` and answers Meshery's requests.

    The jobs are in their own modules; the sink wires them to one connection:
    :mod:`~meshsync_nats.outage` (live or buffered, the backlog pump),
    :mod:`~meshsync_nats.confirmation` (core NATS round trips),
    :mod:`~meshsync_nats.jetstream` (stream and acks), :mod:`~meshsync_nats.connection_log`.
    """

    name = "nats"
    aliases = ("broker",)
    description = "publish changes to NATS for Meshery Server (Go MeshSync's wire contract)"
    #: Confirmed changes (a returned marker, a JetStream ack) go to the published index.
    confirms_publication = True

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        self.meshery_ids = bool(options.get("meshery_ids", False))
        self.jetstream = bool(options.get("nats_jetstream", False))
        delay = options.get("nats_resend_delay")
        self.resend_delay = RESEND_DELAY if delay is None else float(delay)
        capacity = int(options.get("nats_buffer_size") or BUFFER_SIZE)
        self.pending = PendingBuffer(max(capacity, 1), keep_all=self.jetstream)
        # Checked here, with every other component's options, before anything starts.
        self.settings = ConnectionSettings.from_options(options)
        self.session_policy = SessionPolicy.from_options(options)
        self.stream_settings = StreamSettings.from_options(options, jetstream=self.jetstream)
        self._tls_cert = options.get("nats_tls_cert") or None
        self.sessions: SessionManager | None = None
        self.index_bucket = str(options.get("nats_index_bucket", INDEX_BUCKET) or "")
        replicas = self.stream_settings.replicas
        self.index_replicas = int(options.get("nats_index_replicas") or replicas)
        self.nc = NATS()
        self.oversize = Oversize(self.log, self.metrics, meshery_ids=self.meshery_ids)
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
        self._first_attempt = asyncio.Event()  # the first connection attempt has ended
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connector: asyncio.Task[None] | None = None
        self._confirmer: asyncio.Task[None] | None = None
        self._limited = RateLimitedLog(self.log)
        self.connection_log = ConnectionLog(
            self.settings, log=self.log, limited=self._limited, buffered=lambda: len(self.pending)
        )
        self.confirmation = Confirmation(
            send=self._publish_reply,
            is_connected=self._is_connected,
            published=self._published,
            timeout=self.stream_settings.ack_timeout,
        )
        self.publisher = CorePublisher(
            connection=lambda: self.nc,
            confirmation=self.confirmation,
            oversize=self.oversize,
            meshery_ids=self.meshery_ids,
            count=self._count,
            counts=self.counts,
            metrics=self.metrics,
            limited=self._limited,
            stream_limit=lambda: self.js_publisher.limit(),
        )
        self.js_publisher = JetStreamPublisher(
            self.stream_settings,
            connection=lambda: self.nc,
            encode=self.publisher.encode,
            fit=self.publisher.fit,
            unsendable=self.publisher.unsendable,
            published=self._published,
            count=self._count,
            log=self.log,
            limited=self._limited,
        )
        self.outage = OutagePump(
            self.pending,
            publish_batch=self.js_publisher.publish if self.jetstream else self.publisher.publish,
            is_connected=self._is_connected,
            request_resync=self._request_resync,
            count=self._count,
            spawn=self._spawn,
            log=self.log,
            limited=self._limited,
            metrics=self.metrics,
            prepare=self.js_publisher.prepare if self.jetstream else None,
        )

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
            self._confirmer = asyncio.create_task(self.confirmation.run(), name="nats:confirm")
        # Usually NATS is up: start connected rather than buffer the initial sync. When it is
        # down, the first failed attempt ends this wait and the run goes on, buffering.
        await self._wait_connected()

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
            and (self.js_publisher.stream_ok or not self.jetstream)
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
        ack_timeout = self.stream_settings.ack_timeout
        if self.nc.is_connected:
            try:
                await asyncio.wait_for(self._final_flush(), timeout=ack_timeout + 5.0)
            except (asyncio.TimeoutError, *SEND_ERRORS, nats.errors.Error) as exc:
                self.log.warning("could not flush to NATS at shutdown: %s", exc or "timeout")
        if self._ctx is not None and self.nc.is_connected:
            with contextlib.suppress(Exception):  # lost writes cost duplicates, never losses
                await asyncio.wait_for(self._ctx.flush_published(), timeout=ack_timeout)
        self.outage.closing = True
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
            raise NatsDeliveryError(self.connection_log.undelivered_reason(undelivered))

    async def _final_flush(self) -> None:
        async with self.outage.lock:
            await self.outage.send_pending()
            await self.confirmation.roundtrip()
            # everything published so far is confirmed now
            self.confirmation.confirm_all()

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
        await self.nc.connect(
            **self.settings.kwargs(),
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        self.connection_log.connected(self.nc)
        self.confirmation.subject = self.nc.new_inbox()
        await self.nc.subscribe(self.confirmation.subject, cb=self._on_marker)
        await self.nc.subscribe(SUBJECT_REQUEST, queue=QUEUE_GROUP, cb=self._on_request)
        # The server has both subscriptions once this round trip is back: "ready" then
        # includes answering requests.
        await self.confirmation.roundtrip()
        if self.jetstream:
            await self.js_publisher.ensure_stream()
        if self.pending:
            # Changes piled up while NATS was unreachable: give subscribers that start along
            # with the server (Meshery Server) the same head start as after a reconnect.
            await self._resume()
        else:
            await self.outage.pump()

    async def _on_error(self, exc: Exception) -> None:
        if self.connection_log.error(exc, connected=self.nc.is_connected):
            self._first_attempt.set()

    async def _on_disconnected(self) -> None:
        if self.outage.closing:
            return
        self.outage.disconnected()
        self._count("disconnects", 1)
        self.outage.gauges()
        self.outage.put_back(self.confirmation.unconfirmed())
        self.connection_log.disconnected(self.pending.capacity)

    async def _on_reconnected(self) -> None:
        self._count("reconnects", 1)
        self.outage.gauges()
        self.connection_log.reconnected(self.nc, self.resend_delay)
        self._spawn(self._resume())

    async def _resume(self) -> None:
        if self.resend_delay > 0 and not self.jetstream:
            # Subscribers (Meshery Server) reconnect too; core NATS drops what they miss.
            await asyncio.sleep(self.resend_delay)
        await self.outage.pump()

    async def _on_marker(self, msg: Msg) -> None:
        self.confirmation.on_marker(msg.data)

    # -- delivery --------------------------------------------------------------------------

    async def deliver(self, events: Sequence[Event]) -> None:
        await self.outage.deliver(events)

    def _published(self, events: list[Event]) -> None:
        """Confirmed changes (a returned marker, a JetStream ack): into the published index."""
        if self._ctx is not None:
            self._ctx.published(events)

    async def _request_resync(self) -> None:
        if self._ctx is not None:
            await self._ctx.request_resync()

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

    def _is_connected(self) -> bool:
        return bool(self.nc.is_connected)

    def _count(self, name: str, amount: int) -> None:
        """Keep a counter for tests and logs and export it (``meshsync_nats_<name>_total``)."""
        self.counts[name] += amount
        self.metrics.inc(f"{name}_total", amount)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
