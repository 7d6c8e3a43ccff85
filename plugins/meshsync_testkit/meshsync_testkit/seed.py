"""Objects to fill the fake server with: the namespaces every cluster has, a small realistic
demo cluster, and a generator of many realistic objects for benchmarks.

Uids here are derived from names (uuid5) so runs are reproducible; the kube-system uid is the
cluster id MeshSync reports, so it is a fixed constant.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from typing import Any

#: Fixed uids of the namespaces a fresh FakeApiServer holds (kube-system's is the cluster id).
DEFAULT_NAMESPACE_UID = "3b9a2f7e-0d1c-4c52-9a61-6f1d2f0c0001"
KUBE_SYSTEM_UID = "3b9a2f7e-0d1c-4c52-9a61-6f1d2f0c0002"
CLUSTER_CREATED = "2026-01-01T00:00:00Z"
_NS_UUID = uuid.UUID("8a6c4f52-38a4-4d4a-9d6e-3f7f1a2b3c4d")


def _uid(*parts: str) -> str:
    return str(uuid.uuid5(_NS_UUID, "/".join(parts)))


def _namespace(name: str, uid: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "uid": uid or _uid("ns", name),
            "creationTimestamp": CLUSTER_CREATED,
        },
    }


def base_namespaces() -> list[dict[str, Any]]:
    """``default`` and ``kube-system``, with stable uids; every fresh server holds these."""
    return [
        _namespace("default", DEFAULT_NAMESPACE_UID),
        _namespace("kube-system", KUBE_SYSTEM_UID),
    ]


def _meta(name: str, namespace: str | None = None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "uid": _uid(namespace or "", name, str(extra.get("labels", ""))),
        "creationTimestamp": CLUSTER_CREATED,
    }
    if namespace:
        meta["namespace"] = namespace
    meta.update(extra)
    return meta


def _crd(
    group: str, plural: str, kind: str, versions: list[tuple[str, bool]], scope: str = "Namespaced"
) -> dict[str, Any]:
    schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": _meta(f"{plural}.{group}"),
        "spec": {
            "group": group,
            "names": {
                "plural": plural,
                "singular": kind.lower(),
                "kind": kind,
                "listKind": f"{kind}List",
            },
            "scope": scope,
            "versions": [
                {"name": v, "served": True, "storage": storage, "schema": schema}
                for v, storage in versions
            ],
        },
    }


def _pod_spec(image: str, node: str, port: int) -> dict[str, Any]:
    return {
        "containers": [
            {
                "name": "app",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "ports": [{"containerPort": port, "protocol": "TCP", "name": "http"}],
                "env": [
                    {"name": "LOG_LEVEL", "value": "info"},
                    {
                        "name": "POD_NAME",
                        "valueFrom": {
                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}
                        },
                    },
                ],
                "resources": {
                    "requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"memory": "256Mi"},
                },
                "readinessProbe": {
                    "httpGet": {"path": "/healthz", "port": port, "scheme": "HTTP"},
                    "periodSeconds": 10,
                    "timeoutSeconds": 1,
                    "successThreshold": 1,
                    "failureThreshold": 3,
                },
                "volumeMounts": [
                    {
                        "name": "kube-api-access",
                        "readOnly": True,
                        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                    }
                ],
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
            }
        ],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default",
        "serviceAccount": "default",
        "nodeName": node,
        "securityContext": {},
        "schedulerName": "default-scheduler",
        "tolerations": [
            {
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
            {
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
        ],
        "priority": 0,
        "enableServiceLinks": True,
        "preemptionPolicy": "PreemptLowerPriority",
        "volumes": [
            {
                "name": "kube-api-access",
                "projected": {
                    "defaultMode": 420,
                    "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {
                            "configMap": {
                                "name": "kube-root-ca.crt",
                                "items": [{"key": "ca.crt", "path": "ca.crt"}],
                            }
                        },
                    ],
                },
            }
        ],
    }


def _pod_status(ip: str, image: str, started: str) -> dict[str, Any]:
    conditions = [
        {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": started}
        for t in (
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled",
        )
    ]
    return {
        "phase": "Running",
        "conditions": conditions,
        "hostIP": "10.0.0.11",
        "hostIPs": [{"ip": "10.0.0.11"}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": started,
        "containerStatuses": [
            {
                "name": "app",
                "state": {"running": {"startedAt": started}},
                "lastState": {},
                "ready": True,
                "restartCount": 0,
                "image": image,
                "imageID": f"{image.split(':')[0]}@sha256:" + "4f" * 32,
                "containerID": "containerd://" + "9e" * 32,
                "started": True,
            }
        ],
        "qosClass": "Burstable",
    }


def _managed_fields(owner_uid: str, started: str) -> list[dict[str, Any]]:
    return [
        {
            "manager": "kube-controller-manager",
            "operation": "Update",
            "apiVersion": "v1",
            "time": started,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {
                    "f:generateName": {},
                    "f:labels": {".": {}, "f:app": {}, "f:pod-template-hash": {}},
                    "f:ownerReferences": {".": {}, f'k:{{"uid":"{owner_uid}"}}': {}},
                },
                "f:spec": {
                    "f:containers": {
                        'k:{"name":"app"}': {
                            ".": {},
                            "f:env": {},
                            "f:image": {},
                            "f:imagePullPolicy": {},
                            "f:name": {},
                            "f:ports": {},
                            "f:resources": {},
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
            "apiVersion": "v1",
            "time": started,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:status": {
                    "f:conditions": {},
                    "f:containerStatuses": {},
                    "f:hostIP": {},
                    "f:phase": {},
                    "f:podIP": {},
                    "f:startTime": {},
                }
            },
            "subresource": "status",
        },
    ]


def _pod(
    name: str,
    namespace: str,
    app: str,
    owner: dict[str, Any],
    ip: str,
    image: str = "ghcr.io/example/web:1.4.2",
    node: str = "node-1",
    uid: str | None = None,
) -> dict[str, Any]:
    started = CLUSTER_CREATED
    template_hash = owner["name"].rsplit("-", 1)[-1]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "generateName": owner["name"] + "-",
            "namespace": namespace,
            "uid": uid or _uid(namespace, "pod", name),
            "creationTimestamp": started,
            "labels": {"app": app, "pod-template-hash": template_hash, "tier": "frontend"},
            "annotations": {
                "kubectl.kubernetes.io/restartedAt": started,
                "prometheus.io/scrape": "true",
                "prometheus.io/port": "8080",
            },
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": owner["name"],
                    "uid": owner["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            "managedFields": _managed_fields(owner["uid"], started),
        },
        "spec": _pod_spec(image, node, 8080),
        "status": _pod_status(ip, image, started),
    }


def demo_cluster() -> list[dict[str, Any]]:
    """A small, realistic cluster (namespaces, a Deployment with ReplicaSet and Pods, Services,
    ConfigMaps, a Secret, a Node, storage, and two CRDs with objects), in creation order."""
    ns = "shop"
    objs: list[dict[str, Any]] = [
        *base_namespaces(),
        _namespace("kube-public"),
        _namespace(ns),
    ]
    objs.append(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": _meta(
                "node-1",
                labels={
                    "kubernetes.io/hostname": "node-1",
                    "kubernetes.io/os": "linux",
                    "node-role.kubernetes.io/control-plane": "",
                },
            ),
            "spec": {"podCIDR": "10.244.0.0/24", "providerID": "kind://docker/fake/node-1"},
            "status": {
                "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                "allocatable": {"cpu": "4", "memory": "15Gi", "pods": "110"},
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "kubelet is posting ready status",
                        "lastHeartbeatTime": CLUSTER_CREATED,
                        "lastTransitionTime": CLUSTER_CREATED,
                    }
                ],
                "addresses": [
                    {"type": "InternalIP", "address": "10.0.0.11"},
                    {"type": "Hostname", "address": "node-1"},
                ],
                "nodeInfo": {
                    "machineID": "5f0c8a2e9d1b4c7a8e3f6d2b1a9c0e47",
                    "systemUUID": "5f0c8a2e-9d1b-4c7a-8e3f-6d2b1a9c0e47",
                    "bootID": "0d3e7c1a-52b4-4f6e-9a8d-2c1b0e9f7a63",
                    "kubeProxyVersion": "",
                    "kubeletVersion": "v1.34.0",
                    "containerRuntimeVersion": "containerd://2.1.0",
                    "osImage": "Debian GNU/Linux 12 (bookworm)",
                    "kernelVersion": "6.8.0",
                    "architecture": "amd64",
                    "operatingSystem": "linux",
                },
            },
        }
    )
    objs.append(
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": _meta(
                "standard",
                annotations={"storageclass.kubernetes.io/is-default-class": "true"},
            ),
            "provisioner": "rancher.io/local-path",
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer",
        }
    )
    pvc_uid = _uid(ns, "pvc", "data")
    objs.append(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": _meta("pvc-" + pvc_uid),
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": "standard",
                "hostPath": {"path": f"/var/local-path-provisioner/pvc-{pvc_uid}", "type": ""},
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "name": "data",
                    "namespace": ns,
                    "uid": pvc_uid,
                },
            },
            "status": {"phase": "Bound"},
        }
    )
    objs.append(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {**_meta("data", ns), "uid": pvc_uid},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
                "storageClassName": "standard",
                "volumeName": "pvc-" + pvc_uid,
                "volumeMode": "Filesystem",
            },
            "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}},
        }
    )
    deploy_uid = _uid(ns, "deployment", "web")
    rs_name = "web-7d9c6b8f5"
    rs_uid = _uid(ns, "replicaset", rs_name)
    labels = {"app": "web", "tier": "frontend"}
    template = {
        "metadata": {"labels": labels},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "ghcr.io/example/web:1.4.2",
                    "ports": [{"containerPort": 8080, "name": "http"}],
                }
            ]
        },
    }
    objs.append(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                **_meta("web", ns, labels=labels),
                "uid": deploy_uid,
                "annotations": {"deployment.kubernetes.io/revision": "1"},
            },
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": template,
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                },
            },
            "status": {"replicas": 3, "readyReplicas": 3, "availableReplicas": 3},
        }
    )
    objs.append(
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                **_meta(rs_name, ns, labels={**labels, "pod-template-hash": "7d9c6b8f5"}),
                "uid": rs_uid,
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": "web",
                        "uid": deploy_uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web", "pod-template-hash": "7d9c6b8f5"}},
                "template": template,
            },
            "status": {"replicas": 3, "readyReplicas": 3, "availableReplicas": 3},
        }
    )
    owner = {"name": rs_name, "uid": rs_uid}
    for i, suffix in enumerate(("x2k8p", "m4n7q", "z9c3w")):
        objs.append(_pod(f"{rs_name}-{suffix}", ns, "web", owner, f"10.244.0.{10 + i}"))
    objs.append(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta("kubernetes", "default", labels={"component": "apiserver"}),
            "spec": {
                "type": "ClusterIP",
                "clusterIP": "10.96.0.1",
                "clusterIPs": ["10.96.0.1"],
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
            },
        }
    )
    objs.append(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta("web", ns, labels=labels),
            "spec": {
                "type": "ClusterIP",
                "clusterIP": "10.96.12.34",
                "clusterIPs": ["10.96.12.34"],
                "selector": {"app": "web"},
                "ports": [
                    {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
                    {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443},
                ],
            },
        }
    )
    objs.append(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta("kube-root-ca.crt", "default"),
            "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\nMIIFAKE\n-----END CERTIFICATE-----\n"},
        }
    )
    objs.append(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta("web-config", ns, labels=labels),
            "data": {"LOG_LEVEL": "info", "FEATURE_CHECKOUT": "true"},
        }
    )
    objs.append(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _meta("web-db", ns, labels=labels),
            "type": "Opaque",
            "data": {
                "username": base64.b64encode(b"web-db-admin").decode(),
                "password": base64.b64encode(b"s3cr3t-passw0rd").decode(),
            },
        }
    )
    objs.append(_crd("example.com", "widgets", "Widget", [("v1alpha1", False), ("v1", True)]))
    for name, size in (("blue", "small"), ("red", "large")):
        objs.append(
            {
                "apiVersion": "example.com/v1",
                "kind": "Widget",
                "metadata": _meta(name, ns, labels={"color": name}),
                "spec": {"size": size, "replicas": 1},
            }
        )
    objs.append(_crd("meshery.io", "meshsyncs", "MeshSync", [("v1alpha1", True)]))
    return objs


def bulk_namespaces(namespaces: int = 10) -> list[dict[str, Any]]:
    """The namespaces :func:`bulk_objects` puts its objects in: ``bulk-0`` .. ``bulk-<n-1>``."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"bulk-{i}"}}
        for i in range(namespaces)
    ]


def bulk_objects(n: int, namespaces: int = 10) -> Iterator[dict[str, Any]]:
    """``n`` realistic objects (~3 KB each), alternately Pods and ConfigMaps, spread over
    ``bulk-0`` .. ``bulk-<namespaces-1>`` (the namespaces themselves are not included: they are
    :func:`bulk_namespaces`)."""
    image = "ghcr.io/example/worker:2.7.1"
    for i in range(n):
        ns = f"bulk-{i % namespaces}"
        if i % 2 == 0:
            rs = {"name": f"worker-{i // 200:04d}-5f6d7c8b9", "uid": _uid(ns, "rs", str(i // 200))}
            ip = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
            pod = _pod(f"worker-{i:07d}", ns, "worker", rs, ip, image=image, node=f"node-{i % 7}")
            del pod["metadata"]["uid"]
            yield pod
        else:
            yield {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": f"config-{i:07d}",
                    "namespace": ns,
                    "labels": {"app": "worker", "shard": str(i % 16), "team": "platform"},
                    "annotations": {
                        "meshery.io/owner": "bench",
                        "kubectl.kubernetes.io/last-applied-configuration": '{"apiVersion":"v1",'
                        '"kind":"ConfigMap","metadata":{"name":"config-' + f'{i:07d}"}}}}',
                    },
                    "managedFields": [
                        {
                            "manager": "kubectl-client-side-apply",
                            "operation": "Update",
                            "apiVersion": "v1",
                            "time": CLUSTER_CREATED,
                            "fieldsType": "FieldsV1",
                            "fieldsV1": {
                                "f:data": {
                                    ".": {},
                                    "f:app.properties": {},
                                    "f:logging.yaml": {},
                                },
                                "f:metadata": {
                                    "f:annotations": {".": {}, "f:meshery.io/owner": {}},
                                    "f:labels": {".": {}, "f:app": {}, "f:shard": {}},
                                },
                            },
                        }
                    ],
                },
                "data": {
                    "app.properties": "\n".join(
                        f"worker.setting.{k}=value-{(i * 31 + k) % 997}" for k in range(24)
                    ),
                    "logging.yaml": "level: info\nformat: json\noutputs:\n  - stdout\n"
                    "  - file: /var/log/worker.log\nrotate:\n  maxSizeMB: 100\n  keep: 5\n",
                },
            }
