"""Fixtures shared by every test directory."""

import os

pytest_plugins = ["meshsync_core.testing", "tests.realkube.fixtures"]

# `meshsync run` serves health and metrics on port 11000 by default; test processes run side by
# side, so they get none unless a test asks for one (subprocesses inherit this).
os.environ.setdefault("MESHSYNC_HEALTH_PORT", "0")
