"""The ``k8s`` source: every object of the selected resources, listed then watched.

Structure: one :class:`~meshsync_k8s.watcher.ResourceWatcher` per (resource, namespace), all
sharing one :class:`~meshsync_k8s.client.ApiClient`. Two internal watchers feed configuration
instead of sinks: one on CustomResourceDefinitions (:class:`~meshsync_k8s.crds.CrdCatalog`) and
one on the MeshSync custom resource. Whenever either changes, :meth:`_reconcile` computes the
wanted set and starts, stops or retunes watchers - no restart needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from meshsync_core import (
    ConfigError,
    Duration,
    Event,
    EventType,
    IndexRecord,
    Options,
    Resource,
    Source,
    SourceContext,
    StartupError,
    as_list,
    partition_of,
)
from meshsync_k8s import meshsync_cr, selection
from meshsync_k8s.client import ApiClient, ApiError
from meshsync_k8s.crds import CrdCatalog
from meshsync_k8s.kubeconfig import load_connection
from meshsync_k8s.leadership import Leadership
from meshsync_k8s.meshsync_cr import MeshSyncConfig, parse_meshsync_cr, read_meshsync_cr
from meshsync_k8s.pod_streams import PodStreams
from meshsync_k8s.resources import (
    ApiResource,
    Discovery,
    ResourceName,
    default_set,
    discover,
    parse_resource_list,
    resolve,
)
from meshsync_k8s.selection import Key, Wanted
from meshsync_k8s.watcher import ResourceWatcher, Tuning

#: Up to this many namespaces get one watch each (server-side filtering); more share one
#: cluster-wide watch per resource, filtered here, to bound the number of connections.
MAX_NAMESPACE_WATCHES = 8
#: Deletions a standby remembers for a take-over without a published index.
MAX_UNHEARD_DELETES = 100_000
#: How long ``resync`` waits for every resource to be re-listed.
RESYNC_TIMEOUT = 120.0
_CRD_NAME = ResourceName("customresourcedefinitions", None, "apiextensions.k8s.io")
_CR_NAME = ResourceName(meshsync_cr.PLURAL, None, meshsync_cr.GROUP)


#: Tuning field -> (option key, flag, smallest sensible value, help). Each option is declared
#: from this table and read back by ``tuning_from``; its default is the Tuning field's, the
#: environment variable ``MESHSYNC_`` + the key in capitals.
_TUNING_OPTIONS: dict[str, tuple[str, str, float, str]] = {
    "page_size": (
        "list_page_size", "--list-page-size", 1, "[k8s] Objects per page of a list request.",
    ),
    "watch_timeout": (
        "watch_timeout", "--watch-timeout", 1.0,
        "[k8s] Server-side timeout of a watch request; each watch picks a random value "
        "between this and twice this, then resumes where it stopped.",
    ),
    "inactivity_timeout": (
        "watch_inactivity_timeout", "--watch-inactivity-timeout", 0.1,
        "[k8s] A watch stream silent this long (no event, no bookmark) is taken as dead and "
        "reopened. Keep it above a minute: API servers send bookmarks about once a minute.",
    ),
    "backoff_max": (
        "retry_max_delay", "--retry-max-delay", 0.1,
        "[k8s] Longest wait between retries after errors (exponential backoff with jitter up "
        "to this).",
    ),
    "reconcile_interval": (
        "reconcile_interval", "--reconcile-interval", 0.0,
        "[k8s] Re-list each watched resource about this often, one at a time spread over the "
        "interval, and emit only what differs from what was sent: catches watch events missed "
        "for any reason (0: off).",
    ),
}  # fmt: skip


def tuning_options() -> list[click.Option]:
    """List/watch timings; the defaults suit real clusters (client-go's reflector values)."""
    defaults = Tuning()
    options = []
    for field, (key, flag, minimum, help_text) in _TUNING_OPTIONS.items():
        default = getattr(defaults, field)
        counted = isinstance(default, int)  # a size; the others are durations
        options.append(
            click.Option(
                [flag, key],
                type=click.IntRange(min=int(minimum)) if counted else Duration(),
                default=default if counted else f"{default:g}s",
                show_default=True,
                envvar=f"MESHSYNC_{key.upper()}",
                help=help_text,
            )
        )
    options.append(
        click.Option(
            ["--streaming-list/--no-streaming-list", "streaming_list"],
            default=defaults.streaming_list,
            show_default=True,
            envvar="MESHSYNC_STREAMING_LIST",
            help="[k8s] List through a watch that sends the current state first (kube's "
            "streaming list, WatchList) where the API server offers it; paginated lists "
            "otherwise.",
        )
    )
    return options


def tuning_from(options: Options) -> Tuning:
    """The list/watch timings the user set (``--watch-timeout`` ...), defaults elsewhere."""
    changes: dict[str, Any] = {}
    for field, (key, flag, minimum, _help) in _TUNING_OPTIONS.items():
        value = options.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
            raise ConfigError(f"{flag} must be at least {minimum:g}, not {value!r}")
        changes[field] = value
    if options.get("streaming_list") is not None:  # --streaming-list / --no-streaming-list
        changes["streaming_list"] = bool(options.get("streaming_list"))
    return replace(Tuning(), **changes)


def _check_kubeconfig_files(kubeconfig: str | None) -> None:
    """A ``--kubeconfig`` file that does not exist is a mistake to report before anything starts
    (reading and using the files happens in ``open``: exec plugins may take a while)."""
    for part in str(kubeconfig or "").split(os.pathsep):
        if part and not Path(part).expanduser().exists():
            raise ConfigError(f"kubeconfig {str(Path(part).expanduser())!r} does not exist")


class KubernetesSource(Source):
    """Lists and watches a Kubernetes cluster through its API server."""

    name = "k8s"
    aliases = ("kubernetes",)
    description = "a Kubernetes cluster: list + watch of the default set, CRDs and more"

    def __init__(self, options: Options, *, tuning: Tuning | None = None) -> None:
        super().__init__(options)
        self.metrics.describe("k8s_objects_tracked", "Objects emitted and not deleted.")
        self.metrics.describe("k8s_watch_starts_total", "Watch requests started, per resource.")
        self.metrics.describe(
            "k8s_watch_errors_total", "List/watch failures per resource and HTTP code (410s)."
        )
        self.metrics.set_function("k8s_objects_tracked", lambda: float(self.tracked))
        self.kubeconfig: str | None = options.get("kubeconfig") or None
        _check_kubeconfig_files(self.kubeconfig)
        self.context_name: str | None = options.get("context") or None
        self.includes, self.excludes = parse_resource_list(as_list(options.get("resources")))
        if self.includes and self.excludes:
            raise ConfigError(
                "--resources mixes resources to watch ("
                + ", ".join(map(str, self.includes))
                + ") with exclusions (-"
                + ", -".join(map(str, self.excludes))
                + "): give either a list to watch or a list to exclude"
            )
        self.namespaces: list[str] = sorted(set(as_list(options.get("namespaces"))))
        self.label_selector: str | None = options.get("label_selector") or None
        self.field_selector: str | None = options.get("field_selector") or None
        self.cluster_scoped = options.get("cluster_scoped", True) is not False
        #: What the command line asks to watch (see meshsync_k8s.selection).
        self.choices = selection.Choices(
            tuple(self.includes), tuple(self.excludes), self.cluster_scoped
        )
        self.watch_crds = options.get("watch_crds", True) is not False
        self.use_meshsync_cr = options.get("meshsync_cr", True) is not False
        self.tuning = tuning or tuning_from(options)
        #: With --leader-elect: only the Lease holder emits (see meshsync_k8s.leadership).
        self.leadership = Leadership.from_options(options)
        self._synced_event = asyncio.Event()
        self._takeover: asyncio.Task[None] | None = None
        self._finishing: asyncio.Task[None] | None = None
        #: uid -> DELETED a standby did not emit (see _emit_if_leading).
        self._unheard_deletes: dict[str, Event] = {}
        if self.leadership is not None:
            self.metrics.describe("k8s_leader", "1 while this replica holds the leader Lease.")
            leadership = self.leadership
            self.metrics.set_function("k8s_leader", lambda: float(leadership.leading))
        self.client: ApiClient | None = None
        self.cluster_id = ""
        self.discovery: Discovery | None = None
        self.defaults: list[ApiResource] = []
        self.cr_config: MeshSyncConfig | None = None
        self.crds = CrdCatalog(self._request_reconcile)
        #: (group, plural) -> one watcher per namespace (or one cluster-wide).
        self.watchers: dict[Key, list[ResourceWatcher]] = {}
        #: What was emitted for resources no longer watched (the MeshSync custom resource or
        #: its deletion took them out), by namespace: the sinks still hold those objects, so
        #: watching the resource again re-lists as a diff instead of ADDing them a second time.
        self._parked: dict[Key, dict[str | None, dict[str, str]]] = {}
        #: Resources the published index named, for DELETEs of objects of resources no longer
        #: served (a CRD deleted while no MeshSync ran).
        self._restored: dict[Key, Resource] = {}
        self._crd_watcher: ResourceWatcher | None = None
        self._cr_watcher: ResourceWatcher | None = None
        self._ctx: SourceContext | None = None
        self._pending: set[ResourceWatcher] = set()
        self._setup_done = False
        self._synced = False
        self._dirty = asyncio.Event()
        self._reconcile_lock = asyncio.Lock()
        self._pod_streams: PodStreams | None = None

    # -- start-up --------------------------------------------------------------------------

    async def open(self) -> None:
        # In a thread: exec plugins and oidc refreshes block, and other components start too.
        conn = await asyncio.to_thread(load_connection, self.kubeconfig, self.context_name)
        for warning in conn.warnings:
            self.log.warning("%s", warning)
        tuning = self.tuning
        self.client = ApiClient(
            conn, connect_timeout=tuning.connect_timeout, request_timeout=tuning.request_timeout
        )
        where = f"{conn.server} ({conn.origin})"
        try:
            kube_system = await self.client.get_retrying("/api/v1/namespaces/kube-system")
        except ApiError as exc:
            if exc.code == 0:
                raise StartupError(
                    f"cannot reach the Kubernetes API server at {where}: {exc.message}"
                ) from None
            if exc.code == 401:
                raise StartupError(
                    f"the API server at {where} rejected the credentials (401 Unauthorized)"
                ) from None
            if exc.code not in (403, 404):
                raise StartupError(f"the API server at {where} answered {exc}") from None
            self.log.warning("cannot read namespace kube-system (%s): cluster id left empty", exc)
            kube_system = {}
        meta = kube_system.get("metadata") if isinstance(kube_system, dict) else None
        self.cluster_id = str(meta.get("uid") or "") if isinstance(meta, dict) else ""
        try:
            self.discovery = await discover(self.client)
        except ApiError as exc:
            raise StartupError(f"API discovery failed at {where}: {exc}") from None
        self._check_names()
        self.defaults, skipped = default_set(self.discovery)
        for note in skipped:
            self.log.info("not watching %s: not served by this cluster", note)
        if self.use_meshsync_cr:
            cr_api = self.discovery.find(_CR_NAME)
            if cr_api is not None:
                try:
                    self.cr_config, note = await read_meshsync_cr(self.client, cr_api.version)
                except ApiError as exc:
                    raise StartupError(f"cannot read the MeshSync custom resource: {exc}") from None
                if self.cr_config is not None:
                    self.log.info("MeshSync custom resource: %s", self.cr_config.describe())
                    self._warn_unknown(self.cr_config)
                else:
                    self.log.info("MeshSync custom resource %s", note)
        self.log.info("connected to %s, cluster id %s", where, self.cluster_id or "(unknown)")

    def _check_names(self) -> None:
        assert self.discovery is not None
        for name in [*self.includes, *self.excludes]:
            if self.discovery.find(name) is None and not name.qualified:
                raise ConfigError(
                    f"unknown resource {str(name)!r}: the API server serves no resource by that "
                    "name (use a plural like pods, or plural.version.group like "
                    "deployments.v1.apps)"
                )
        for name in self.includes:
            if self.discovery.find(name) is None:
                self.log.warning(
                    "resource %s is not served (yet); it will be watched if a CRD defines it",
                    name,
                )

    # -- run -------------------------------------------------------------------------------

    async def run(self, ctx: SourceContext) -> None:
        assert self.client is not None and self.discovery is not None
        self._ctx = ctx
        # What an earlier run published: the first lists then emit only the difference.
        records = await ctx.published_state(partition_of(self.cluster_id))
        if records:
            self._parked = self._park_published(records)
        reconciler = asyncio.create_task(self._reconcile_loop(), name="k8s:reconcile")
        election = (
            asyncio.create_task(
                self.leadership.elector_for(self.client, self._became_leader, self.log).run(),
                name="k8s:leader-election",
            )
            if self.leadership is not None
            else None
        )
        drift_checks = (
            asyncio.create_task(self._drift_check_loop(self.tuning.reconcile_interval))
            if self.tuning.reconcile_interval > 0
            else None
        )
        try:
            crd_api = self.discovery.find(_CRD_NAME) if self.watch_crds else None
            if crd_api is not None:
                listed = asyncio.Event()
                self._crd_watcher = ResourceWatcher(
                    self.client,
                    crd_api,
                    self.crds.handle,
                    tuning=self.tuning,
                    on_listed=lambda _w, _ok: listed.set(),
                    log=self.log,
                    metrics=self.metrics,  # its 401/403/410s count like any resource's
                )
                self._crd_watcher.start()
                # Built-in resources need not wait for the CRD list (which can be many MB).
                await self._reconcile()
                await listed.wait()
            await self._reconcile()
            self._setup_done = True
            self._check_synced()
            await asyncio.Event().wait()
        finally:
            reconciler.cancel()
            if election is not None:
                election.cancel()  # releases the Lease: a standby takes over at its next try
                await asyncio.gather(election, return_exceptions=True)
            if drift_checks is not None:
                drift_checks.cancel()
            watchers = [w for ws in self.watchers.values() for w in ws]
            watchers += [w for w in (self._crd_watcher, self._cr_watcher) if w is not None]
            for watcher in watchers:
                if watcher.task is not None:
                    watcher.task.cancel()
            await asyncio.gather(
                reconciler, *(w.task for w in watchers if w.task), return_exceptions=True
            )

    async def _drift_check_loop(self, period: float) -> None:
        """Ask one watcher after the other for a drift check, spread evenly over ``period`` so
        that the API server sees one re-list at a time, never a burst of all of them."""
        turn = 0
        while True:
            count = sum(len(ws) for ws in self.watchers.values())
            await asyncio.sleep(period / max(1, count))
            watchers = [w for ws in self.watchers.values() for w in ws]
            if watchers and self._synced:
                watchers[turn % len(watchers)].request_drift_check()
                turn += 1

    async def _emit_if_leading(self, event: Event) -> None:
        """With --leader-elect: a standby tracks every change and emits none, but remembers
        the deletions (a take-over without a published index emits them: the consumer may
        hold those objects from the old leader, and a re-list no longer shows them)."""
        if self.leadership is not None and self.leadership.leading:
            assert self._ctx is not None
            await self._ctx.emit(event)
        elif event.type is EventType.DELETED:
            unheard = self._unheard_deletes
            unheard[event.uid] = event
            if len(unheard) > MAX_UNHEARD_DELETES:
                del unheard[next(iter(unheard))]  # the oldest: bounded memory on a long standby

    @property
    def role(self) -> str:
        """``leader`` or ``standby (...)`` with --leader-elect, else nothing to say."""
        leadership = self.leadership
        if leadership is None:
            return ""
        lease = f"lease {leadership.namespace}/{leadership.lease}"
        if leadership.leading:
            return f"leader ({lease})"
        holder = leadership.elector.observed_holder if leadership.elector is not None else ""
        held = f", held by {holder}" if holder else ""
        return f"standby (not publishing; {lease}{held})"

    def _became_leader(self) -> None:
        self._takeover = asyncio.create_task(self._take_over(), name="k8s:take-over")

    async def _take_over(self) -> None:
        """The Lease is ours: emit what differs from what the old leader published (read from
        the published index), or without an index announce everything tracked."""
        await self._synced_event.wait()
        assert self._ctx is not None
        records = await self._ctx.published_state(partition_of(self.cluster_id))
        unheard, self._unheard_deletes = self._unheard_deletes, {}
        if records is None:
            self.log.info(
                "leading: announcing the %d object(s) tracked and %d deleted while standing by",
                self.tracked, len(unheard),
            )  # fmt: skip
            for event in unheard.values():
                await self._ctx.emit(event)
            await self.resync()
            return
        self.log.info(
            "leading: emitting what changed since the %d object(s) of the published index",
            len(records),
        )
        parked = self._park_published(records)
        waiters = []
        for key, watchers in self.watchers.items():
            buckets = parked.pop(key, {})
            waiters += [w.request_diff(buckets.get(w.namespace, {})) for w in watchers]
        self._parked.update(parked)  # resources not watched now: what was published of them
        if waiters:
            _done, pending = await asyncio.wait(waiters, timeout=RESYNC_TIMEOUT)
            if pending:
                self.log.warning(
                    "take-over: %d resource(s) not re-listed within %gs; they will catch up",
                    len(pending), RESYNC_TIMEOUT,
                )  # fmt: skip
        await self._forget_unserved()

    def _park_published(
        self, records: dict[str, IndexRecord]
    ) -> dict[Key, dict[str | None, dict[str, str]]]:
        """The published index as watcher states by resource and namespace (see ``_parked``)."""
        per_namespace = 0 < len(self.namespaces) <= MAX_NAMESPACE_WATCHES
        allowed = frozenset(self.namespaces)
        parked: dict[Key, dict[str | None, dict[str, str]]] = {}
        for uid, record in records.items():
            namespace = record.namespace
            if allowed and namespace and namespace not in allowed:
                continue  # outside --namespaces: not this run's to announce or delete
            plural, version, group = [*record.resource.split(".", 2), "", ""][:3]
            key = (group, plural)
            if key not in self._restored:
                self._restored[key] = Resource(group, version, plural, record.kind)
            bucket = namespace if per_namespace and namespace else None
            states = parked.setdefault(key, {})
            states.setdefault(bucket, {})[uid] = (
                f"{record.resource_version}\0{namespace}\0{record.name}"
            )
        return parked

    async def _forget_unserved(self) -> None:
        """DELETED for published objects whose resource the server no longer serves at all
        (their CRD was deleted while no MeshSync ran); resources merely not watched keep theirs."""
        served = {api.key for api in self.catalog()}
        emit = self._ctx.emit if self.leadership is None else self._emit_if_leading  # type: ignore[union-attr]
        for key in [k for k in self._parked if k in self._restored and k not in served]:
            resource = self._restored[key]
            gone = self._parked.pop(key)
            count = sum(map(len, gone.values()))
            self.log.info("%s is no longer served: %d published object(s) DELETED", resource, count)
            for state in gone.values():
                for uid, packed in state.items():
                    rv, namespace, name = packed.split("\0", 2)
                    metadata: dict[str, Any] = {"name": name, "uid": uid, "resourceVersion": rv}
                    if namespace:
                        metadata["namespace"] = namespace
                    obj = {"apiVersion": resource.api_version, "kind": resource.kind,
                           "metadata": metadata}  # fmt: skip
                    await emit(Event(EventType.DELETED, obj, resource, self.name, self.cluster_id))

    def _request_reconcile(self) -> None:
        self._dirty.set()

    async def _reconcile_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            if self._setup_done:
                await self._reconcile()

    def _on_listed(self, watcher: ResourceWatcher, ok: bool) -> None:
        self._pending.discard(watcher)
        self._check_synced()

    def _check_synced(self) -> None:
        if self._setup_done and not self._pending and not self._synced:
            self._synced = True
            if any(key in self._restored for key in self._parked):
                # DELETEs of no longer served resources belong to the initial sync: first them
                self._finishing = asyncio.create_task(self._finish_sync_after_unserved())
            else:
                self._finish_sync()

    async def _finish_sync_after_unserved(self) -> None:
        await self._forget_unserved()
        self._finish_sync()

    def _finish_sync(self) -> None:
        self.log.info(
            "initial sync complete: %d resource(s), %d object(s)",
            len(self.watchers),
            sum(len(w.state) for ws in self.watchers.values() for w in ws),
        )
        assert self._ctx is not None
        self._synced_event.set()
        self._ctx.initial_sync_complete()

    # -- what to watch ---------------------------------------------------------------------

    def catalog(self) -> list[ApiResource]:
        """Every watchable resource now: discovery's static ones plus current CRDs'."""
        assert self.discovery is not None
        if self._crd_watcher is None or not self._crd_watcher.listed:
            return list(self.discovery.resources)
        owned = self.crds.ever
        static = [r for r in self.discovery.resources if r.key not in owned]
        return static + self.crds.resources

    def desired(self) -> Wanted:
        """The wanted watch set now (see :mod:`meshsync_k8s.selection`)."""
        assert self.discovery is not None
        crd_watcher = self._crd_watcher
        crds_watched = crd_watcher is not None
        return selection.desired(
            self.choices,
            catalog=self.catalog(),
            preferred=self.discovery.preferred,
            defaults=self.defaults,
            crd_resources=self.crds.resources if crds_watched else None,
            custom_resource=self.cr_config,
            crds_pending=crd_watcher is not None and not crd_watcher.listed,
        )

    async def _reconcile(self) -> None:
        async with self._reconcile_lock:
            await self._reconcile_cr_watcher()
            desired = self.desired()
            crd_keys = self.crds.keys
            for key in [k for k in self.watchers if k not in desired]:
                gone = key in self.crds.ever and key not in crd_keys
                parked: dict[str | None, dict[str, str]] = {}
                for watcher in self.watchers.pop(key):
                    self._pending.discard(watcher)
                    await watcher.stop(emit_deletes=gone)
                    if watcher.state:  # emptied when the CRD is deleted (DELETED emitted)
                        parked[watcher.namespace] = watcher.state
                if parked:
                    self._parked[key] = parked
                self.log.info("stopped watching %s%s", key[1], " (CRD deleted)" if gone else "")
            for key, (api, events) in desired.items():
                current = self.watchers.get(key)
                if current and current[0].api == api:
                    for watcher in current:
                        watcher.event_types = events
                    continue
                states = self._parked.pop(key, {})
                if current:  # served version changed: keep what was emitted, re-list as a diff
                    for watcher in current:
                        self._pending.discard(watcher)
                        await watcher.stop()
                        states[watcher.namespace] = watcher.state
                self.watchers[key] = [
                    self._start_watcher(api, events, ns, states.get(ns))
                    for ns in self._watch_namespaces(api)
                ]
            self._check_synced()

    def _watch_namespaces(self, api: ApiResource) -> list[str | None]:
        if api.namespaced and 0 < len(self.namespaces) <= MAX_NAMESPACE_WATCHES:
            return list(self.namespaces)
        return [None]

    def _start_watcher(
        self,
        api: ApiResource,
        events: frozenset[EventType],
        namespace: str | None,
        state: dict[str, str] | None,
    ) -> ResourceWatcher:
        assert self.client is not None and self._ctx is not None
        watcher = ResourceWatcher(
            self.client,
            api,
            # straight to the engine (no wrapper coroutine per event) unless a standby must not
            self._ctx.emit if self.leadership is None else self._emit_if_leading,
            namespace=namespace,
            cluster_id=self.cluster_id,
            tuning=self.tuning,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            events=events,
            on_listed=self._on_listed,
            log=self.log,
            source_name=self.name,
            state=state,
            namespace_filter=self.namespaces if namespace is None else None,
            metrics=self.metrics,
        )
        if not self._synced:
            self._pending.add(watcher)
        watcher.start()
        self.log.debug("watching %s", watcher.label)
        return watcher

    # -- the MeshSync custom resource ------------------------------------------------------

    async def _reconcile_cr_watcher(self) -> None:
        if not self.use_meshsync_cr or self.client is None:
            return
        cr_api = resolve(_CR_NAME, self.catalog())
        running = self._cr_watcher
        if running is not None and (cr_api is None or running.api != cr_api):
            self._cr_watcher = None
            await running.stop()
            if cr_api is None and self.cr_config is not None:
                self.log.warning("MeshSync custom resource definition removed: no restriction")
                self.cr_config = None
        if cr_api is not None and self._cr_watcher is None:
            self._cr_watcher = ResourceWatcher(
                self.client,
                cr_api,
                self._on_cr_event,
                namespace=meshsync_cr.NAMESPACE,
                tuning=self.tuning,
                log=self.log,
                metrics=self.metrics,
            )
            self._cr_watcher.start()

    def _warn_unknown(self, config: MeshSyncConfig) -> None:
        names = [name for name, _ in config.whitelist] + list(config.blacklist)
        catalog = self.catalog()
        unknown = [str(name) for name in names if resolve(name, catalog) is None]
        if unknown:
            self.log.warning(
                "MeshSync custom resource names resource(s) this cluster does not serve (yet): %s",
                ", ".join(unknown),
            )

    async def _on_cr_event(self, event: Event) -> None:
        if event.name != meshsync_cr.NAME:
            return
        new: MeshSyncConfig | None
        if event.type is EventType.DELETED:
            new = None
        else:
            try:
                new = parse_meshsync_cr(event.object)
            except ConfigError as exc:
                self.log.warning("ignoring the changed MeshSync custom resource: %s", exc)
                return
        if new != self.cr_config:
            self.cr_config = new
            if new is not None:
                self._warn_unknown(new)
            self.log.info(
                "MeshSync custom resource %s: %s",
                "deleted" if new is None else "changed",
                "no restriction" if new is None else new.describe(),
            )
            self._request_reconcile()

    # -- sinks' requests -------------------------------------------------------------------

    async def resync(self) -> None:
        """Re-list every watched resource and re-emit every object (Go's resync-discovery).

        Objects deleted meanwhile are emitted as DELETED (Go loses those).
        """
        waiters = [w.request_resync() for ws in self.watchers.values() for w in ws]
        if waiters:
            # A resource that keeps failing must not hold the caller forever.
            _done, pending = await asyncio.wait(waiters, timeout=RESYNC_TIMEOUT)
            if pending:
                self.log.warning(
                    "resync: %d resource(s) not re-listed within %gs; they will catch up",
                    len(pending),
                    RESYNC_TIMEOUT,
                )

    def current_state(self) -> AsyncIterator[Event]:
        return self._current_state()

    async def _current_state(self) -> AsyncIterator[Event]:
        """A fresh paginated list of every watched resource: nothing is kept in memory."""
        assert self.client is not None
        for watchers in list(self.watchers.values()):
            for watcher in watchers:
                try:
                    pages = self.client.list_pages(
                        watcher.path, watcher.params, self.tuning.page_size
                    )
                    async with contextlib.aclosing(pages):
                        async for page in pages:
                            for raw in page.items or ():
                                ident = watcher.identify(raw)
                                if ident is not None:
                                    yield watcher.current_event(raw, ident)
                except ApiError as exc:
                    self.log.warning("current state: cannot list %s: %s", watcher.label, exc)

    def workload_streams(self) -> PodStreams | None:
        """Pod logs and exec through this source's API client (see pod_streams.py)."""
        if self.client is None:
            return None
        if self._pod_streams is None or self._pod_streams.client is not self.client:
            self._pod_streams = PodStreams(self.client)
        return self._pod_streams

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()

    # -- introspection (tests, metrics) ----------------------------------------------------

    @property
    def tracked(self) -> int:
        """Objects currently tracked (emitted and not deleted)."""
        return sum(len(w.state) for ws in self.watchers.values() for w in ws)

    def watched(self) -> list[str]:
        return sorted(str(ws[0].api) for ws in self.watchers.values())

    def watch_counts(self) -> dict[str, Any]:
        """This source's list/watch counters, summed over its watchers: resources watched,
        objects tracked, lists, watch requests, malformed objects skipped (not the engine's
        ``EngineStats``)."""
        watchers = [w for ws in self.watchers.values() for w in ws]
        return {
            "resources": len(self.watchers),
            "objects": self.tracked,
            "lists": sum(w.lists for w in watchers),
            "watches": sum(w.watches for w in watchers),
            "malformed": sum(w.malformed for w in watchers),
        }
