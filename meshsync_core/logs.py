"""Logging set-up: readable lines for people, or JSON lines for log pipelines.

Loggers are named ``meshsync.<plugin or component>`` so every line says who wrote it. Nothing
here knows about credentials: components must never put them in messages (the NATS sink masks
passwords in URLs, Secret values are redacted before any sink sees them).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from datetime import datetime, timezone

import orjson

LEVELS = ["debug", "info", "warning", "error"]

#: LogRecord attributes that are not "fields" a caller passed with ``extra=``.
_STANDARD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def effective_level(level: str | None) -> str:
    """``DEBUG=true|1`` (as in Go MeshSync) wins over the default level, not over --log-level."""
    if level:
        return level.lower()
    if os.environ.get("DEBUG", "").strip().lower() in {"1", "true", "yes"}:
        return "debug"
    return "info"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, plus any ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str | None = None, fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger("meshsync")
    root.handlers[:] = [handler]
    root.setLevel(effective_level(level).upper())
    root.propagate = False


class RateLimitedLog:
    """A logger that writes a line at most once per ``interval`` seconds per key (the message
    by default); repeats go to debug. For failures that can repeat thousands of times a
    minute (a flood of bad requests, a server that keeps refusing) but must be seen once."""

    def __init__(self, log: logging.Logger, interval: float = 60.0, max_keys: int = 1000) -> None:
        self.log_to = log
        self.interval = interval
        self.max_keys = max_keys
        self._last: dict[str, float] = {}

    def log(self, level: int, message: str, *args: object, key: str | None = None) -> None:
        """``message % args`` at ``level``, unless ``key`` was logged within the interval."""
        key = key or message
        now = time.monotonic()
        if now - self._last.get(key, -1e9) >= self.interval:
            if len(self._last) >= self.max_keys:
                self._last.clear()  # bounded: many distinct keys cost a few extra lines
            self._last[key] = now
            self.log_to.log(level, message, *args)
        else:
            self.log_to.debug(message, *args)

    def warning(self, message: str, *args: object, key: str | None = None) -> None:
        """:meth:`log` at WARNING."""
        self.log(logging.WARNING, message, *args, key=key)
