"""The HTTP endpoint Kubernetes probes and Prometheus scrape: /healthz, /readyz, /metrics.

Port 11000 by default, like Go MeshSync. Unlike Go, ``/readyz`` means something in every mode:
200 once every source has finished its initial sync and every sink says it is ready (NATS:
connected; file: can write); ``/healthz`` is 503 when a sink has been stuck in one delivery for
longer than ``--stuck-after`` (and fails by timing out if the event loop itself is stuck).
"""

from __future__ import annotations

import errno
import logging

import click
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client import REGISTRY as PLUGIN_REGISTRY

from meshsync_core.engine import Engine
from meshsync_core.errors import StartupError
from meshsync_core.metrics import EngineCollector

log = logging.getLogger("meshsync.health")

DEFAULT_PORT = 11000


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
            default="0.0.0.0",
            show_default=True,
            envvar="MESHSYNC_HEALTH_HOST",
            help="Address the health and metrics endpoint listens on.",
        ),
        click.Option(
            ["--stuck-after"],
            type=float,
            default=300.0,
            show_default=True,
            help="Seconds one sink delivery may take before /healthz reports the process stuck.",
        ),
    ]


class HealthServer:
    """Serves one engine's health, readiness and metrics until stopped."""

    def __init__(self, engine: Engine, host: str, port: int, stuck_after: float = 300.0) -> None:
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
