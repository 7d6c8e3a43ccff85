"""The HTTP endpoint Kubernetes probes and Prometheus scrape: /healthz, /readyz, /metrics.

Port 11000 by default, like Go MeshSync. Unlike Go, ``/readyz`` means something in every mode:
200 once every source has finished its initial sync and every sink says it is ready (NATS:
connected; file: can write); ``/healthz`` is 503 when a sink has been stuck in one delivery for
longer than ``--stuck-after`` (and fails by timing out if the event loop itself is stuck).
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Iterator

import click
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client import REGISTRY as PLUGIN_REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from meshsync_core.engine import Engine
from meshsync_core.errors import StartupError

log = logging.getLogger("meshsync.health")

DEFAULT_PORT = 11000
DEFAULT_HOST = "0.0.0.0"
#: Seconds one ``deliver`` may take before ``/healthz`` reports the sink stuck.
DEFAULT_STUCK_AFTER = 300.0


def health_options() -> list[click.Option]:
    return [
        click.Option(
            ["--health-port"],
            type=click.IntRange(min=0, max=65535),
            default=DEFAULT_PORT,
            show_default=True,
            envvar="MESHSYNC_HEALTH_PORT",
            help="Port of /healthz, /readyz and /metrics; 0 disables the endpoint.",
        ),
        click.Option(
            ["--health-host"],
            default=DEFAULT_HOST,
            show_default=True,
            envvar="MESHSYNC_HEALTH_HOST",
            help="Address the health and metrics endpoint listens on.",
        ),
        click.Option(
            ["--stuck-after"],
            type=float,
            default=DEFAULT_STUCK_AFTER,
            show_default=True,
            help="Seconds one sink delivery may take before /healthz reports the process stuck.",
        ),
    ]


class HealthServer:
    """Serves one engine's health, readiness and metrics until stopped."""

    def __init__(
        self, engine: Engine, host: str, port: int, stuck_after: float = DEFAULT_STUCK_AFTER
    ) -> None:
        self.engine = engine
        self.host = host
        self.port = port
        self.stuck_after = stuck_after
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(EngineCollector(engine))
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            reason = "address in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise StartupError(
                f"cannot serve health and metrics on {self.host}:{self.port} ({reason}); "
                "choose another --health-port, or 0 to disable"
            ) from None
        sockets = getattr(site._server, "sockets", None) or []  # the real port when port=0
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info(
            "health and metrics on http://%s:%d (/healthz /readyz /metrics)", self.host, self.port
        )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def healthz(self, request: web.Request) -> web.Response:
        stuck = self.engine.stuck_sinks(self.stuck_after)
        if stuck:
            return web.Response(status=503, text=f"stuck: sink(s) {', '.join(stuck)}\n")
        return web.Response(text="ok\n")

    async def readyz(self, request: web.Request) -> web.Response:
        if self.engine.ready:
            # A standby is ready (it takes over without a start-up) but says it is not publishing.
            roles = [f"{s.name}: {s.role}" for s in self.engine.sources if s.role]
            return web.Response(text="ready\n" + "".join(f"{line}\n" for line in roles))
        return web.Response(status=503, text="\n".join(self.engine.not_ready_reasons()) + "\n")

    async def metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry) + generate_latest(PLUGIN_REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


class EngineCollector(Collector):
    """Reads an engine's counters at scrape time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        engine, stats = self.engine, self.engine.stats
        emitted = CounterMetricFamily(
            "meshsync_events_emitted", "Events produced by sources.", labels=["source", "type"]
        )
        for (source, event_type), count in stats.emitted.items():
            emitted.add_metric([source, event_type], count)
        yield emitted
        delivered = CounterMetricFamily(
            "meshsync_events_delivered", "Events delivered to sinks.", labels=["sink", "type"]
        )
        for (sink, event_type), count in stats.delivered_by_type.items():
            delivered.add_metric([sink, event_type], count)
        yield delivered
        dropped = CounterMetricFamily(
            "meshsync_events_dropped", "Events dropped by transforms.", labels=["transform"]
        )
        for transform, count in stats.dropped_by_transform.items():
            dropped.add_metric([transform], count)
        yield dropped
        errors = CounterMetricFamily(
            "meshsync_errors", "Errors raised by a plugin component.", labels=["component"]
        )
        for component, count in stats.errors.items():
            errors.add_metric([component], count)
        yield errors
        depth = GaugeMetricFamily(
            "meshsync_queue_depth", "Events waiting per sink.", labels=["sink"]
        )
        capacity = GaugeMetricFamily(
            "meshsync_queue_capacity", "Queue size per sink (--queue-size).", labels=["sink"]
        )
        for lane in engine.lanes:
            depth.add_metric([lane.name], lane.queue.qsize())
            capacity.add_metric([lane.name], lane.queue.maxsize)
        yield depth
        yield capacity
        yield GaugeMetricFamily(
            "meshsync_ready", "1 when every source has synced and every sink is ready.",
            value=1 if engine.ready else 0,
        )  # fmt: skip
        if stats.initial_sync_seconds is not None:
            yield GaugeMetricFamily(
                "meshsync_initial_sync_duration_seconds",
                "Time from start until every source had emitted its initial state.",
                value=stats.initial_sync_seconds,
            )
        if stats.last_event_at:
            yield GaugeMetricFamily(
                "meshsync_last_event_age_seconds",
                "Seconds since a source last emitted an event.",
                value=time.monotonic() - stats.last_event_at,
            )
        index = engine.index
        if index is not None:
            yield CounterMetricFamily(
                "meshsync_published_index_written",
                "Records written to the published index (puts and deletes).",
                value=index.written,
            )
            yield CounterMetricFamily(
                "meshsync_published_index_write_failures",
                "Batches the published index store refused (kept and written again).",
                value=index.write_failures,
            )
            yield GaugeMetricFamily(
                "meshsync_published_index_pending",
                "Records waiting to be written to the published index.",
                value=index.pending,
            )
        yield from self._component_metrics()

    def _component_metrics(self) -> Iterator[Metric]:
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        components = [*self.engine.sources, *self.engine.transforms]
        components += [lane.sink for lane in self.engine.lanes]
        for component in components:
            metrics = component.metrics
            computed = {key: function() for key, function in metrics.gauge_functions.items()}
            for kind, values in (
                ("counter", metrics.counters),
                ("gauge", metrics.gauges),
                ("gauge", computed),
            ):
                for (name, labels), value in values.items():
                    full = f"meshsync_{name}"
                    label_names = ["plugin", *(k for k, _ in labels)]
                    family = families.get(full)
                    if family is None:
                        help_text = metrics.help.get(name, f"{name} of {metrics.component}")
                        factory = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
                        family = factory(full.removesuffix("_total"), help_text, labels=label_names)
                        families[full] = family
                    family.add_metric([metrics.component, *(v for _, v in labels)], value)
        yield from families.values()
