"""Benchmark of the file sink: YAML writing alone and the whole sink, against raw floors.

    python bench/bench_file_sink.py               # 100,000 objects
    python bench/bench_file_sink.py --objects 20000 --rows writer,orjson

Objects are generated here (the fake API server is not used yet): realistic Pods (with status,
owner references and managedFields) and ConfigMaps (with managedFields), half and half. Each row
runs in its own process so that its peak RSS is its own; "extra RSS/object" is the peak minus
the RSS once the objects were built, divided by the object count.

Rows:
  orjson      orjson.dumps of each cleaned manifest: the raw floor of serialising in C
  py-floor    a bare pure-Python walk over the same objects that does no YAML work at all: the
              interpreter's floor for any pure-Python serializer
  writer      manifest cleaning + meshsync_file.yaml_writer + UTF-8 encode: "YAML writing alone"
              (with the compiled layout engine when it is built)
  writer-python  the same with MESHSYNC_YAML_PURE_PYTHON=1 (the pure-Python writer)
  writer-pods / writer-configmaps   the same per kind
  pyyaml-c    yaml.dump(..., Dumper=CSafeDumper) on a sample (PyYAML's C emitter), extrapolated
  sink        the real Engine: MemorySource -> secret redaction -> FileSink --once, snapshot and
              extended log written to a temporary directory (end to end minus the API server)
  sink-nolog  the same with --no-extended-log
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROWS = [
    "orjson",
    "py-floor",
    "writer",
    "writer-pods",
    "writer-configmaps",
    "pyyaml-c",
    "sink",
    "sink-nolog",
]
PYYAML_SAMPLE = 5_000
#: "generated" (this script's Pods/ConfigMaps) or "fake" (the fake API server's bulk objects).
OBJECTS_FROM = "generated"


def managed_fields(api_version: str) -> list[dict[str, Any]]:
    return [
        {
            "manager": "kube-controller-manager",
            "operation": "Update",
            "apiVersion": api_version,
            "time": "2026-01-01T00:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {
                    "f:generateName": {},
                    "f:labels": {".": {}, "f:app": {}, "f:pod-template-hash": {}},
                    "f:ownerReferences": {".": {}, 'k:{"uid":"aaaa"}': {}},
                },
                "f:spec": {
                    "f:containers": {
                        'k:{"name":"web"}': {
                            ".": {},
                            "f:image": {},
                            "f:imagePullPolicy": {},
                            "f:name": {},
                            "f:ports": {".": {}, 'k:{"containerPort":80,"protocol":"TCP"}': {}},
                            "f:resources": {".": {}, "f:limits": {}, "f:requests": {}},
                        }
                    },
                    "f:dnsPolicy": {},
                    "f:restartPolicy": {},
                },
            },
        },
        {
            "manager": "kubelet",
            "operation": "Update",
            "apiVersion": api_version,
            "time": "2026-01-01T00:00:05Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:status": {
                    "f:conditions": {'k:{"type":"Ready"}': {".": {}, "f:status": {}}},
                    "f:containerStatuses": {},
                    "f:hostIP": {},
                    "f:phase": {},
                    "f:podIP": {},
                    "f:podIPs": {".": {}, 'k:{"ip":"10.244.0.7"}': {".": {}, "f:ip": {}}},
                    "f:startTime": {},
                }
            },
            "subresource": "status",
        },
    ]


def pod(i: int) -> dict[str, Any]:
    ns = f"team-{i % 50}"
    rs = f"web-{i % 97}-7d4b9c8f6d"
    ip = f"10.244.{i // 250 % 250}.{i % 250}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{rs}-{i:06x}",
            "generateName": f"{rs}-",
            "namespace": ns,
            "uid": f"6f1c2a9e-{i % 65536:04x}-4000-8000-{i:012d}",
            "resourceVersion": str(100_000 + i),
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {
                "app": f"web-{i % 97}",
                "pod-template-hash": "7d4b9c8f6d",
                "app.kubernetes.io/name": "web",
                "app.kubernetes.io/part-of": "shop",
            },
            "annotations": {
                "kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z",
                "prometheus.io/scrape": "true",
                "prometheus.io/port": "9090",
            },
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": rs,
                    "uid": f"aaaaaaaa-0000-4000-8000-{i % 97:012d}",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            "managedFields": managed_fields("v1"),
        },
        "spec": {
            "volumes": [
                {
                    "name": "kube-api-access-abcde",
                    "projected": {
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {
                                "configMap": {
                                    "name": "kube-root-ca.crt",
                                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                }
                            },
                        ],
                        "defaultMode": 420,
                    },
                }
            ],
            "containers": [
                {
                    "name": "web",
                    "image": "ghcr.io/example/web:1.27.1",
                    "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                    "env": [
                        {"name": "MODE", "value": "production"},
                        {"name": "WORKERS", "value": str(i % 8 + 1)},
                    ],
                    "resources": {
                        "limits": {"cpu": "500m", "memory": "256Mi"},
                        "requests": {"cpu": "100m", "memory": "128Mi"},
                    },
                    "volumeMounts": [
                        {
                            "name": "kube-api-access-abcde",
                            "readOnly": True,
                            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                        }
                    ],
                    "livenessProbe": {
                        "httpGet": {"path": "/healthz", "port": 80, "scheme": "HTTP"},
                        "periodSeconds": 10,
                        "timeoutSeconds": 1,
                        "successThreshold": 1,
                        "failureThreshold": 3,
                    },
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "imagePullPolicy": "IfNotPresent",
                }
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "nodeName": f"node-{i % 20}",
            "securityContext": {},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                }
            ],
            "priority": 0,
            "enableServiceLinks": True,
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {
                    "type": kind,
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": "2026-01-01T00:00:05Z",
                }
                for kind in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "hostIP": f"172.18.0.{i % 20 + 2}",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": "2026-01-01T00:00:00Z",
            "containerStatuses": [
                {
                    "name": "web",
                    "state": {"running": {"startedAt": "2026-01-01T00:00:04Z"}},
                    "lastState": {},
                    "ready": True,
                    "restartCount": i % 3,
                    "image": "ghcr.io/example/web:1.27.1",
                    "imageID": "ghcr.io/example/web@sha256:" + "0123456789abcdef" * 4,
                    "containerID": f"containerd://{i:064x}",
                    "started": True,
                }
            ],
            "qosClass": "Burstable",
        },
    }


def configmap(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"settings-{i}",
            "namespace": f"team-{i % 50}",
            "uid": f"7e2d3b0f-{i % 65536:04x}-4000-8000-{i:012d}",
            "resourceVersion": str(200_000 + i),
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"app": f"web-{i % 97}", "config": "yes"},
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": (
                    '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"settings-'
                    + str(i)
                    + '"}}\n'
                )
            },
            "managedFields": managed_fields("v1"),
        },
        "data": {
            "LOG_LEVEL": "info",
            "FEATURE_FLAGS": "a,b,c",
            "TIMEOUT": "30",
            "app.properties": (
                f"server.port=8080\nserver.name=settings-{i}\ncache.size=512\n"
                "# comment line\nretry.backoff=1.5\n"
            ),
        },
    }


def build(count: int, kinds: str = "mixed") -> list[tuple[str, dict[str, Any]]]:
    if kinds == "fake" or (kinds == "mixed" and OBJECTS_FROM == "fake"):
        # The fake API server's bulk objects (what the end-to-end benchmark will list).
        from meshsync_testkit.seed import bulk_objects

        return [("pod" if o.get("kind") == "Pod" else "cm", o) for o in bulk_objects(count)]
    makers = {"pods": [pod], "configmaps": [configmap], "mixed": [pod, configmap]}[kinds]
    return [(makers[i % len(makers)].__name__, makers[i % len(makers)](i)) for i in range(count)]


def rss_now() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _walk(value: Any, out: list[str]) -> None:
    """Visit every key and value once, appending one short string per scalar."""
    append = out.append
    if type(value) is dict:
        for key, item in value.items():
            kind = type(item)
            if kind is dict or kind is list:
                append(key)
                _walk(item, out)
            else:
                append(f"{key} x\n")
    elif type(value) is list:
        for item in value:
            if type(item) is dict or type(item) is list:
                _walk(item, out)
            else:
                append("- x\n")


def run_row(row: str, count: int, repeat: int = 1) -> dict[str, Any]:
    """Run one row in this process; return its measurements."""
    if row == "writer-python":
        os.environ["MESHSYNC_YAML_PURE_PYTHON"] = "1"  # before yaml_writer is imported
    import orjson
    import yaml
    from meshsync_file.manifest import clean
    from meshsync_file.yaml_writer import IMPLEMENTATION, dump_document

    from meshsync_core import EventType, Options, Resource

    kinds = {"writer-pods": "pods", "writer-configmaps": "configmaps"}.get(row, "mixed")
    pods = Resource("", "v1", "pods", "Pod")
    cms = Resource("", "v1", "configmaps", "ConfigMap")
    objects = build(count, kinds)
    # The objects stand for what the source decodes and drops right after: keep the collector
    # from rescanning them (a source does not hold 100,000 live dicts).
    gc.collect()
    gc.freeze()
    baseline = rss_now()
    out_bytes = 0
    extra: dict[str, Any] = {}
    start = time.perf_counter()
    if row == "orjson":
        for name, obj in objects:
            out_bytes += len(orjson.dumps(clean(obj, pods if name == "pod" else cms)))
        done = count
    elif row == "py-floor":
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            for name, obj in objects:
                parts: list[str] = []
                _walk(clean(obj, pods if name == "pod" else cms), parts)
                "".join(parts)
            best = min(best, time.perf_counter() - start)
        out_bytes = 0  # it writes nothing
        done = count
        elapsed = best
    elif row.startswith("writer"):
        best = float("inf")
        for _ in range(repeat):  # best of N: the machine is shared, take the least disturbed pass
            out_bytes = 0
            start = time.perf_counter()
            for name, obj in objects:
                out_bytes += len(dump_document(clean(obj, pods if name == "pod" else cms)).encode())
            best = min(best, time.perf_counter() - start)
        done = count
        elapsed = best
    elif row == "pyyaml-c":
        sample = objects[:PYYAML_SAMPLE]
        for name, obj in sample:
            text = yaml.dump(
                clean(obj, pods if name == "pod" else cms),
                Dumper=yaml.CSafeDumper,
                sort_keys=False,
                allow_unicode=True,
            )
            out_bytes += len(text.encode())
        done = len(sample)
    elif row.startswith("sink"):
        from meshsync_file.sink import FileSink
        from meshsync_k8s.redaction import SecretRedaction

        from meshsync_core import Engine, Event
        from meshsync_core.testing import MemorySource

        events = [
            Event(EventType.ADDED, obj, pods if name == "pod" else cms, "bench", "cluster")
            for name, obj in objects
        ]
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / "snapshot.yaml"
            options = Options(
                output_file=str(target),
                file_progress="off",
                once=True,
                extended_log=row == "sink",
            )
            sink = FileSink(options)
            engine = Engine([MemorySource(events)], [sink], [SecretRedaction(options)], once=True)
            result = asyncio.run(engine.run())
            assert result.exit_code == 0, result.reason
            elapsed_total = time.perf_counter() - start
            out_bytes = target.stat().st_size
            if row == "sink":
                out_bytes += (Path(tmp) / "snapshot-extended.yaml").stat().st_size
            extra["store_bytes_per_object"] = round(sink.store.nbytes() / count)
            extra["snapshot_mb"] = round(target.stat().st_size / 1e6, 1)
        done = count
        elapsed = elapsed_total
    else:
        raise SystemExit(f"unknown row {row}")
    if not row.startswith(("sink", "writer", "py-floor")):
        elapsed = time.perf_counter() - start
    peak = peak_rss()
    return {
        "row": row,
        "objects": done,
        "seconds": round(elapsed, 3),
        "objects_per_s": round(done / elapsed),
        "mb_per_s": round(out_bytes / elapsed / 1e6, 1),
        "bytes_per_object": round(out_bytes / done),
        "peak_rss_mb": round(peak / 1e6),
        "extra_rss_per_object": round(max(peak - baseline, 0) / count),
        "implementation": IMPLEMENTATION,
        **extra,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument(
        "--objects-from",
        choices=["generated", "fake"],
        default="generated",
        help="generated here, or meshsync_testkit.seed.bulk_objects",
    )
    parser.add_argument("--repeat", type=int, default=3, help="passes of the writer rows (best)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one row, print JSON
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    args = parser.parse_args()
    global OBJECTS_FROM
    OBJECTS_FROM = args.objects_from
    if args.one:
        print(json.dumps(run_row(args.one, args.objects, args.repeat)))
        return
    results = []
    for row in args.rows.split(","):
        done = subprocess.run(
            [
                *(sys.executable, __file__, "--one", row),
                *("--objects", str(args.objects), "--repeat", str(args.repeat)),
                *("--objects-from", args.objects_from),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            sys.exit(f"row {row} failed:\n{done.stderr}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        if args.json:
            print(done.stdout.strip().splitlines()[-1], flush=True)
    if args.json:
        return
    header = (
        f"{'row':<18} {'objects':>8} {'seconds':>8} {'objects/s':>10} {'MB/s':>7} "
        f"{'bytes/obj':>9} {'peak RSS MB':>11} {'extra RSS/obj':>13}"
    )
    print(
        f"{args.objects:,} objects ({args.objects_from}: half Pods, half ConfigMaps, "
        "with managedFields); "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['row']:<18} {r['objects']:>8} {r['seconds']:>8} {r['objects_per_s']:>10,} "
            f"{r['mb_per_s']:>7} {r['bytes_per_object']:>9,} {r['peak_rss_mb']:>11,} "
            f"{r['extra_rss_per_object']:>13,}"
        )
    print("YAML writer: " + ", ".join(f"{r['row']}={r['implementation']}" for r in results))
    for r in results:
        if "store_bytes_per_object" in r:
            print(
                f"{r['row']}: snapshot {r['snapshot_mb']} MB, the sink holds "
                f"{r['store_bytes_per_object']:,} bytes of YAML per live object"
            )


if __name__ == "__main__":
    main()
