"""One resource (optionally in one namespace): paginated list, watch, re-list diff, retries.

What is remembered per object is one packed string, ``"<resourceVersion>\\0<namespace>\\0<name>"``,
keyed by uid (about 230 bytes per object, against 9-12 KB for a Go informer's copy). That is
enough to

* drop updates whose resourceVersion did not change,
* turn any re-list into a diff (ADDED new, MODIFIED changed, DELETED vanished - the last as a
  minimal object ``{apiVersion, kind, metadata: {name, namespace, uid, resourceVersion}}``),
* never emit a second ADDED for an object already emitted.

Error handling follows client-go's reflector: a watch that ends or breaks is resumed from the
last resourceVersion seen (bookmarks keep it fresh); ``410 Expired`` (HTTP or an ``ERROR``
event) forces a re-list; connection errors, timeouts and 5xx back off exponentially with
jitter; 401/403/404 on one resource are reported once and retried slowly, without touching
other resources.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

from meshsync_core import ComponentMetrics, Emit, Event, EventType, Identity, gc_paused
from meshsync_k8s import raw_json
from meshsync_k8s.client import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_PAGE_SIZE,
    DEFAULT_REQUEST_TIMEOUT,
    ApiClient,
    ApiError,
)
from meshsync_k8s.resources import ApiResource

ADDED, MODIFIED, DELETED = EventType.ADDED, EventType.MODIFIED, EventType.DELETED
ALL_EVENTS = frozenset({ADDED, MODIFIED, DELETED})

#: Codes that will not go away by retrying soon: say so once, retry slowly.
_SLOW_RETRY = {400, 401, 403, 404, 405, 406, 415, 422}


@dataclass
class Tuning:
    """Timings and sizes; tests shrink them, production keeps the defaults.

    The one default of each: the ``k8s`` source's options (``tuning_options``) show these."""

    page_size: int = DEFAULT_PAGE_SIZE
    #: Server-side watch timeout; each watch picks a random value in [t, 2t) like client-go.
    watch_timeout: float = 300.0
    #: A stream with no byte (event or bookmark) for this long is considered dead.
    inactivity_timeout: float = 120.0
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    #: Retry interval for forbidden / not found / bad request.
    slow_retry: float = 60.0
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    #: List through a watch with ``sendInitialEvents`` (kube's streaming list, WatchList) where
    #: the server allows it, falling back to paginated lists where it does not. Off by default:
    #: against kube-apiserver 1.37 it synced 100k objects at about half the speed of paginated
    #: lists and cost the API server twice the CPU (docs/performance.md).
    streaming_list: bool = False
    #: Seconds between two drift checks of each resource (``--reconcile-interval``); 0 = off.
    reconcile_interval: float = 0.0


#: Retries counted towards the backoff's exponent at most (the delay is capped long before).
_MAX_ATTEMPT = 30


def next_attempt(attempt: int) -> int:
    """The backoff attempt after one more failure."""
    return min(attempt + 1, _MAX_ATTEMPT)


def backoff_delay(attempt: int, tuning: Tuning, rand: float) -> float:
    """Exponential backoff with jitter: ``uniform(d/2, d)`` with d doubling from
    ``backoff_base`` up to ``backoff_max``; ``rand`` in [0, 1) is the jitter's draw."""
    delay = min(tuning.backoff_max, tuning.backoff_base * (2**attempt))
    return delay / 2 + rand * (delay / 2)


@dataclass(frozen=True)
class RetryPlan:
    """What to do after a failed list or watch (see :func:`retry_plan`)."""

    #: The next step lists again (else it resumes the watch from the last resourceVersion).
    relist: bool
    #: Seconds to wait first (0: at once).
    delay: float
    #: A code that retrying soon will not change: reported once, the resource counts as
    #: listed (not ok) so that the initial sync does not wait for it.
    slow: bool
    #: The backoff attempt the next failure starts from.
    attempt: int


def retry_plan(
    exc: ApiError, attempt: int, tuning: Tuning, *, listing: bool, rand: float
) -> RetryPlan:
    """How to go on after ``exc`` failed a list (``listing``) or a watch, ``attempt`` failures
    into a row; ``rand`` in [0, 1) is the jitter's draw (pure: no clock, no randomness)."""
    if exc.expired:
        if attempt == 0:
            # the resourceVersion is too old to resume from (410): only a list recovers
            return RetryPlan(True, 0.0, False, 1)
        # expired again right after a re-list: back off, or it would spin
        return RetryPlan(True, backoff_delay(attempt, tuning, rand), False, next_attempt(attempt))
    if exc.code in _SLOW_RETRY:
        # forbidden, unauthorized, not found, rejected: asking again soon gets the same answer
        return RetryPlan(True, tuning.slow_retry, True, attempt)
    # connection trouble, timeouts, 5xx, throttling: back off; a broken list is listed again,
    # a broken watch resumes where it was
    return RetryPlan(listing, backoff_delay(attempt, tuning, rand), False, next_attempt(attempt))


class _Stopped(Exception):
    """Internal: the watcher was asked to stop between two pages."""


ListedCallback = Callable[["ResourceWatcher", bool], None]


class ResourceWatcher:
    """Keeps one resource's emitted view in step with the server.

    ``events`` (kept as ``event_types``) filters what is emitted (the state is tracked
    regardless); ``on_listed`` is called once, with True after the first complete list or
    False if the resource is forbidden/not found at start.
    """

    def __init__(
        self,
        client: ApiClient,
        api: ApiResource,
        emit: Emit,
        *,
        namespace: str | None = None,
        cluster_id: str = "",
        tuning: Tuning | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        events: Collection[EventType] = ALL_EVENTS,
        on_listed: ListedCallback | None = None,
        log: logging.Logger | None = None,
        source_name: str = "k8s",
        state: dict[str, str] | None = None,
        namespace_filter: Collection[str] | None = None,
        metrics: ComponentMetrics | None = None,
    ) -> None:
        self.client = client
        self.api = api
        self.resource = api.resource
        self.kind = api.kind
        self.api_version = api.api_version
        self.namespace = namespace if api.namespaced else None
        self.path = api.path(self.namespace)
        #: Client-side namespace filter (many namespaces: one cluster-wide watch is cheaper).
        self.namespace_filter = (
            frozenset(namespace_filter) if namespace_filter and api.namespaced else None
        )
        self.emit = emit
        self.cluster_id = cluster_id
        self.tuning = tuning or Tuning()
        #: The event types to emit (the MeshSync custom resource's per-resource filter).
        self.event_types = frozenset(events)
        self.on_listed = on_listed
        self.log = log or logging.getLogger("meshsync.k8s")
        self.source_name = source_name
        self.metrics = metrics or ComponentMetrics(source_name)
        self.params: dict[str, str] = {}
        if label_selector:
            self.params["labelSelector"] = label_selector
        if field_selector:
            self.params["fieldSelector"] = field_selector
        #: uid -> "rv\0namespace\0name" for every object emitted and not deleted.
        self.state: dict[str, str] = state if state is not None else {}
        self.resource_version = ""
        self.listed = False
        self.lists = 0
        self.watches = 0
        #: Watch events received (bookmarks included).
        self.received = 0
        self.malformed = 0
        self.task: asyncio.Task[None] | None = None
        self._child: asyncio.Future[Any] | None = None
        self._busy = False
        self._stopping = False
        self._resync_full = False
        self._resync_waiters: list[asyncio.Future[None]] = []
        self._reported: int | None = None  # the slow-retry code already warned about
        #: Still trying streaming lists (off for good once the server refused one).
        self.streaming_list = self.tuning.streaming_list
        self.streamed_lists = 0
        #: Set by request_drift_check(): the next list compares the server with what was emitted.
        #: Holds the resourceVersion the watch had reached when the check was asked for.
        self._drift_mark: int | None = None
        self.drift_checks = 0
        #: Set by request_diff(): the state the next list is diffed against (a take-over).
        self._reseed: dict[str, str] | None = None
        #: Changes a drift check found that the watch should have delivered (a metric too).
        self.drift_found = 0

    def __repr__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        return f"<ResourceWatcher {self.api}{where}>"

    @property
    def label(self) -> str:
        return f"{self.api}" + (f" (namespace {self.namespace})" if self.namespace else "")

    # -- control ---------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        self.task = asyncio.create_task(self.run(), name=f"watch:{self.label}")
        return self.task

    def request_resync(self) -> asyncio.Future[None]:
        """Re-list now and re-emit every current object; the future resolves when done."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._resync_waiters.append(waiter)
        self._resync_full = True
        self._interrupt()
        return waiter

    def request_diff(self, state: dict[str, str]) -> asyncio.Future[None]:
        """Re-list now and emit only what differs from ``state`` (uid -> packed rv/namespace/name
        of what was published: a new leader's take-over from the published index); the future
        resolves when done."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._resync_waiters.append(waiter)
        self._reseed = state
        self._interrupt()
        return waiter

    @property
    def _relist_wanted(self) -> bool:
        """A resync, a drift check or a take-over diff waits for the next list."""
        return self._resync_full or self._drift_mark is not None or self._reseed is not None

    def request_drift_check(self) -> None:
        """Re-list now and emit only what differs from what was emitted (``--reconcile-interval``):
        catches watch events missed for any reason. A resync or re-list already pending covers it.
        """
        if self._drift_mark is None:
            self._drift_mark = int(self.resource_version) if self.resource_version.isdigit() else 0
        self._interrupt()

    async def stop(self, *, emit_deletes: bool = False, timeout: float = 10.0) -> None:
        """Stop watching; with ``emit_deletes`` emit DELETED for every object still tracked."""
        self._stopping = True
        self._interrupt()
        if self.task is not None and not self.task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self.task), timeout)
            except asyncio.TimeoutError:
                self.task.cancel()
                with contextlib.suppress(BaseException):
                    await self.task
        self._release_waiters()
        if emit_deletes:
            for uid in list(self.state):
                await self._emit_vanished(uid)

    def _interrupt(self) -> None:
        # Never cancel in the middle of updating state and emitting: that would lose an event.
        if self._child is not None and not self._busy:
            self._child.cancel()

    def _release_waiters(self) -> None:
        waiters, self._resync_waiters = self._resync_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _mark_listed(self, ok: bool) -> None:
        if not self.listed:
            self.listed = True
            if self.on_listed is not None:
                self.on_listed(self, ok)

    # -- main loop -------------------------------------------------------------------------

    async def run(self) -> None:
        """List, then watch and resume, until stopped; every failure is retried as
        :func:`retry_plan` says."""
        attempt = 0  # failures (and empty watches) in a row: the backoff's exponent
        listing = True  # the next step lists (else it resumes the watch)
        while not self._stopping:
            try:
                if listing or self._relist_wanted:
                    listing = True  # asked for (resync, drift check, take-over): a list too
                    await self._list_step()
                    listing, attempt = False, 0
                else:
                    attempt = await self._watch_step(attempt)
            except _Stopped:
                break
            except ApiError as exc:
                if self._stopping:
                    break
                plan = retry_plan(exc, attempt, self.tuning, listing=listing, rand=random.random())
                self._report_retry(exc, plan, listing)
                listing, attempt = plan.relist, plan.attempt
                if plan.delay:
                    await self._interruptible(asyncio.sleep(plan.delay))

    async def _list_step(self) -> None:
        """One list, diffed against what was emitted (everything again for a resync, against
        the published state for a take-over): a streaming list where the server offers it,
        which then watches on the same stream until it ends, else a paginated list."""
        full, self._resync_full = self._resync_full, False
        if self._reseed is not None:  # diff against what was published instead
            self.state, self._reseed = self._reseed, None
        if self.streaming_list and await self._streamed_list(full):
            return  # listed, then watched on the same stream until it ended
        self._listed_ok(await self._relist(full=full))

    async def _watch_step(self, attempt: int) -> int:
        """One watch request from the last resourceVersion; returns the next backoff attempt."""
        started = time.monotonic()
        received = self.received
        if not await self._interruptible(self._watch()):
            return attempt  # interrupted on purpose (stop, resync): says nothing of the server
        if self.received > received or time.monotonic() - started >= 1.0:
            return 0  # the stream ended normally (server timeout): re-watch at once
        # it ended immediately with nothing in it, which must not become a spin
        await self._interruptible(
            asyncio.sleep(backoff_delay(attempt, self.tuning, random.random()))
        )
        return next_attempt(attempt)

    def _report_retry(self, exc: ApiError, plan: RetryPlan, listing: bool) -> None:
        """Count and log one failure as ``plan`` handles it."""
        self.metrics.inc("k8s_watch_errors_total", resource=self.resource.key, code=str(exc.code))
        if plan.slow:
            self._report_slow(exc)
            self._mark_listed(False)
            self._release_waiters()
        elif exc.expired:
            self.log.info("%s: %s; re-listing", self.label, exc)
        else:
            self.log.warning(
                "%s: %s failed (%s); retrying in %.1fs",
                self.label,
                "list" if listing else "watch",
                exc,
                plan.delay,
            )

    def _listed_ok(self, drift: int) -> None:
        """A list completed; ``drift`` counts changes older than a pending drift check's mark."""
        if self._drift_mark is not None:
            self._drift_mark = None
            self.drift_checks += 1
            if drift:
                self.drift_found += drift
                self.metrics.inc("k8s_drift_found_total", drift, resource=self.resource.key)
                self.log.warning(
                    "%s: reconciliation found %d change(s) the watch had not delivered",
                    self.label,
                    drift,
                )
        self._recovered()
        self._mark_listed(True)
        self._release_waiters()

    async def _interruptible(self, coro: Awaitable[Any]) -> bool:
        """Run ``coro`` as a child that stop/resync may cancel; False if it was cancelled."""
        child = asyncio.ensure_future(coro)
        self._child = child
        try:
            await asyncio.wait({child})
        finally:
            self._child = None
            if not child.done():
                child.cancel()
                with contextlib.suppress(BaseException):
                    await child
        if child.cancelled():
            return False
        child.result()
        return True

    def _report_slow(self, exc: ApiError) -> None:
        if self._reported == exc.code:
            self.log.debug("%s: still %s", self.label, exc)
            return
        self._reported = exc.code
        what = {403: "forbidden", 401: "unauthorized", 404: "not found"}.get(exc.code, "rejected")
        self.log.warning(
            "%s: %s (%s); other resources are unaffected, retrying every %gs",
            self.label,
            what,
            exc.message or exc.reason,
            self.tuning.slow_retry,
        )

    def _recovered(self) -> None:
        if self._reported is not None:
            self.log.warning("%s: listed successfully again", self.label)
            self._reported = None

    # -- list ------------------------------------------------------------------------------

    async def _relist(self, *, full: bool) -> int:
        """List everything and emit only the difference (or everything, for ``full``); returns
        how many of those changes predate a pending drift check's mark."""
        # No set of every listed uid on a first list: nothing tracked, so nothing can vanish.
        seen: set[str] | None = set() if self.state else None
        list_rv = ""
        drift = 0
        self.lists += 1
        pages = self.client.list_pages(self.path, self.params, self.tuning.page_size)
        async with contextlib.aclosing(pages):
            async for page in pages:
                if not list_rv:
                    list_rv = page.resource_version
                items = page.items or []
                self._busy = True
                try:
                    # no collector pass over a page's thousands of young, acyclic objects
                    with gc_paused():
                        drift += await self._apply_page(items, seen, full)
                finally:
                    self._busy = False
                del page, items  # the next page arrives while this one is freed, not after
                if self._stopping:
                    raise _Stopped
        if not list_rv:
            raise ApiError(0, "InvalidResponse", "list response without a resourceVersion")
        self._busy = True
        try:
            drift += await self._emit_unseen(seen)
        finally:
            self._busy = False
        self.resource_version = list_rv
        return drift

    async def _streamed_list(self, full: bool) -> bool:
        """List through a streaming list and watch on. False when it did not complete: then a
        paginated list follows, as client-go's reflector falls back."""
        listing = _StreamedList(set() if self.state else None, full)
        received = self.received
        try:
            await self._interruptible(self._stream(listing))
        except ApiError as exc:
            if listing.done or exc.code in _SLOW_RETRY - _NO_STREAMING:
                # the list completed: a watch error like any other; or refused (401, 403,
                # 404): a paginated list would be refused too, the retry loop reports it
                raise
            if exc.code in _NO_STREAMING:
                # the server does not offer streaming lists (WatchList off, or too old)
                self._stop_streaming(f"the server refused it: {exc}")
            elif self.received > received:
                # events came but not the end of the initial ones: the parameter was ignored
                self._stop_streaming(f"it ended before its last initial event ({exc})")
            else:
                self.log.debug("%s: streaming list failed (%s); listing in pages", self.label, exc)
            return False
        if listing.done or self._stopping or self._relist_wanted:
            return True  # complete, or interrupted on purpose: the caller lists again if needed
        self._stop_streaming("it ended before its last initial event")
        return False

    def _stop_streaming(self, why: str) -> None:
        self.log.info("%s: no streaming list (%s); listing in pages from now on", self.label, why)
        self.streaming_list = False

    async def _stream(self, listing: _StreamedList) -> None:
        """The current state as ADDED events up to the ``k8s.io/initial-events-end`` bookmark
        (diffed against what was emitted, as a re-list), then watch events on the same stream."""
        params = {"sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan"}
        self.lists += 1
        async with contextlib.aclosing(self._events("", params)) as events:
            async for etype, raw in events:
                if listing.done:
                    await self._apply(etype, raw)
                elif etype == "ADDED":
                    listing.drift += await self._apply_page([raw], listing.seen, listing.full)
                elif etype == "BOOKMARK" and _ends_initial_events(raw):
                    listing.drift += await self._emit_unseen(listing.seen)
                    meta = raw_json.object_meta(raw)
                    self.resource_version = meta.resourceVersion if meta else ""
                    listing.done = True
                    self.streamed_lists += 1
                    self._listed_ok(listing.drift)
                elif etype != "BOOKMARK":
                    await self._apply(etype, raw)  # an ERROR raises; the rest is malformed
                # a drift check pending while the list runs is answered by this list itself
                drift_check = listing.done and self._drift_mark is not None
                if self._stopping or self._resync_full or self._reseed is not None or drift_check:
                    return

    async def _emit_unseen(self, seen: set[str] | None) -> int:
        """DELETED for every tracked object a complete list did not mention; returns how many
        (deletes the watch missed, when a drift check is pending)."""
        if seen is None or len(seen) == len(self.state):
            return 0  # every tracked uid was listed: no scan of the whole state
        vanished = [uid for uid in self.state if uid not in seen]
        for uid in vanished:
            await self._emit_vanished(uid)
        return len(vanished) if self._drift_mark is not None else 0

    async def _apply_page(self, items: list[Any], seen: set[str] | None, full: bool) -> int:
        """Diff every raw item of a page against the state and emit what changed; returns how
        many changes predate a pending drift check's mark (changes after it are the watch's)."""
        mark = self._drift_mark
        drift = 0
        # Locals, not attribute lookups, in the loop that runs once per listed object: six
        # lookups fewer per object.
        state = self.state
        events = self.event_types
        emit = self.emit
        identify = self.identify
        make_event = self._event
        for raw in items:
            ident = identify(raw)
            if ident is None:
                continue
            if seen is not None:
                seen.add(ident[0])
            etype = track(state, ident, full)
            if etype is None:
                continue
            if etype in events:
                await emit(make_event(etype, raw, ident))
            rv = ident[3]
            if mark is not None and not full and rv.isdigit() and int(rv) <= mark:
                drift += 1
        return drift

    def _decode_object(self, raw: Any) -> dict[str, Any]:
        """An event's object, decoded on first access; list items get apiVersion and kind."""
        obj = raw_json.load(raw)
        if "kind" not in obj:
            obj["apiVersion"] = self.api_version
            obj["kind"] = self.kind
        return obj

    def current_event(self, raw: Any, ident: Identity) -> Event:
        """An ADDED event for an object of a fresh list (the sinks' ``current_state``)."""
        return self._event(ADDED, raw, ident)

    def _event(self, etype: EventType, raw: Any, ident: Identity) -> Event:
        # the raw JSON and the identity travel undecoded: a sink that never reads
        # ``event.object`` never pays for building its dict
        return Event(
            etype,
            None,
            self.resource,
            self.source_name,
            self.cluster_id,
            raw=raw,
            decode=self._decode_object,
            identity=ident,
        )

    async def _emit_vanished(self, uid: str) -> None:
        packed = self.state.pop(uid, None)
        if packed is None:
            return
        rv, namespace, name = packed.split("\0", 2)
        metadata: dict[str, Any] = {"name": name, "uid": uid, "resourceVersion": rv}
        if namespace:
            metadata["namespace"] = namespace
        obj = {"apiVersion": self.api_version, "kind": self.kind, "metadata": metadata}
        if DELETED in self.event_types:
            await self.emit(Event(DELETED, obj, self.resource, self.source_name, self.cluster_id))

    def _malformed(self, problem: str) -> None:
        self.malformed += 1
        if self.malformed <= 10:
            self.log.warning("%s: skipping malformed object: %s", self.label, problem)
        elif self.malformed % 1000 == 0:
            self.log.warning("%s: %d malformed objects skipped", self.label, self.malformed)

    def identify(self, raw: Any) -> Identity | None:
        """``(uid, name, namespace, rv)`` of a listed object's JSON if it is well-formed and in
        the namespace filter, else None (a malformed one is warned about)."""
        # metadata only, the rest skipped or not even read: a full decode is for odd objects
        ident = raw_json.identity(raw)
        if ident is None:
            ident = self._identify_slowly(raw)
        if ident is None:
            return None
        return ident if self.namespace_filter is None or ident[2] in self.namespace_filter else None

    def _identify_slowly(self, raw: Any) -> Identity | None:
        """Decode the whole object to accept it (``namespace: null``) or say what is wrong."""
        return self._identity(raw_json.load(raw))

    def _identity(self, obj: Any) -> Identity | None:
        """``(uid, name, namespace, rv)`` of a well-formed object, else None (and a warning)."""
        # ``__class__ is`` rather than isinstance: the cheapest exact check, once per object
        if obj.__class__ is not dict:
            self._malformed(f"expected an object, got {type(obj).__name__}")
            return None
        meta = obj.get("metadata")
        if meta.__class__ is not dict:
            self._malformed("no metadata" if meta is None else "metadata is not an object")
            return None
        uid = meta.get("uid")
        rv = meta.get("resourceVersion")
        name = meta.get("name")
        namespace = meta.get("namespace") or ""
        if (
            uid.__class__ is not str
            or rv.__class__ is not str
            or name.__class__ is not str
            or namespace.__class__ is not str
            or not uid
            or not name
        ):
            checks = (("uid", uid), ("name", name), ("resourceVersion", rv))
            field, value = next(
                ((f, v) for f, v in checks if v.__class__ is not str or not v),
                ("namespace", namespace),
            )
            shown = f"{name}" if name.__class__ is str else "?"
            self._malformed(f"{shown}: metadata.{field} is {value!r}")
            return None
        return uid, name, namespace, rv

    async def _upsert(self, raw: Any) -> None:
        """A watched ADDED/MODIFIED: emit it unless its resourceVersion is already known."""
        ident = self.identify(raw)
        if ident is None:
            return
        etype = track(self.state, ident)
        if etype is not None and etype in self.event_types:
            await self.emit(self._event(etype, raw, ident))

    # -- watch -----------------------------------------------------------------------------

    async def _watch(self) -> None:
        async with contextlib.aclosing(self._events(self.resource_version)) as events:
            async for etype, raw in events:
                await self._apply(etype, raw)
                if self._stopping or self._relist_wanted:
                    return

    async def _events(
        self, resource_version: str, extra: dict[str, str] | None = None
    ) -> AsyncGenerator[tuple[str, Any], None]:
        """One watch request's events from ``resource_version``, as ``(type, raw object)``;
        ``_busy`` while the caller handles one, so that an interrupt (a resync, a stop) never
        cuts an update in half. The server ends it after a random timeout in [t, 2t), as
        client-go's, so that many watches do not all come back at once."""
        timeout = int(self.tuning.watch_timeout * (1 + random.random())) or 1
        params = {
            **self.params,
            **(extra or {}),
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout),
        }
        self.watches += 1
        self.metrics.inc("k8s_watch_starts_total", resource=self.resource.key)
        stream = self.client.watch(
            self.path, params, inactivity_timeout=self.tuning.inactivity_timeout
        )
        async with contextlib.aclosing(stream):
            async for event in stream:
                self.received += 1
                self._busy = True
                try:
                    yield event
                finally:
                    self._busy = False

    async def _apply(self, etype: str, raw: Any) -> None:
        """One watch event; ``raw`` is its object's JSON (what is wrong, when MALFORMED)."""
        if etype == "ADDED" or etype == "MODIFIED":
            await self._upsert(raw)
        elif etype == "DELETED":
            ident = self.identify(raw)
            known = ident is not None and self.state.pop(ident[0], None) is not None
            if known and ident is not None and DELETED in self.event_types:
                await self.emit(self._event(DELETED, raw, ident))
        elif etype == "BOOKMARK":
            pass
        elif etype == "ERROR":
            status = _loads_or_empty(raw)
            raise ApiError(
                int(status.get("code") or 0) or 500,
                str(status.get("reason") or "Error"),
                str(status.get("message") or ""),
            )
        elif etype == "MALFORMED":
            self._malformed(f"undecodable watch event ({raw})")
            return
        else:
            self._malformed(f"unknown watch event type {etype!r}")
            return
        meta = raw_json.object_meta(raw)
        if meta is not None and meta.resourceVersion:
            self.resource_version = meta.resourceVersion


def track(state: dict[str, str], ident: Identity, full: bool = False) -> EventType | None:
    """Record one listed or watched object in ``state`` (uid -> ``rv\0namespace\0name``) and
    say what to emit: ADDED for a new uid, MODIFIED for another resourceVersion, None when
    nothing changed (ADDED again with ``full``: a resync re-announces everything).

    The one place where a list page and a watch event are compared with what was emitted."""
    uid, name, namespace, rv = ident
    packed = f"{rv}\0{namespace}\0{name}"
    old = state.get(uid)
    if old == packed:
        return ADDED if full else None
    state[uid] = packed
    return ADDED if old is None else MODIFIED


#: Answers to a streaming-list request that mean "not offered here": WatchList disabled (422
#: or 400 from kube), or a server too old for the parameters.
_NO_STREAMING = {400, 405, 406, 415, 422}


@dataclass
class _StreamedList:
    """Progress of one streaming list: the uids it mentioned, and whether its end arrived."""

    seen: set[str] | None
    full: bool
    done: bool = False
    drift: int = 0


def _ends_initial_events(raw: Any) -> bool:
    annotations = (_loads_or_empty(raw).get("metadata") or {}).get("annotations") or {}
    return annotations.get("k8s.io/initial-events-end") == "true"


def _loads_or_empty(raw: Any) -> dict[str, Any]:
    try:
        value = raw_json.load(raw)
    except raw_json.DecodeError:
        return {}
    return value if isinstance(value, dict) else {}
