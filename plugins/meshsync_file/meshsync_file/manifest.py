"""Event objects -> clean Kubernetes manifests, and the extra stripping of ``--for-apply``.

The snapshot must be something ``kubectl`` and every Kubernetes tool read as is: ``apiVersion``,
``kind``, ``metadata`` (labels and annotations stay maps), then the object's own fields as
objects. Only ``metadata.managedFields`` is dropped: it is bookkeeping of the API server's
server-side apply, often larger than the object itself, and useless in a file.

``--for-apply`` goes further so that the file can be applied to *another* cluster; see
:func:`for_apply` for the fields it removes and :func:`made_by_control_plane` for the objects it
leaves out, and why.
"""

from __future__ import annotations

import base64
from typing import Any

from meshsync_core import Resource

#: What the ``secret-redaction`` transform puts in place of each Secret value.
REDACTED = "[REDACTED]"
#: A redacted ``data`` value must still be base64 for the API server to accept the Secret.
REDACTED_BASE64 = base64.b64encode(REDACTED.encode()).decode()
#: Keys the API server parses as a JSON object (per Secret type): a redacted value becomes
#: this placeholder - a registry named ``[REDACTED]`` without credentials - which the API server
#: and the kubelet both read, where ``[REDACTED]`` itself would be refused as invalid JSON.
REDACTED_JSON = {
    ("kubernetes.io/dockerconfigjson", ".dockerconfigjson"): base64.b64encode(
        b'{"auths":{"[REDACTED]":{}}}'
    ).decode(),
    ("kubernetes.io/dockercfg", ".dockercfg"): base64.b64encode(b'{"[REDACTED]":{}}').decode(),
}

#: metadata fields the API server sets; another cluster assigns its own.
SERVER_METADATA = frozenset(
    {
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "generation",
        "managedFields",
        "selfLink",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "ownerReferences",
        # written by controllers and admission (pvc-protection, foregroundDeletion, operators'
        # own): in a cluster without that controller the object could never be deleted
        "finalizers",
    }
)
#: Annotations written by controllers, kubelets or kubectl rather than by whoever created it.
SERVER_ANNOTATIONS = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        "deployment.kubernetes.io/revision",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "endpoints.kubernetes.io/last-change-trigger-time",
        "control-plane.alpha.kubernetes.io/leader",
        "pv.kubernetes.io/bind-completed",
        "pv.kubernetes.io/bound-by-controller",
        "volume.kubernetes.io/selected-node",
        "node.alpha.kubernetes.io/ttl",
        "volumes.kubernetes.io/controller-managed-attach-detach",
    }
)


#: Namespaces every cluster has, filled by its own control plane and add-ons (its CA bundle,
#: the API server's authentication configuration, leases, bootstrap tokens, cluster-info...).
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})
#: Labels marking objects a control plane makes for itself: RBAC bootstrap policy, the
#: aggregator's own APIServices, the Endpoints/EndpointSlices derived from Services.
CONTROL_PLANE_LABELS: dict[str, frozenset[str] | None] = {
    "kubernetes.io/bootstrapping": frozenset({"rbac-defaults"}),
    "kube-aggregator.kubernetes.io/automanaged": None,  # any value ("onstart", "true")
    "endpoints.kubernetes.io/managed-by": frozenset({"endpoint-controller"}),
    "endpointslice.kubernetes.io/managed-by": frozenset(
        {"endpointslice-controller.k8s.io", "endpointslicemirroring-controller.k8s.io"}
    ),
}
#: Kinds written before all others, so that ``kubectl apply -f`` (which applies documents in
#: file order) has created a namespace or a custom resource's definition before what needs it.
FIRST_KINDS = frozenset({"Namespace", "CustomResourceDefinition"})
SERVICE_ACCOUNT_TOKEN = "kubernetes.io/service-account-token"


def clean(obj: dict[str, Any], resource: Resource) -> dict[str, Any]:
    """The object as a manifest: ``apiVersion``/``kind``/``metadata`` first, no managedFields.

    Objects from a list response carry no ``apiVersion``/``kind``; the event's resource
    supplies them. The input is never modified (the source may still hold it).
    """
    api_version = obj.get("apiVersion") or resource.api_version
    kind = obj.get("kind") or resource.kind
    out: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
    metadata = obj.get("metadata")
    if isinstance(metadata, dict):
        if "managedFields" in metadata:
            metadata = {k: v for k, v in metadata.items() if k != "managedFields"}
        out["metadata"] = metadata
    for key, value in obj.items():
        if key not in out:
            out[key] = value
    return out


def controller_uid(manifest: dict[str, Any]) -> str | None:
    """The uid of the owner with ``controller: true``, if any (before :func:`for_apply`)."""
    refs = (manifest.get("metadata") or {}).get("ownerReferences")
    if isinstance(refs, list):
        for ref in refs:
            if isinstance(ref, dict) and ref.get("controller") and ref.get("uid"):
                return str(ref["uid"])
    return None


