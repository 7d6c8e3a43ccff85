"""Fixtures of the NATS sink tests: a real nats-server per test (meshsync_nats.testing).

``pytest_plugins`` is only allowed in the root conftest, so the fixtures are imported here.
"""

from meshsync_nats.testing import (  # noqa: F401
    jetstream_server,
    nats_server,
    nats_server_factory,
    tls_files,
)
