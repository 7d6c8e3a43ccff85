"""Realistic objects of every built-in kind MeshSync watches by default, as the API returns them.

Each carries what the API server adds (uid, resourceVersion, creationTimestamp, generation,
managedFields, status) so that the tests see what a real cluster gives the file sink.
"""

from __future__ import annotations

import base64
import itertools
from typing import Any

from meshsync_core import Event, EventType, Resource

CLUSTER_ID = "5f0e2c1a-0000-4000-8000-00000000c1a5"
_counter = itertools.count(1)

R = Resource
RESOURCES: dict[str, Resource] = {
    r.plural: r
    for r in [
        R("", "v1", "namespaces", "Namespace", False),
        R("", "v1", "configmaps", "ConfigMap"),
        R("", "v1", "nodes", "Node", False),
        R("", "v1", "secrets", "Secret"),
        R("", "v1", "persistentvolumes", "PersistentVolume", False),
        R("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim"),
        R("", "v1", "pods", "Pod"),
        R("", "v1", "services", "Service"),
        R("", "v1", "endpoints", "Endpoints"),
        R("", "v1", "replicationcontrollers", "ReplicationController"),
        R("apps", "v1", "replicasets", "ReplicaSet"),
        R("apps", "v1", "deployments", "Deployment"),
        R("apps", "v1", "statefulsets", "StatefulSet"),
        R("apps", "v1", "daemonsets", "DaemonSet"),
        R("networking.k8s.io", "v1", "ingresses", "Ingress"),
        R("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice"),
        R("batch", "v1", "cronjobs", "CronJob"),
        R("storage.k8s.io", "v1", "storageclasses", "StorageClass", False),
        R("storage.k8s.io", "v1", "volumeattachments", "VolumeAttachment", False),
        R("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
        R("apiregistration.k8s.io", "v1", "apiservices", "APIService", False),
    ]
}
KIND_TO_PLURAL = {r.kind: r.plural for r in RESOURCES.values()}
TS = "2026-03-01T10:20:30Z"


def uid() -> str:
    return f"0b5e9a7c-{next(_counter):04d}-4a1b-9c2d-{next(_counter):012d}"


def managed(manager: str = "kube-controller-manager", api_version: str = "v1") -> list[dict]:
    return [
        {
            "manager": manager,
            "operation": "Update",
            "apiVersion": api_version,
            "time": TS,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:spec": {}},
        },
        {
            "manager": "kubectl-client-side-apply",
            "operation": "Update",
            "apiVersion": api_version,
            "time": TS,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:annotations": {".": {}}}},
            "subresource": "status",
        },
    ]


def meta(
    name: str,
    namespace: str | None = "shop",
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    owner: dict[str, Any] | None = None,
    generation: int | None = None,
    api_version: str = "v1",
    **extra: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name}
    if namespace:
        out["namespace"] = namespace
    out["uid"] = uid()
    out["resourceVersion"] = str(1000 + next(_counter))
    if generation is not None:
        out["generation"] = generation
    out["creationTimestamp"] = TS
    if labels:
        out["labels"] = labels
    if annotations:
        out["annotations"] = annotations
    if owner:
        out["ownerReferences"] = [
            {
                "apiVersion": owner["apiVersion"],
                "kind": owner["kind"],
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    out.update(extra)
    out["managedFields"] = managed(api_version=api_version)
    return out


def pod_template(app: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": app}},
        "spec": {
            "containers": [
                {
                    "name": app,
                    "image": "ghcr.io/example/shop:1.4.2",
                    "args": ["--port=8080", "--mode", "on"],
                    "command": ["/bin/sh", "-c", 'set -e\nexec /app/server "$@"\n', "--"],
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                    "env": [
                        {"name": "FEATURE_X", "value": "yes"},
                        {"name": "RETRIES", "value": "3"},
                        {"name": "EMPTY", "value": ""},
                        {
                            "name": "POD_IP",
                            "valueFrom": {
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}
                            },
                        },
                    ],
                    "resources": {
                        "limits": {"cpu": "1", "memory": "512Mi"},
                        "requests": {"cpu": "250m", "memory": "256Mi"},
                    },
                    "readinessProbe": {
                        "httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP"},
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
            "securityContext": {},
            "schedulerName": "default-scheduler",
        },
    }


def build_cluster() -> list[tuple[Resource, dict[str, Any]]]:
    """One realistic object (sometimes more) of each default kind, owners before dependents."""
    objs: list[dict[str, Any]] = []

    def add(obj: dict[str, Any]) -> dict[str, Any]:
        objs.append(obj)
        return obj

    add(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": meta(
                "shop", None, labels={"kubernetes.io/metadata.name": "shop", "tier": "on"}
            ),
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }
    )
    add(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta(
                "shop-config",
                annotations={
                    "kubectl.kubernetes.io/last-applied-configuration": (
                        '{"apiVersion":"v1","data":{"mode":"on"},"kind":"ConfigMap"}\n'
                    ),
                    "note": "  padded: value # not a comment  ",
                },
            ),
            "data": {
                "mode": "on",
                "replicas": "3",
                "ratio": "1.5",
                "version": "0755",
                "nginx.conf": "server {\n\tlisten 80;\n  location / {\n    return 200;\n  }\n}\n",
                "empty": "",
                "null-ish": "~",
                "date": "2026-01-01",
                "trailing": "line one  \nline two\n\n",
                "quote": "he said \"hi\" and left: 'bye'",
                "unicode": "héllo wörld ✓ 日本",
                "tab\tkey": "value",
            },
            "binaryData": {"blob.bin": base64.b64encode(b"\x00\x01\x02binary").decode()},
        }
    )
    node = add(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": meta(
                "node-a",
                None,
                labels={
                    "kubernetes.io/hostname": "node-a",
                    "kubernetes.io/os": "linux",
                    "node-role.kubernetes.io/control-plane": "",
                },
                annotations={"node.alpha.kubernetes.io/ttl": "0"},
            ),
            "spec": {
                "podCIDR": "10.244.0.0/24",
                "podCIDRs": ["10.244.0.0/24"],
                "providerID": "kind://docker/kind/node-a",
                "taints": [
                    {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
                ],
            },
            "status": {
                "capacity": {"cpu": "8", "memory": "16318480Ki", "pods": "110"},
                "allocatable": {"cpu": "8", "memory": "16318480Ki", "pods": "110"},
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "lastHeartbeatTime": TS,
                        "lastTransitionTime": TS,
                        "reason": "KubeletReady",
                        "message": "kubelet is posting ready status",
                    }
                ],
                "addresses": [
                    {"type": "InternalIP", "address": "172.18.0.2"},
                    {"type": "Hostname", "address": "node-a"},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {
                    "machineID": "abc",
                    "systemUUID": "def",
                    "bootID": "ghi",
                    "kernelVersion": "6.8.0",
                    "osImage": "Debian GNU/Linux 12 (bookworm)",
                    "containerRuntimeVersion": "containerd://1.7.18",
                    "kubeletVersion": "v1.33.1",
                    "kubeProxyVersion": "v1.33.1",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                },
                "images": [{"names": ["registry.k8s.io/pause:3.10"], "sizeBytes": 320368}],
            },
        }
    )
    add(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta(
                "db-credentials",
                annotations={
                    "kubectl.kubernetes.io/last-applied-configuration": '{"data":{"p":"c2VjcmV0"}}'
                },
            ),
            "type": "Opaque",
            "data": {
                "username": base64.b64encode(b"admin").decode(),
                "password": base64.b64encode(b"s3cr3t!").decode(),
            },
        }
    )
    storage_class = add(
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": meta(
                "standard",
                None,
                annotations={"storageclass.kubernetes.io/is-default-class": "true"},
            ),
            "provisioner": "rancher.io/local-path",
            "parameters": {"type": "ssd", "replication": "1"},
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer",
            "allowVolumeExpansion": True,
        }
    )
    pvc_meta = meta(
        "data-db-0",
        annotations={"pv.kubernetes.io/bind-completed": "yes"},
        labels={"app": "db"},
    )
    pv = add(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": meta(
                "pvc-1234",
                None,
                annotations={"pv.kubernetes.io/provisioned-by": "rancher.io/local-path"},
                finalizers=["kubernetes.io/pv-protection"],
            ),
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "hostPath": {"path": "/var/local-path/pvc-1234", "type": "DirectoryOrCreate"},
                "claimRef": {
                    "kind": "PersistentVolumeClaim",
                    "namespace": "shop",
                    "name": "data-db-0",
                    "uid": pvc_meta["uid"],
                    "apiVersion": "v1",
                    "resourceVersion": "1234",
                },
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": storage_class["metadata"]["name"],
                "volumeMode": "Filesystem",
                "nodeAffinity": {
                    "required": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {
                                        "key": "kubernetes.io/hostname",
                                        "operator": "In",
                                        "values": ["node-a"],
                                    }
                                ]
                            }
                        ]
                    }
                },
            },
            "status": {"phase": "Bound", "lastPhaseTransitionTime": TS},
        }
    )
    add(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": pvc_meta,
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
                "storageClassName": "standard",
                "volumeMode": "Filesystem",
                "volumeName": pv["metadata"]["name"],
            },
            "status": {
                "phase": "Bound",
                "accessModes": ["ReadWriteOnce"],
                "capacity": {"storage": "1Gi"},
            },
        }
    )
    deployment = add(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta(
                "web",
                labels={"app": "web"},
                annotations={"deployment.kubernetes.io/revision": "2"},
                generation=2,
                api_version="apps/v1",
            ),
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": pod_template("web"),
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
                },
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600,
            },
            "status": {
                "observedGeneration": 2,
                "replicas": 2,
                "updatedReplicas": 2,
                "readyReplicas": 2,
                "availableReplicas": 2,
                "conditions": [
                    {
                        "type": "Available",
                        "status": "True",
                        "lastUpdateTime": TS,
                        "lastTransitionTime": TS,
                        "reason": "MinimumReplicasAvailable",
                        "message": "Deployment has minimum availability.",
                    }
                ],
            },
        }
    )
    replicaset = add(
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": meta(
                "web-7d4b9c8f6d",
                labels={"app": "web", "pod-template-hash": "7d4b9c8f6d"},
                annotations={
                    "deployment.kubernetes.io/desired-replicas": "2",
                    "deployment.kubernetes.io/max-replicas": "3",
                    "deployment.kubernetes.io/revision": "2",
                },
                owner=deployment,
                generation=1,
                api_version="apps/v1",
            ),
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web", "pod-template-hash": "7d4b9c8f6d"}},
                "template": pod_template("web"),
            },
            "status": {
                "replicas": 2,
                "fullyLabeledReplicas": 2,
                "readyReplicas": 2,
                "availableReplicas": 2,
                "observedGeneration": 1,
            },
        }
    )
    pod_spec = pod_template("web")["spec"]
    pod_spec["nodeName"] = node["metadata"]["name"]
    pod_spec["serviceAccountName"] = "default"
    pod_spec["tolerations"] = [
        {
            "key": "node.kubernetes.io/not-ready",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 300,
        }
    ]
    pod = add(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": meta(
                "web-7d4b9c8f6d-x2x9q",
                labels={"app": "web", "pod-template-hash": "7d4b9c8f6d"},
                owner=replicaset,
                generateName="web-7d4b9c8f6d-",
            ),
            "spec": pod_spec,
            "status": {
                "phase": "Running",
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "lastProbeTime": None,
                        "lastTransitionTime": TS,
                    }
                ],
                "hostIP": "172.18.0.2",
                "podIP": "10.244.0.7",
                "podIPs": [{"ip": "10.244.0.7"}],
                "startTime": TS,
                "containerStatuses": [
                    {
                        "name": "web",
                        "state": {"running": {"startedAt": TS}},
                        "lastState": {},
                        "ready": True,
                        "restartCount": 0,
                        "image": "ghcr.io/example/shop:1.4.2",
                        "imageID": "ghcr.io/example/shop@sha256:" + "ab" * 32,
                        "containerID": "containerd://" + "cd" * 32,
                        "started": True,
                    }
                ],
                "qosClass": "Burstable",
            },
        }
    )
    service = add(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta("web", labels={"app": "web"}),
            "spec": {
                "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}],
                "selector": {"app": "web"},
                "clusterIP": "10.96.12.34",
                "clusterIPs": ["10.96.12.34"],
                "type": "ClusterIP",
                "sessionAffinity": "None",
                "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack",
                "internalTrafficPolicy": "Cluster",
            },
            "status": {"loadBalancer": {}},
        }
    )
    target = {"kind": "Pod", "namespace": "shop", "name": pod["metadata"]["name"]}
    target["uid"] = pod["metadata"]["uid"]
    add(
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": meta(
                "web",
                labels={"app": "web"},
                annotations={"endpoints.kubernetes.io/last-change-trigger-time": TS},
            ),
            "subsets": [
                {
                    "addresses": [{"ip": "10.244.0.7", "nodeName": "node-a", "targetRef": target}],
                    "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                }
            ],
        }
    )
    add(
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": meta(
                "web-abcde",
                labels={
                    "kubernetes.io/service-name": "web",
                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                },
                owner=service,
                generateName="web-",
                generation=1,
                api_version="discovery.k8s.io/v1",
            ),
            "addressType": "IPv4",
            "endpoints": [
                {
                    "addresses": ["10.244.0.7"],
                    "conditions": {"ready": True, "serving": True, "terminating": False},
                    "nodeName": "node-a",
                    "targetRef": target,
                }
            ],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        }
    )
    add(
        {
            "apiVersion": "v1",
            "kind": "ReplicationController",
            "metadata": meta("legacy", labels={"app": "legacy"}, generation=1),
            "spec": {
                "replicas": 1,
                "selector": {"app": "legacy"},
                "template": pod_template("legacy"),
            },
            "status": {"replicas": 1, "readyReplicas": 1, "observedGeneration": 1},
        }
    )
    add(
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": meta("db", labels={"app": "db"}, generation=1, api_version="apps/v1"),
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "db"}},
                "template": pod_template("db"),
                "serviceName": "db",
                "volumeClaimTemplates": [
                    {
                        "apiVersion": "v1",
                        "kind": "PersistentVolumeClaim",
                        "metadata": {"name": "data"},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": "1Gi"}},
                            "volumeMode": "Filesystem",
                        },
                        "status": {"phase": "Pending"},
                    }
                ],
                "podManagementPolicy": "OrderedReady",
                "updateStrategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"partition": 0},
                },
                "revisionHistoryLimit": 10,
                "persistentVolumeClaimRetentionPolicy": {
                    "whenDeleted": "Retain",
                    "whenScaled": "Retain",
                },
            },
            "status": {
                "replicas": 1,
                "readyReplicas": 1,
                "currentReplicas": 1,
                "updatedReplicas": 1,
                "currentRevision": "db-5d8c7b6f9",
                "updateRevision": "db-5d8c7b6f9",
                "collisionCount": 0,
                "observedGeneration": 1,
                "availableReplicas": 1,
            },
        }
    )
    add(
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": meta(
                "log-agent",
                labels={"app": "log-agent"},
                annotations={"deprecated.daemonset.template.generation": "1"},
                generation=1,
                api_version="apps/v1",
            ),
            "spec": {
                "selector": {"matchLabels": {"app": "log-agent"}},
                "template": pod_template("log-agent"),
                "updateStrategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
                },
                "revisionHistoryLimit": 10,
            },
            "status": {
                "currentNumberScheduled": 1,
                "numberMisscheduled": 0,
                "desiredNumberScheduled": 1,
                "numberReady": 1,
                "observedGeneration": 1,
                "updatedNumberScheduled": 1,
                "numberAvailable": 1,
            },
        }
    )
    add(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": meta(
                "web",
                annotations={"nginx.ingress.kubernetes.io/rewrite-target": "/$2"},
                generation=1,
                api_version="networking.k8s.io/v1",
            ),
            "spec": {
                "ingressClassName": "nginx",
                "tls": [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}],
                "rules": [
                    {
                        "host": "shop.example.com",
                        "http": {
                            "paths": [
                                {
                                    "path": "/api(/|$)(.*)",
                                    "pathType": "ImplementationSpecific",
                                    "backend": {"service": {"name": "web", "port": {"number": 80}}},
                                }
                            ]
                        },
                    }
                ],
            },
            "status": {"loadBalancer": {"ingress": [{"ip": "172.18.0.10"}]}},
        }
    )
    add(
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": meta("nightly-report", generation=1, api_version="batch/v1"),
            "spec": {
                "schedule": "0 3 * * *",
                "timeZone": "Etc/UTC",
                "concurrencyPolicy": "Forbid",
                "suspend": False,
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 1,
                "jobTemplate": {
                    "metadata": {},
                    "spec": {
                        "backoffLimit": 2,
                        "template": {
                            "metadata": {},
                            "spec": {
                                "restartPolicy": "OnFailure",
                                "containers": [
                                    {
                                        "name": "report",
                                        "image": "busybox:1.36",
                                        "command": ["sh", "-c", "date; echo 'report: done'"],
                                    }
                                ],
                            },
                        },
                    },
                },
            },
            "status": {"lastScheduleTime": TS, "lastSuccessfulTime": TS},
        }
    )
    add(
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "VolumeAttachment",
            "metadata": meta(
                "csi-0123456789abcdef",
                None,
                finalizers=["external-attacher/csi-example-com"],
                api_version="storage.k8s.io/v1",
            ),
            "spec": {
                "attacher": "csi.example.com",
                "nodeName": "node-a",
                "source": {"persistentVolumeName": "pvc-1234"},
            },
            "status": {"attached": True, "attachmentMetadata": {"devicePath": "/dev/sdb"}},
        }
    )
    add(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": meta(
                "shop-reader",
                None,
                labels={"rbac.authorization.k8s.io/aggregate-to-view": "true"},
                api_version="rbac.authorization.k8s.io/v1",
            ),
            "rules": [
                {
                    "apiGroups": ["", "apps"],
                    "resources": ["pods", "deployments", "pods/log"],
                    "verbs": ["get", "list", "watch"],
                },
                {"nonResourceURLs": ["/healthz", "/metrics"], "verbs": ["get"]},
            ],
        }
    )
    add(
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": meta(
                "v1beta1.metrics.k8s.io",
                None,
                labels={"k8s-app": "metrics-server"},
                api_version="apiregistration.k8s.io/v1",
            ),
            "spec": {
                "service": {"namespace": "kube-system", "name": "metrics-server", "port": 443},
                "group": "metrics.k8s.io",
                "version": "v1beta1",
                "insecureSkipTLSVerify": True,
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
            "status": {
                "conditions": [
                    {
                        "type": "Available",
                        "status": "True",
                        "lastTransitionTime": TS,
                        "reason": "Passed",
                        "message": "all checks passed",
                    }
                ]
            },
        }
    )
    return [(RESOURCES[KIND_TO_PLURAL[o["kind"]]], o) for o in objs]


def event(resource: Resource, obj: dict[str, Any], etype: EventType = EventType.ADDED) -> Event:
    return Event(etype, obj, resource, source="memory", cluster_id=CLUSTER_ID)


def modified(obj: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A new version of ``obj`` (new resourceVersion, top-level ``changes`` merged in)."""
    metadata = {
        **obj["metadata"],
        "resourceVersion": str(int(obj["metadata"]["resourceVersion"]) + 1),
    }
    return {**obj, "metadata": metadata, **changes}
