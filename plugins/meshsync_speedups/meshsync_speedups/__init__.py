"""The compiled fast paths of MeshSync's built-in plugins (k8s, NATS, file).

Each extension module here is optional: a plugin imports it inside ``try``/``except
ImportError`` and runs its own Python code when it is missing (no compiler at install time, or
``MESHSYNC_SPEEDUPS_PURE_PYTHON=1``). The modules are plain C over the Python C API; they share
one JSON reader (``jsontext.h``) and know nothing of MeshSync's core.
"""
