"""Prometheus metrics for every run, without per-event cost.

The engine and the components count into plain dicts (:class:`ComponentMetrics`, ``EngineStats``);
a custom collector (``meshsync_core.health.EngineCollector``) turns them into Prometheus metric
families only when ``/metrics`` is scraped.
So every plugin gets events-in/out, errors and queue metrics without writing code, and a plugin
that wants its own (watch restarts, reconnects) calls ``self.metrics.inc(...)`` /
``self.metrics.set(...)`` — a dict update, cheap enough for the hot path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

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
