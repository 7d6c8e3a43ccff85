"""Fixtures shared by every test directory."""

import logging
import os
from collections.abc import Iterator

import pytest

# The fixtures of meshsync_testkit.pytest_plugin (capture_sink, memory_source, fake_cluster,
# nats_server, jetstream_server, nats_server_factory) come through its pytest11 entry point.
pytest_plugins = ["tests.realkube.fixtures"]

# `meshsync run` serves health and metrics on port 11000 by default; test processes run side by
# side, so they get none unless a test asks for one (subprocesses inherit this).
os.environ.setdefault("MESHSYNC_HEALTH_PORT", "0")


@pytest.fixture(autouse=True)
def _meshsync_logger_restored() -> Iterator[None]:
    """A command run in-process configures the ``meshsync`` logger (its own handler, no
    propagation): put it back after each test, so that later tests' caplog still sees records."""
    logger = logging.getLogger("meshsync")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved
