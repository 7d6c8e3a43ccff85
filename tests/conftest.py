"""Fixtures shared by every test directory."""

pytest_plugins = ["meshsync_core.testing"]
