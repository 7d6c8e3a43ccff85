"""Prometheus metrics for every run, without per-event cost.

The engine and the components count into plain dicts (:class:`ComponentMetrics`, ``EngineStats``);
a custom collector turns them into Prometheus metric families only when ``/metrics`` is scraped.
So every plugin gets events-in/out, errors and queue metrics without writing code, and a plugin
that wants its own (watch restarts, reconnects) calls ``self.metrics.inc(...)`` /
``self.metrics.set(...)`` — a dict update, cheap enough for the hot path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from meshsync_core.engine import Engine

MetricKind = Literal["counter", "gauge"]
Labels = tuple[tuple[str, str], ...]


class ComponentMetrics:
    """A component's own counters and gauges (``self.metrics``), exported on ``/metrics``.

    ``inc("sqlite_rows_written_total", 3)`` in the sink named ``sqlite`` is scraped as
    ``meshsync_sqlite_rows_written_total{plugin="sqlite"} 3.0``: the name gets a ``meshsync_``
    prefix and a ``plugin`` label holding the component's name, plus the labels you pass.
    Names follow Prometheus conventions: counters end in ``_total``, values use base units
    (seconds, bytes). Pass the same label names every time you use a metric name. Updating a
    value is a dict update, cheap enough for every event.
    """

    def __init__(self, component: str) -> None:
        self.component = component
        self.counters: dict[tuple[str, Labels], float] = {}
        self.gauges: dict[tuple[str, Labels], float] = {}
        self.gauge_functions: dict[tuple[str, Labels], Callable[[], float]] = {}
        self.help: dict[str, str] = {}

    def describe(self, name: str, help_text: str) -> None:
        """Set the ``# HELP`` text of a metric (default: ``"<name> of <component>"``)."""
        self.help[name] = help_text

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        """Add ``amount`` to a counter (created at 0), e.g. ``inc("retries_total", reason="x")``."""
        key = (name, tuple(sorted(labels.items())))
        self.counters[key] = self.counters.get(key, 0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        """Set a gauge to ``value``."""
        self.gauges[(name, tuple(sorted(labels.items())))] = value

    def set_function(self, name: str, function: Callable[[], float], **labels: str) -> None:
        """A gauge computed only when ``/metrics`` is scraped (e.g. objects tracked).

        ``function`` runs on the event loop at every scrape: keep it quick and free of I/O.
        """
        self.gauge_functions[(name, tuple(sorted(labels.items())))] = function

    def value(self, name: str, **labels: str) -> float:
        """Current value of a counter or gauge (0 if never touched): for tests and health."""
        key = (name, tuple(sorted(labels.items())))
        return self.counters.get(key, self.gauges.get(key, 0))


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
