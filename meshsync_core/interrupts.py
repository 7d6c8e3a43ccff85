"""SIGINT and SIGTERM in the ``meshsync`` command: the first stops cleanly, the next stops now.

The command owns both signals for its whole life, not only while the engine runs:

* before the run has started (plugins loading, components being built, a demo cluster being
  set up) a signal abandons the start-up: one line, exit 128 + the signal's number (130 for
  SIGINT);
* while the engine runs (opening included), the first signal asks it to stop cleanly: sinks
  deliver what they have and close, and the exit code is the run's own (0 when all went well);
* a signal while shutting down - a second Ctrl-C, or the first one after the run had begun to
  stop for another reason (``--once``, ``--stop-after``) - ends the process at once: one line,
  exit 128 + the signal's number, never a Python traceback or "Exception ignored" message.

Note that ``timeout -s INT`` sends its signal twice (to the process and to its group), so it
means "stop now"; ``--stop-after`` is the clean way to bound a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any, Protocol

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Stoppable(Protocol):
    @property
    def stopping(self) -> bool: ...

    def stop(self, reason: str = ..., exit_code: int = ...) -> None: ...


class Interrupted(BaseException):
    """The start-up was abandoned by a signal.

    A ``BaseException``, like ``KeyboardInterrupt``, so that no ``except Exception`` keeps it;
    unlike ``KeyboardInterrupt``, click and asyncio pass it on untouched.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        self.exit_code = 128 + signum
        super().__init__(self.name)


class SignalControl:
    """Installs the command's SIGINT/SIGTERM handler; :meth:`running` hands signals to an engine."""

    def __init__(self) -> None:
        self.received = 0
        self.shutting_down = False
        self._engine: _Stoppable | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> bool:
        """Take over both signals; False (and nothing done) outside the main thread."""
        if threading.current_thread() is not threading.main_thread():
            return False
        for signum in SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return True

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    @contextlib.contextmanager
    def running(self, engine: _Stoppable) -> Iterator[None]:
        """While the block runs, a first signal stops ``engine`` cleanly; afterwards any signal
        means "stop now". Enter it inside the engine's event loop, in the main thread."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._engine = engine
        try:
            with _wakes_up(loop):
                yield
        finally:
            self.shutting_down = True
            self._engine = None
            self._loop = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received += 1
        engine, loop = self._engine, self._loop
        if self.shutting_down or self.received > 1 or (engine is not None and engine.stopping):
            stop_now(signum)
        if engine is not None and loop is not None:
            name = signal.Signals(signum).name
            loop.call_soon_threadsafe(engine.stop, f"received {name}")
            return
        raise Interrupted(signum)


@contextlib.contextmanager
def _wakes_up(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """Make a signal wake the event loop up, so that the handler runs at once.

    A signal may be delivered to any thread (the loop has worker threads); Python runs its
    handler in the main thread only when that thread next runs Python code, and an idle loop
    can sleep in ``epoll_wait`` for minutes. The C-level handler writes to the wakeup fd from
    whatever thread it runs in: a socket the loop watches.
    """
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    try:
        previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    except ValueError:  # not the main thread: nothing to wake up
        reader.close()
        writer.close()
        yield
        return
    loop.add_reader(reader.fileno(), _drain, reader)
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous)
        loop.remove_reader(reader.fileno())
        reader.close()
        writer.close()


def _drain(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while sock.recv(4096):
            pass


def stop_now(signum: int) -> None:
    """End the process at once with one line and exit code 128 + ``signum``.

    Writes with ``os.write``: the signal may have interrupted a write to ``sys.stderr``, and
    writing to it again from here could fail as a reentrant call.
    """
    name = signal.Signals(signum).name
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    line = f"meshsync: {name} while stopping: stopping now, without waiting for the sinks\n"
    with contextlib.suppress(OSError):
        os.write(2, line.encode())
    os._exit(128 + signum)
