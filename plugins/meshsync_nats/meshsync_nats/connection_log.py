"""What the sink says about its NATS connection, and how often.

The sink retries forever, so a server that stays down or keeps refusing the credentials must
not fill the log: rejected credentials are one error line (then debug, until a connection
succeeds), unreachable servers a warning for each of the first attempts and then one a minute,
and errors of a connection that is going away are left to the disconnect line. The last reason
a connection attempt failed is kept for the run's final report
(:meth:`ConnectionLog.undelivered_reason`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import nats.errors

from meshsync_core import RateLimitedLog
from meshsync_nats.connection import ConnectionSettings, mask_url

_REJECTED = "credentials rejected"


class ConnectionLog:
    """The connection's log lines: ``buffered()`` is how many changes are waiting."""

    def __init__(
        self,
        settings: ConnectionSettings,
        *,
        log: logging.Logger,
        limited: RateLimitedLog,
        buffered: Callable[[], int],
    ) -> None:
        self.settings = settings
        self.log = log
        self._limited = limited
        self._buffered = buffered
        self.failures = 0  # failed attempts since the last successful connection
        self.auth_logged = False
        self.connected_once = False
        self.last_error = ""  # why the last connection attempt failed, for the final report
        self._last_failure_log = 0.0

    def connected(self, nc: Any) -> None:
        """The first connection succeeded."""
        self.failures = 0
        self.auth_logged = False
        self.connected_once = True
        self.last_error = ""
        self.log.info("connected to NATS at %s", current_url(nc))

    def disconnected(self, capacity: int) -> None:
        self.log.warning(
            "lost the connection to NATS; buffering changes (up to %d objects) until it is back",
            capacity,
        )

    def reconnected(self, nc: Any, resend_delay: float) -> None:
        self.failures = 0
        self.auth_logged = False
        self.log.info(
            "reconnected to NATS at %s; re-sending %d buffered change(s) in %gs",
            current_url(nc),
            self._buffered(),
            resend_delay,
        )

    def error(self, exc: Exception, *, connected: bool) -> bool:
        """Log a connection error; True when it ended a connection attempt (a failure)."""
        text = str(exc) or type(exc).__name__
        lowered = text.lower()
        settings = self.settings
        if (
            isinstance(exc, nats.errors.AuthorizationError)
            or "authoriz" in lowered
            or ("authentication" in lowered)
        ):
            self.last_error = f"{_REJECTED}: {text.strip(chr(39))}"
            if not self.auth_logged:
                self.auth_logged = True
                self.log.error(
                    "NATS at %s rejected the credentials (%s): check --nats-user/"
                    "--nats-password, --nats-token, --nats-creds or --nats-nkey-seed; "
                    "retrying quietly every %gs in case the server side is fixed",
                    settings.display,
                    text.strip("'"),
                    settings.reconnect_wait,
                )
            else:
                self.log.debug("NATS still rejects the credentials: %s", text)
            return True
        if not connected:
            # a server that refused the credentials then resets the connection: the refusal
            # stays the reason to report (a successful connect clears it)
            if not self.last_error.startswith(_REJECTED):
                self.last_error = text
            self.failures += 1
            now = time.monotonic()
            if self.failures <= 5 or now - self._last_failure_log >= 60.0:
                self._last_failure_log = now
                self.log.warning(
                    "cannot reach NATS at %s (%s); retrying every %gs, forever "
                    "(attempt %d, %d change(s) buffered)",
                    settings.display,
                    text,
                    settings.reconnect_wait,
                    self.failures,
                    self._buffered(),
                )
            return True
        if isinstance(exc, (nats.errors.UnexpectedEOF, nats.errors.StaleConnectionError, OSError)):
            # The connection is going away; the disconnect handler says so in plain words.
            self.log.debug("NATS connection error: %s", text)
            return False
        self._limited.warning(f"NATS error: {text}")
        return False

    def undelivered_reason(self, count: int) -> str:
        """Why ``count`` changes were still pending when the run ended."""
        why = f" ({self.last_error})" if self.last_error else ""
        if not self.connected_once:
            return (
                f"could not connect to NATS at {self.settings.display}{why}: "
                f"{count} change(s) not delivered"
            )
        return f"{count} change(s) could not be delivered to NATS before shutdown{why}"


def current_url(nc: Any) -> str:
    """The server the client is connected to, credentials masked."""
    url = nc.connected_url
    return mask_url(url.geturl()) if url is not None else "?"
