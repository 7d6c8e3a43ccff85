"""Kubernetes discovery for MeshSync: the ``k8s`` source and Secret redaction."""

__version__ = "0.1.0"
