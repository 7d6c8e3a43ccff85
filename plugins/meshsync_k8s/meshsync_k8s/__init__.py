"""Kubernetes discovery for MeshSync: the ``k8s`` source, Secret redaction, a fake API server."""

__version__ = "0.1.0"
