"""Test support for MeshSync: a fake Kubernetes API server, a real nats-server, pytest fixtures.

- :mod:`meshsync_testkit.fake_apiserver`: ``FakeApiServer``;
- :mod:`meshsync_testkit.seed`: ``demo_cluster``, ``bulk_objects``, ``bulk_namespaces``;
- :mod:`meshsync_testkit.nats_server`: ``NatsServer``, ``free_port``, TLS and NKEY helpers;
- :mod:`meshsync_testkit.pytest_plugin`: the fixtures (loaded by pytest through ``pytest11``);
- :mod:`meshsync_testkit.plugin`: the MeshSync plugin that adds ``meshsync demo``.
"""
