"""Fixtures of the NATS sink tests: a real nats-server per test.

``nats_server``, ``jetstream_server`` and ``nats_server_factory`` come from the test kit's pytest
plugin (``meshsync_testkit.pytest_plugin``, loaded through its ``pytest11`` entry point).
"""

from pathlib import Path

import pytest
from meshsync_testkit.nats_server import TlsFiles, make_tls_files


@pytest.fixture
def tls_files(tmp_path: Path) -> TlsFiles:
    return make_tls_files(tmp_path / "tls")
