"""The compiled paths of meshsync-speedups against the Python paths they stand in for.

    python bench/bench_speedups.py [objects] [rounds]      (default: 20000 5)

Per object of the fake API server's bulk set (Pods and ConfigMaps with managedFields, as list
items: no apiVersion or kind), best of ``rounds``, in this process:

  floor          msgspec cutting the list page into per-item slices (what the source does first,
                 and what every row below starts from)
  identity       raw_json.identity: C (meshsync_speedups._object_meta) / msgspec (python_identity)
  envelope       the Meshery message: C (_meshery_message) / wire.python_event_envelope
  transcode      the YAML manifest: C (_yaml_writer.transcode) / decode + clean + dump_document

Each row checks that both paths give the same result before it is timed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import msgspec
from meshsync_file import manifest, yaml_writer
from meshsync_k8s import raw_json
from meshsync_nats import wire
from meshsync_testkit.seed import bulk_objects

from meshsync_core import Event, EventType, Resource

PODS = Resource(group="", version="v1", plural="pods", kind="Pod")


def page_items(count: int) -> tuple[bytes, list[Any]]:
    """A list page of ``count`` bulk objects with the uid and resourceVersion a server sets."""
    objects = list(bulk_objects(count))
    for number, obj in enumerate(objects):
        obj.pop("apiVersion", None)
        obj.pop("kind", None)
        obj["metadata"].update(uid=f"5b1c9e2a-{number:08d}", resourceVersion=str(1000 + number))
    body = msgspec.json.encode({"metadata": {"resourceVersion": "1"}, "items": objects})
    return body, list(raw_json.decode_page(body).items or ())


def best_us(run: Callable[[], object], count: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best / count * 1e6


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    body, items = page_items(count)

    def event(raw: Any) -> Event:
        def decode(data: Any) -> dict[str, Any]:
            obj: dict[str, Any] = raw_json.load(data)
            obj["apiVersion"], obj["kind"] = "v1", "Pod"
            return obj

        return Event(EventType.ADDED, None, PODS, "k8s", "cluster", raw=raw, decode=decode,
                     identity=raw_json.python_identity(raw))  # fmt: skip

    events = [event(raw) for raw in items]
    c_identity, c_envelope, c_transcode = (
        raw_json.c_identity,
        wire.c_envelope,
        yaml_writer.transcode,
    )
    if c_identity is None or c_envelope is None or c_transcode is None:
        sys.exit("meshsync-speedups is not built (pure-Python install): nothing to compare")

    def dict_path(ev: Event) -> bytes:  # what the sink does without the C path: decode first
        obj = raw_json.load(ev.raw_json)
        obj["apiVersion"], obj["kind"] = "v1", "Pod"
        return yaml_writer.dump_document(manifest.clean(obj, PODS)).encode()

    def c_message(ev: Event) -> bytes | None:
        return c_envelope(ev.raw_json, "ADDED", ev.cluster_id, "Pod", "v1")

    rows: list[tuple[str, Callable[[Any], Any], Callable[[Any], Any], list[Any]]] = [
        ("identity", c_identity, raw_json.python_identity, items),
        ("envelope", c_message, wire.python_event_envelope, events),
        ("transcode", lambda ev: c_transcode(ev.raw_json, "v1", "Pod"), dict_path, events),
    ]
    print(f"meshsync-speedups against the Python paths, {count:,} bulk objects "
          f"({len(body) / count:,.0f} bytes of JSON each), best of {rounds}")  # fmt: skip
    floor = best_us(lambda: raw_json.decode_page(body), count, rounds)
    print(f"{'path':<12} {'C us/obj':>9} {'Python us/obj':>14} {'speed-up':>9}")
    print(f"{'floor':<12} {floor:>9.2f} {'':>14} {'':>9}   (msgspec page split)")
    for name, fast, slow, inputs in rows:
        for value in inputs[:500]:
            assert fast(value) == slow(value), f"{name}: the paths differ"
        c_us = best_us(lambda f=fast, xs=inputs: [f(x) for x in xs], count, rounds)
        py_us = best_us(lambda s=slow, xs=inputs: [s(x) for x in xs], count, rounds)
        print(f"{name:<12} {c_us:>9.2f} {py_us:>14.2f} {py_us / c_us:>8.1f}x")


if __name__ == "__main__":
    main()
