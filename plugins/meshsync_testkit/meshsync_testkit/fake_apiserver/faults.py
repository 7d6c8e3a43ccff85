"""Fault injection: the failures a MeshSync source must survive, on demand.

Each method is synchronous and thread-safe so a test can trigger a fault from its own thread
while the server runs in another (``FakeApiServer.in_thread``) or from the server's loop.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from .errors import REASONS, ApiError

if TYPE_CHECKING:
    from .server import FakeApiServer


class Faults:
    """Switches the HTTP layer consults on every request and every open watch."""

    def __init__(self, server: FakeApiServer) -> None:
        self._server = server
        self._lock = threading.Lock()
        self._forbidden: set[tuple[str, str]] = set()
        self._fail_count = 0
        self._fail_status = 500
        self._expire_continues = 0
        self.watches_hung = False

    # -- watches ---------------------------------------------------------------------------

    def expire_watches(self) -> int:
        """Every open watch gets an ERROR event with a 410 Expired Status, then closes."""
        return self._signal("expire")

    def drop_connections(self) -> int:
        """Every open watch connection is cut abruptly (no ERROR event, no chunk terminator)."""
        return self._signal("drop")

    def hang_watches(self) -> None:
        """Open (and new) watches stop sending anything, bookmarks included, until resumed."""
        self.watches_hung = True

    def resume_watches(self) -> None:
        """Hung watches deliver what queued up meanwhile and carry on."""
        self.watches_hung = False
        for w in self._server.store.watchers():
            w.notify()

    def compact(self) -> None:
        """History before now is gone: watch/continue from an older resourceVersion -> 410."""
        self._server.store.compact()

    def _signal(self, control: str) -> int:
        watchers = self._server.store.watchers()
        for w in watchers:
            w.control = control
            w.notify()
        return len(watchers)

    # -- requests --------------------------------------------------------------------------

    def forbid(self, plural: str, group: str = "") -> None:
        """Every request for that resource (list, watch, get, writes) gets 403 Forbidden."""
        with self._lock:
            self._forbidden.add((group, plural))

    def allow(self, plural: str, group: str = "") -> None:
        with self._lock:
            self._forbidden.discard((group, plural))

    def is_forbidden(self, plural: str, group: str) -> bool:
        return (group, plural) in self._forbidden

    def fail_next(self, n: int, status: int = 500) -> None:
        """The next ``n`` API requests (discovery included) fail with ``status``."""
        with self._lock:
            self._fail_count = n
            self._fail_status = status

    def lose_next_events(self, n: int = 1) -> None:
        """The next ``n`` changes are stored but open watches never hear of them (a watch event
        lost in transit): only a re-list can find them. Watches started later replay them."""
        with self._server.store.lock:
            self._server.store.lose_events = n

    def expire_continue_tokens(self, n: int = 1) -> None:
        """The next ``n`` list requests that carry a ``continue`` token get 410 Expired, as if
        the history behind the token was compacted between two pages of a list."""
        with self._lock:
            self._expire_continues = n

    def take_continue_expiry(self) -> bool:
        """Consume one pending continue-token expiry, if any."""
        with self._lock:
            if self._expire_continues <= 0:
                return False
            self._expire_continues -= 1
            return True

    def take_failure(self) -> ApiError | None:
        """Consume one pending injected failure, if any."""
        with self._lock:
            if self._fail_count <= 0:
                return None
            self._fail_count -= 1
            code = self._fail_status
        reason = REASONS.get(code, "InternalError")
        return ApiError(code, f"injected failure ({reason})", reason)