def made_by_control_plane(manifest: dict[str, Any]) -> bool:
    """Whether every cluster's control plane makes this object itself (``--for-apply`` leaves
    it out: applied to another cluster, it would clash with that cluster's own copy).

    * the system namespaces (``kube-system``, ``kube-public``, ``kube-node-lease``) and
      everything in them;
    * ``kube-root-ca.crt``, the ConfigMap the root-CA publisher puts into every namespace;
    * the ``kubernetes`` Service in ``default`` and its Endpoints/EndpointSlice (the API
      server's own);
    * objects labelled as the control plane's: the RBAC bootstrap policy
      (``kubernetes.io/bootstrapping: rbac-defaults``), the APIServices the aggregator
      registers for every served group (``kube-aggregator.kubernetes.io/automanaged``), and
      the Endpoints/EndpointSlices the endpoint controllers derive from a Service's selector
      (they carry the other cluster's Pod IPs and uids; no owner reference says so).
    """
    metadata = manifest.get("metadata")
    if not isinstance(metadata, dict):
        return False
    kind = manifest.get("kind")
    name = metadata.get("name")
    namespace = metadata.get("namespace")
    if namespace in SYSTEM_NAMESPACES or (kind == "Namespace" and name in SYSTEM_NAMESPACES):
        return True
    if kind == "ConfigMap" and name == "kube-root-ca.crt":
        return True
    if (
        namespace == "default"
        and name == "kubernetes"
        and kind in ("Service", "Endpoints", "EndpointSlice")
    ):
        return True
    labels = metadata.get("labels")
    if isinstance(labels, dict):
        for label, values in CONTROL_PLANE_LABELS.items():
            if label in labels and (values is None or labels[label] in values):
                return True
    return False


def for_apply(manifest: dict[str, Any]) -> dict[str, Any]:
    """A copy of a clean manifest without what the API server fills in, ready to apply elsewhere.

    * ``status`` and the server-set metadata (uid, resourceVersion, creationTimestamp,
      generation, selfLink, deletion fields) go, and so do controller/kubectl annotations and
      ``finalizers`` (the other cluster's controllers and admission add their own).
    * ``ownerReferences`` go, all of them: they name owners by uid, and in another cluster no
      owner has that uid, so the garbage collector would delete the object right after it is
      created. (Objects whose *controller* is in the same file are left out of the file by the
      sink instead: their controller recreates them.)
    * Allocated values go: a Service's ``clusterIP``/``clusterIPs`` (unless headless,
      ``None``), a Pod's ``nodeName`` (set by the scheduler), the uid and resourceVersion in a
      PersistentVolume's ``claimRef``.
    * Redacted Secret ``data`` values become base64 of ``[REDACTED]`` so the API server accepts
      them (with ``--no-redact-secrets`` the real values are kept); a redacted
      ``.dockerconfigjson``/``.dockercfg``, which the API server parses, becomes an empty
      registry configuration (``REDACTED_JSON``). A service-account token
      Secret loses its ``data``: the token was signed by this cluster's key (or is redacted,
      which would stop the other cluster's token controller from minting a real one).
    """
    out = {k: v for k, v in manifest.items() if k != "status"}
    metadata = manifest.get("metadata")
    if isinstance(metadata, dict):
        meta = {k: v for k, v in metadata.items() if k not in SERVER_METADATA}
        annotations = meta.get("annotations")
        if isinstance(annotations, dict):
            kept = {k: v for k, v in annotations.items() if k not in SERVER_ANNOTATIONS}
            if kept:
                meta["annotations"] = kept
            else:
                del meta["annotations"]
        out["metadata"] = meta
    kind = manifest.get("kind")
    spec = out.get("spec")
    if isinstance(spec, dict):
        if kind == "Service":
            spec = {
                k: v
                for k, v in spec.items()
                if k not in ("clusterIP", "clusterIPs") or spec.get("clusterIP") == "None"
            }
        elif kind == "Pod" and "nodeName" in spec:
            spec = {k: v for k, v in spec.items() if k != "nodeName"}
        elif kind == "PersistentVolume" and isinstance(spec.get("claimRef"), dict):
            claim = {
                k: v for k, v in spec["claimRef"].items() if k not in ("uid", "resourceVersion")
            }
            spec = {**spec, "claimRef": claim}
        out["spec"] = spec
    if kind == "Secret" and manifest.get("type") == SERVICE_ACCOUNT_TOKEN:
        out.pop("data", None)
        out.pop("stringData", None)
    elif kind == "Secret" and isinstance(out.get("data"), dict):
        secret_type = str(manifest.get("type") or "")
        out["data"] = {
            k: REDACTED_JSON.get((secret_type, k), REDACTED_BASE64) if v == REDACTED else v
            for k, v in out["data"].items()
        }
    return out
