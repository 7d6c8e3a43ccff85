"""Meshery's interactive requests: pod logs (``log-stream``), shells (``exec-request``) and the
list of open sessions (``active-exec``), to Go MeshSync's contract and safer than it.

The wire, as Go MeshSync and Meshery Server speak it (every message a ``broker.Message``:
``{"ObjectType", "EventType", "Request", "Object"}``):

* ``log-stream``: Payload ``{key: {id, name, namespace, container, follow, previous, taillines,
  stop}}``. Session ``logs.<ns>.<pod>.<container>``; the log, read with ``timestamps=true``,
  goes to ``meshery.meshsync.logs`` in chunks of at most 2,000 bytes as
  ``{"ObjectType": "log-stream", "EventType": "ADDED", "Object": {id, data, primary: <pod>,
  secondary: <container>}}``.
* ``exec-request``: Payload ``{key: {id, name, namespace, container, stop}}``. Session
  ``exec.<ns>.<pod>.<container>.<id>``: ``/bin/sh`` with a terminal; ``exec-input`` messages
  on ``input.<session>`` are written to its stdin with ``\\n`` appended, the output goes to
  ``<session>`` as ``exec-output`` chunks of at most 1 KiB, a failure as ``{"ObjectType":
  "error", "Object": "<message>"}``.
* ``active-exec``: the open session ids on ``active_sessions.exec`` (``ObjectType``
  ``active-exec``), published when a session starts or ends and every 10 s while any is open.

Safer than Go (which hands a shell in any pod to whoever can publish on the request subject):

* logs and exec are served only when NATS authentication is configured (and the server
  requires it), or when the user says so (``--pod-logs on``, ``--pod-exec on``); each can be
  switched off, and restricted to some namespaces;
* limits: concurrent sessions, idle time (exec), session length, output rate per session;
* every session is logged — what, for which requester id, start, end, why, bytes — never its
  keystrokes or output;
* each session runs in tasks of its own and reads only as fast as it may publish, so a slow
  consumer or a chatty pod holds up nothing else (the API server's stream waits instead).

The Kubernetes side is not here: the source offers it through the core as
:class:`meshsync_core.WorkloadStreams` (``SinkContext.workload_streams``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import click
import msgspec
import orjson

from meshsync_core import (
    ComponentMetrics,
    ConfigError,
    Duration,
    ExecSession,
    LogOptions,
    RateLimitedLog,
    StreamError,
    StreamTarget,
    WorkloadStreams,
    as_list,
)
from meshsync_core import streams as kinds

LOG_STREAM = "log-stream"
EXEC_REQUEST = "exec-request"
ACTIVE_EXEC = "active-exec"
ENTITIES = frozenset({LOG_STREAM, EXEC_REQUEST, ACTIVE_EXEC})

SUBJECT_LOGS = "meshery.meshsync.logs"
SUBJECT_ACTIVE = "active_sessions.exec"
#: Replicas tell each other of ``stop`` requests for sessions they do not run (ours only).
SUBJECT_STOP_RELAY = "meshsync.sessions.stop"
#: Go reads a log 2,000 bytes at a time and an exec's output 1 KiB at a time.
LOG_CHUNK = 2000
EXEC_CHUNK = 1024
ACTIVE_INTERVAL = 10.0
#: Go's cushion of stdin messages per exec session.
INPUT_QUEUE = 256
SHELL = ("/bin/sh",)

OBJECT_LOG = "log-stream"
OBJECT_EXEC_INPUT = "exec-input"
OBJECT_EXEC_OUTPUT = "exec-output"
OBJECT_ERROR = "error"
OBJECT_ACTIVE = "active-exec"

AUTO, ON, OFF = "auto", "on", "off"
_SWITCH_WORDS = {
    AUTO: AUTO,
    ON: ON, "true": ON, "yes": ON, "1": ON,
    OFF: OFF, "false": OFF, "no": OFF, "0": OFF,
}  # fmt: skip

Publish = Callable[[str, bytes], Awaitable[None]]
#: ``subscribe(subject, callback)`` -> a coroutine function that unsubscribes.
Subscribe = Callable[
    [str, Callable[[bytes], Awaitable[None]]], Awaitable[Callable[[], Awaitable[None]]]
]

_encode = msgspec.json.Encoder().encode
_UNSAFE_TOKEN = re.compile(r"[\s*>]")


# -- the wire -------------------------------------------------------------------------------------


class _Message(msgspec.Struct, gc=False):
    """Go's ``broker.Message``: every key always present (no ``omitempty``)."""

    ObjectType: str
    EventType: str
    Request: None
    Object: Any


class LogObject(msgspec.Struct, omit_defaults=True, gc=False):
    """Go's ``model.LogObject`` (every field ``omitempty``)."""

    id: str = ""
    data: str = ""
    primary: str = ""
    secondary: str = ""


def message(object_type: str, obj: Any, event_type: str = "") -> bytes:
    return _encode(_Message(object_type, event_type, None, obj))


def log_chunk(request_id: str, data: str, pod: str, container: str) -> bytes:
    """One piece of a log on ``meshery.meshsync.logs``."""
    return message(OBJECT_LOG, LogObject(request_id, data, pod, container), "ADDED")


def log_error(request_id: str, text: str, pod: str, container: str) -> bytes:
    """A log-stream failure on ``meshery.meshsync.logs``. Every log session shares that
    subject, so the error says whose it is: the ``LogObject`` shape, the message as ``data``
    (Meshery decodes every message there as a LogObject, so it shows in the right view)."""
    return message(OBJECT_ERROR, LogObject(request_id, text, pod, container))


def exec_output(text: str) -> bytes:
    return message(OBJECT_EXEC_OUTPUT, text)


def error(text: str) -> bytes:
    """``{"ObjectType": "error", "Object": "<message>"}`` (never ``EventType: ERROR``)."""
    return message(OBJECT_ERROR, text)


def active_list(ids: list[str]) -> bytes:
    return message(OBJECT_ACTIVE, ids)


class Utf8Chunks:
    """Cut a byte stream into text pieces of at most ``limit`` bytes, never inside a UTF-8
    character (Go cuts anywhere and sends U+FFFD for both halves); invalid bytes become U+FFFD.
    A character cut by the stream's own chunking waits (at most 3 bytes) for its rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._pending = b""

    def feed(self, data: bytes) -> list[str]:
        buf = self._pending + data if self._pending else data
        pieces: list[str] = []
        start, end = 0, len(buf)
        while end - start > self.limit:
            cut = start + self.limit
            safe = cut - _incomplete(buf, start, cut)
            cut = safe if safe > start else cut
            pieces.append(buf[start:cut].decode("utf-8", errors="replace"))
            start = cut
        keep = end - _incomplete(buf, start, end)
        if keep > start:
            pieces.append(buf[start:keep].decode("utf-8", errors="replace"))
        self._pending = buf[keep:]
        return pieces

    def flush(self) -> list[str]:
        """What is held back, at the end of the stream."""
        rest, self._pending = self._pending, b""
        return [rest.decode("utf-8", errors="replace")] if rest else []


def _incomplete(buf: bytes, start: int, end: int) -> int:
    """How many bytes at the end of ``buf[start:end]`` begin a character they do not finish."""
    index, steps = end - 1, 0
    while index >= start and steps < 3 and (buf[index] & 0xC0) == 0x80:
        index -= 1
        steps += 1
    if index < start or buf[index] < 0xC0:
        return 0
    lead = buf[index]
    need = 4 if lead >= 0xF0 else 3 if lead >= 0xE0 else 2
    have = end - index
    return have if have < need else 0


class RateLimit:
    """A token bucket of ``rate`` bytes a second (0: unlimited), a second's worth of burst."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.capacity = max(float(burst), rate)
        self._tokens = self.capacity
        self._at = time.monotonic()

    async def take(self, amount: int) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now
        self._tokens -= amount
        if self._tokens < 0:
            # wait until the debt is paid: the reader behind this waits too (backpressure)
            await asyncio.sleep(-self._tokens / self.rate)


# -- options and policy ---------------------------------------------------------------------------


class Switch(click.ParamType):
    """``auto`` / ``on`` / ``off`` (also true/false, yes/no, 1/0)."""

    name = "auto|on|off"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, bool):
            return ON if value else OFF
        word = _SWITCH_WORDS.get(str(value).strip().lower())
        if word is None:
            self.fail(f"{value!r} is not one of auto, on, off", param, ctx)
        return word


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([kmg])(i)?)?b?\s*$", re.IGNORECASE)


def parse_size(value: Any) -> int:
    """Bytes in ``1048576``, ``512KiB``, ``1MiB``, ``2MB``, ``100k`` (i: powers of 1024)."""
    if isinstance(value, bool):
        raise ConfigError(f"invalid size {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ConfigError(f"invalid size {value!r}: must not be negative")
        return int(value)
    match = _SIZE.match(str(value))
    if not match:
        raise ConfigError(f"invalid size {value!r}: use bytes, or a unit like 512KiB or 1MiB")
    number, unit, binary = match.groups()
    base = 1024 if binary else 1000
    power = "kmg".index(unit.lower()) + 1 if unit else 0
    return int(float(number) * base**power)


class ByteSize(click.ParamType):
    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return parse_size(value)
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


def session_options() -> list[click.Option]:
    """The NATS sink's options for logs and exec sessions (docs/nats.md, "Logs and shells")."""
    return [
        click.Option(
            ["--pod-logs", "pod_logs"],
            type=Switch(),
            default=AUTO,
            show_default=True,
            envvar="MESHSYNC_POD_LOGS",
            help="[nats] Serve Meshery's log-stream requests: auto = only when NATS "
            "authentication is configured and required by the server; on = also without; off.",
        ),
        click.Option(
            ["--pod-exec", "pod_exec"],
            type=Switch(),
            default=AUTO,
            show_default=True,
            envvar="MESHSYNC_POD_EXEC",
            help="[nats] Serve Meshery's exec-request (a shell in a pod): auto = only when NATS "
            "authentication is configured and required by the server; on = also without "
            "(anyone who can publish on NATS gets a shell); off.",
        ),
        click.Option(
            ["--pod-logs-namespaces", "pod_logs_namespaces"],
            multiple=True,
            envvar="MESHSYNC_POD_LOGS_NAMESPACES",
            help="[nats] Only serve logs of pods in these namespaces (comma-separated or "
            "repeated; default: all).",
        ),
        click.Option(
            ["--pod-exec-namespaces", "pod_exec_namespaces"],
            multiple=True,
            envvar="MESHSYNC_POD_EXEC_NAMESPACES",
            help="[nats] Only open shells in pods of these namespaces (default: all).",
        ),
        click.Option(
            ["--max-sessions", "max_sessions"],
            type=click.IntRange(min=1),
            default=16,
            show_default=True,
            envvar="MESHSYNC_MAX_SESSIONS",
            help="[nats] Log and exec sessions open at once; more are refused.",
        ),
        click.Option(
            ["--session-idle-timeout", "session_idle_timeout"],
            type=Duration(),
            default="15m",
            show_default=True,
            envvar="MESHSYNC_SESSION_IDLE_TIMEOUT",
            help="[nats] Close an exec session with no input and no output for this long "
            "(0: never).",
        ),
        click.Option(
            ["--session-max-duration", "session_max_duration"],
            type=Duration(),
            default="1h",
            show_default=True,
            envvar="MESHSYNC_SESSION_MAX_DURATION",
            help="[nats] End any log or exec session after this long (0: never).",
        ),
        click.Option(
            ["--session-output-rate", "session_output_rate"],
            type=ByteSize(),
            default="1MiB",
            show_default=True,
            envvar="MESHSYNC_SESSION_OUTPUT_RATE",
            help="[nats] Bytes a second one session may publish (512KiB, 1MiB; 0: unlimited); "
            "a faster log or shell is read only that fast.",
        ),
    ]


def _namespaces(value: Any) -> frozenset[str]:
    return frozenset(as_list(value))


@dataclass(frozen=True)
class SessionPolicy:
    """What may be served, and the limits; built from the options (validated)."""

    logs: str = AUTO
    exec: str = AUTO
    logs_namespaces: frozenset[str] = frozenset()
    exec_namespaces: frozenset[str] = frozenset()
    max_sessions: int = 16
    idle_timeout: float = 900.0
    max_duration: float = 3600.0
    output_rate: int = 1024 * 1024

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SessionPolicy:
        def word(key: str) -> str:
            value = options.get(key)
            if value is None:
                return AUTO
            if isinstance(value, bool):
                return ON if value else OFF
            word = _SWITCH_WORDS.get(str(value).strip().lower())
            if word is None:
                flag = "--" + key.replace("_", "-")
                raise ConfigError(f"{flag} must be auto, on or off, not {value!r}")
            return word

        def number(key: str, default: float, minimum: float) -> float:
            value = options.get(key)
            if value is None:
                return default
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
                flag = "--" + key.replace("_", "-")
                raise ConfigError(f"{flag} must be at least {minimum:g}, not {value!r}")
            return float(value)

        rate = options.get("session_output_rate")
        try:
            output_rate = parse_size(rate) if rate is not None else 1024 * 1024
        except ConfigError as exc:
            raise ConfigError(f"--session-output-rate: {exc}") from None
        return cls(
            logs=word("pod_logs"),
            exec=word("pod_exec"),
            logs_namespaces=_namespaces(options.get("pod_logs_namespaces")),
            exec_namespaces=_namespaces(options.get("pod_exec_namespaces")),
            max_sessions=int(number("max_sessions", 16, 1)),
            idle_timeout=number("session_idle_timeout", 900.0, 0),
            max_duration=number("session_max_duration", 3600.0, 0),
            output_rate=output_rate,
        )


def nats_authenticated(
    settings: Any, server_info: Mapping[str, Any] | None, tls_cert: Any = None
) -> tuple[bool, str]:
    """Whether only authenticated clients can reach the request subject, and if not, why.

    Credentials must be configured (user/password, token, NKEY, credentials file, a client
    certificate, or credentials in the URL) and, once connected, the server must say it
    requires them (``auth_required`` or ``tls_verify`` in its INFO): credentials given to a
    server that accepts anyone protect nothing.
    """
    configured = bool(
        getattr(settings, "user", None)
        or getattr(settings, "token", None)
        or getattr(settings, "creds", None)
        or getattr(settings, "nkey_seed", None)
        or tls_cert
        or any("@" in urlsplit(url).netloc for url in getattr(settings, "servers", ()) or ())
    )
    if not configured:
        return False, "no NATS authentication is configured"
    if server_info and not (server_info.get("auth_required") or server_info.get("tls_verify")):
        return False, "the NATS server does not require authentication"
    return True, ""


# -- requests -------------------------------------------------------------------------------------


class RequestProblem(ValueError):
    """A log-stream or exec-request entry we cannot act on; the message says why."""


@dataclass(frozen=True)
class LogRequest:
    key: str
    id: str = ""
    name: str = ""
    namespace: str = ""
    container: str = ""
    follow: bool = False
    previous: bool = False
    taillines: int = 0
    stop: bool = False

    @property
    def session_id(self) -> str:
        return f"logs.{self.namespace}.{self.name}.{self.container}"


@dataclass(frozen=True)
class ExecRequest:
    key: str
    id: str = ""
    name: str = ""
    namespace: str = ""
    container: str = ""
    stop: bool = False

    @property
    def session_id(self) -> str:
        return f"exec.{self.namespace}.{self.name}.{self.container}.{self.id}"


_STRINGS = ("id", "name", "namespace", "container")


def _entries(payload: Any, entity: str) -> list[tuple[str, Any]]:
    if not isinstance(payload, dict) or not payload:
        raise RequestProblem(
            f'{entity} needs "Payload": {{"<key>": {{"name": ..., "namespace": ..., ...}}}}'
        )
    return [(str(key), value) for key, value in payload.items()]


def _fields(key: str, entry: Any, bools: tuple[str, ...], ints: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise RequestProblem(f"entry {key!r} is not an object")
    out: dict[str, Any] = {"key": key}
    for name in _STRINGS:
        value = entry.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise RequestProblem(f"entry {key!r}: {name} must be a string")
        out[name] = value
    for name in bools:
        value = entry.get(name)
        if value is None:
            continue
        if not isinstance(value, bool):
            raise RequestProblem(f"entry {key!r}: {name} must be true or false")
        out[name] = value
    for name in ints:
        value = entry.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
            raise RequestProblem(f"entry {key!r}: {name} must be a whole number, 0 or more")
        out[name] = value
    return out


def parse_log_requests(payload: Any) -> list[LogRequest | tuple[str, dict[str, Any], str]]:
    """Each entry as a :class:`LogRequest`, or ``(key, what could be read, problem)``."""
    out: list[LogRequest | tuple[str, dict[str, Any], str]] = []
    for key, entry in _entries(payload, LOG_STREAM):
        try:
            fields = _fields(key, entry, ("follow", "previous", "stop"), ("taillines",))
        except RequestProblem as exc:
            out.append((key, entry if isinstance(entry, dict) else {}, str(exc)))
            continue
        out.append(LogRequest(**fields))
    return out


def parse_exec_requests(payload: Any) -> list[ExecRequest | tuple[str, dict[str, Any], str]]:
    out: list[ExecRequest | tuple[str, dict[str, Any], str]] = []
    for key, entry in _entries(payload, EXEC_REQUEST):
        try:
            fields = _fields(key, entry, ("stop",), ())
        except RequestProblem as exc:
            out.append((key, entry if isinstance(entry, dict) else {}, str(exc)))
            continue
        out.append(ExecRequest(**fields))
    return out


def subject_problem(request: ExecRequest) -> str | None:
    """Why the session's subjects cannot exist, or None (each part non-empty, no spaces or
    wildcards; dots inside a pod name are fine: both sides build the same subject)."""
    missing = [
        name for name in ("namespace", "name", "container", "id") if not getattr(request, name)
    ]
    if missing:
        return f"exec-request entry {request.key!r} lacks {', '.join(missing)}"
    for name in ("namespace", "name", "container", "id"):
        value = getattr(request, name)
        if (
            _UNSAFE_TOKEN.search(value)
            or value.startswith(".")
            or value.endswith(".")
            or (".." in value)
        ):
            return f"exec-request entry {request.key!r}: {name} {value!r} cannot be in a subject"
    return None


# -- sessions -------------------------------------------------------------------------------------


class Session:
    """One open log or exec session: what it is, its task, and its counters."""

    def __init__(self, kind: str, session_id: str, target: StreamTarget, requester: str) -> None:
        self.kind = kind
        self.id = session_id
        self.target = target
        self.requester = requester
        self.started = time.monotonic()
        self.last_activity = self.started
        self.bytes_out = 0
        self.bytes_in = 0
        self.inputs = 0
        self.dropped = 0
        self.end_reason = ""
        self.task: asyncio.Task[None] | None = None
        self.stopped = asyncio.Event()
        #: Run when the session ends, whatever ended it (the input subscription's unsubscribe).
        self.cleanups: list[Callable[[], Awaitable[None]]] = []

    def end(self, reason: str) -> None:
        """Ask the session to end (its task is cancelled and cleans up)."""
        self.note_end(reason)
        self.stopped.set()

    def note_end(self, reason: str) -> None:
        """Say why the session is ending by itself (the first reason given sticks)."""
        if not self.end_reason:
            self.end_reason = reason


@dataclass(frozen=True)
class _Kind:
    """How a kind of session is named in warnings and answers."""

    kind: str  # Session.kind
    entity: str  # the request entity, in "... request lacks ..."
    running: str  # in "... already runs"
    refusing: str  # in "refusing ... <id>: <problem>"
    streams: str  # in "no source of this MeshSync can give pod <streams>s"
    outside: str  # a namespace that is not served, formatted with its repr
    namespace_key: str


_LOGS = _Kind(
    "logs",
    "log-stream",
    running="log-stream",
    refusing="log-stream",
    streams="log",
    outside="logs of pods in namespace {!r} are not served here",
    namespace_key="logs-namespace",
)
_EXEC = _Kind(
    "exec",
    "exec-request",
    running="exec session",
    refusing="exec",
    streams="shell",
    outside="shells in namespace {!r} are not allowed here",
    namespace_key="exec-namespace",
)


class SessionManager:
    """Starts, limits, lists and ends log and exec sessions for the NATS sink."""

    def __init__(
        self,
        *,
        log: logging.Logger,
        publish: Publish,
        subscribe: Subscribe,
        streams: Callable[[], WorkloadStreams | None],
        authenticated: Callable[[], tuple[bool, str]],
        policy: SessionPolicy,
        metrics: ComponentMetrics | None = None,
    ) -> None:
        self.log = log
        self.publish = publish
        self.subscribe = subscribe
        self.streams = streams
        self.authenticated = authenticated
        self.policy = policy
        self.metrics = metrics
        self.sessions: dict[str, Session] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Future[None]] = set()
        self._warned: set[str] = set()
        self._limited = RateLimitedLog(self.log)
        self._closing = False
        self._relay_subscribed = False
        self._relay_lock = asyncio.Lock()
        self.refused = 0
        if metrics is not None:
            metrics.describe("sessions_open", "Log and exec sessions open now.")
            metrics.describe("sessions_started_total", "Log and exec sessions started.")
            metrics.describe("sessions_refused_total", "Log and exec requests refused.")
            metrics.set_function("sessions_open", lambda: float(len(self.sessions)))

    # -- warnings ----------------------------------------------------------------------------

    def _warn_once(self, key: str, text: str) -> None:
        """A warning the first time (per key, per process), debug afterwards."""
        if key in self._warned:
            self.log.debug("%s", text)
        else:
            self._warned.add(key)
            self.log.warning("%s", text)

    def _warn_limited(self, text: str, key: str | None = None) -> None:
        """At most one warning a minute per ``key`` (the text itself by default), so that a
        flood of bad requests is one line, not thousands; repeats go to debug."""
        self._limited.warning("%s", text, key=key or text)

    def _count(self, name: str) -> None:
        if self.metrics is not None:
            self.metrics.inc(name)

    async def _send(self, subject: str, data: bytes) -> bool:
        try:
            await self.publish(subject, data)
        except Exception as exc:  # NATS away: the requester cannot hear us either
            self.log.debug("could not publish on %s: %s", subject, exc)
            return False
        return True

    # -- dispatch ----------------------------------------------------------------------------

    async def handle(self, entity: str, payload: Any) -> None:
        """One request of the three entities (the sink's request handler calls this)."""
        await self._ensure_relay()
        if entity == LOG_STREAM:
            await self.handle_logs(payload)
        elif entity == EXEC_REQUEST:
            await self.handle_exec(payload)
        elif entity == ACTIVE_EXEC:
            await self.publish_active()

    async def _stop(self, session_id: str) -> None:
        """End a session on ``stop``. Several replicas share the request subject (a queue
        group), so the stop may reach one that does not run the session: it tells the others."""
        session = self.sessions.get(session_id)
        if session is not None:
            session.end("stopped by request")
        else:
            await self._send(SUBJECT_STOP_RELAY, session_id.encode())

    async def _ensure_relay(self) -> None:
        """Listen for stops relayed by other replicas (before this one runs any session)."""
        if self._relay_subscribed:
            return
        async with self._relay_lock:
            if self._relay_subscribed:
                return
            try:
                await self.subscribe(SUBJECT_STOP_RELAY, self._on_relayed_stop)
            except Exception as exc:  # not connected right now: next request tries again
                self.log.debug("cannot subscribe to %s: %s", SUBJECT_STOP_RELAY, exc)
                return
            self._relay_subscribed = True

    async def _on_relayed_stop(self, data: bytes) -> None:
        session = self.sessions.get(data.decode(errors="replace"))
        if session is not None:
            session.end("stopped by request (through another replica)")

    def _allowed(self, setting: str) -> tuple[bool, str]:
        if setting == OFF:
            return False, "switched off"
        if setting == ON:
            return True, ""
        return self.authenticated()

    # -- logs --------------------------------------------------------------------------------

    async def handle_logs(self, payload: Any) -> None:
        try:
            entries = parse_log_requests(payload)
        except RequestProblem as exc:
            self._warn_limited(f"ignoring malformed log-stream request: {exc}")
            await self._send(
                SUBJECT_LOGS, log_error("", f"malformed log-stream request: {exc}", "", "")
            )
            return
        for entry in entries:
            if isinstance(entry, tuple):
                _key, raw, problem = entry
                self._warn_limited(f"ignoring log-stream entry: {problem}", "logs-malformed")
                await self._log_refusal(raw, f"malformed log-stream request: {problem}")
                continue
            await self._log_request(entry)

    async def _log_refusal(self, request: LogRequest | Mapping[str, Any], text: str) -> None:
        self.refused += 1
        self._count("sessions_refused_total")
        if isinstance(request, LogRequest):
            rid, pod, container = request.id, request.name, request.container
        else:
            rid, pod, container = (
                str(request.get(k) or "") if isinstance(request.get(k), str) else ""
                for k in ("id", "name", "container")
            )
        await self._send(SUBJECT_LOGS, log_error(rid, text, pod, container))

    async def _log_request(self, request: LogRequest) -> None:
        session_id = request.session_id
        if request.stop:
            await self._stop(session_id)
            return
        allowed, why = self._allowed(self.policy.logs)
        if not allowed:
            self._warn_once(
                "logs-refused",
                f"refusing log-stream requests: {why}; configure NATS authentication or "
                "start with --pod-logs on (this warning is shown once)",
            )
            await self._log_refusal(request, f"pod logs are not served by this MeshSync ({why})")
            return
        admitted = await self._admit(request, _LOGS, self.policy.logs_namespaces)
        if admitted is not None:
            session, streams = admitted
            self._start(session, self._run_logs(session, streams, request))

    async def _admit(
        self, request: LogRequest | ExecRequest, kind: _Kind, namespaces: frozenset[str]
    ) -> tuple[Session, WorkloadStreams] | None:
        """The checks a log or exec request passes after its own: not a duplicate, complete,
        room for it, an allowed namespace, a source that can serve it. Refused (warned about
        and answered) or ignored: None; else its session, not started, and the streams."""
        session_id = request.session_id
        if session_id in self.sessions:
            self.log.debug(
                "%s %s already runs: duplicate request ignored", kind.running, session_id
            )
            return None
        problem, key = self._common_problem(request.namespace, request.name, kind.entity)
        if problem is None and namespaces and (request.namespace not in namespaces):
            problem, key = kind.outside.format(request.namespace), kind.namespace_key
        if problem is not None:
            self._warn_limited(f"refusing {kind.refusing} {session_id}: {problem}", key)
            await self._refuse(request, problem)
            return None
        streams = await self._streams_or_refuse(request, kind.streams)
        if streams is None:
            return None
        target = StreamTarget(request.namespace, request.name, request.container)
        return Session(kind.kind, session_id, target, request.id), streams

    async def _refuse(self, request: LogRequest | ExecRequest, text: str) -> None:
        if isinstance(request, LogRequest):
            await self._log_refusal(request, text)
        else:
            await self._exec_refusal(request, text)

    def _common_problem(
        self, namespace: str, name: str, entity: str
    ) -> tuple[str | None, str | None]:
        """Why a request cannot start a session, and the key its warnings are limited by."""
        if not namespace or not name:
            missing = " and ".join(
                n for n, v in (("namespace", namespace), ("name", name)) if not v
            )
            return f"{entity} request lacks {missing}", f"{entity}-incomplete"
        if self._closing:
            return "MeshSync is shutting down", "closing"
        if len(self.sessions) >= self.policy.max_sessions:
            return (
                f"too many sessions open ({self.policy.max_sessions}, --max-sessions): "
                "try again when one has ended"
            ), "max-sessions"
        return None, None

    async def _streams_or_refuse(
        self, request: LogRequest | ExecRequest, what: str
    ) -> WorkloadStreams | None:
        streams = self.streams()
        if streams is None:
            text = f"no source of this MeshSync can give pod {what}s"
            self._warn_once(f"no-streams-{what}", text)
            await self._refuse(request, text)
        return streams

    async def _run_logs(
        self, session: Session, streams: WorkloadStreams, request: LogRequest
    ) -> None:
        options = LogOptions(
            follow=request.follow,
            previous=request.previous,
            tail_lines=request.taillines,  # Go's contract: 0 or missing = no history
            timestamps=True,
        )
        pod, container = request.name, request.container
        reader = streams.stream_logs(session.target, options)
        try:
            await self._relay(
                session,
                reader,
                LOG_CHUNK,
                SUBJECT_LOGS,
                lambda text: log_chunk(request.id, text, pod, container),
            )
            session.note_end("end of log")
        except StreamError as exc:
            session.note_end(f"failed: {exc}")
            self._stream_warning(exc, "logs", "get pods/log", "logs.enabled")
            await self._send(SUBJECT_LOGS, log_error(request.id, str(exc), pod, container))

    # -- exec --------------------------------------------------------------------------------

    async def handle_exec(self, payload: Any) -> None:
        try:
            entries = parse_exec_requests(payload)
        except RequestProblem as exc:
            self._warn_limited(f"ignoring malformed exec-request: {exc}")
            return
        for entry in entries:
            if isinstance(entry, tuple):
                key, raw, problem = entry
                self._warn_limited(f"ignoring exec-request entry: {problem}", "exec-malformed")
                try:
                    partial = ExecRequest(
                        key, **{k: raw[k] for k in _STRINGS if isinstance(raw.get(k), str)}
                    )
                except TypeError:
                    continue
                await self._exec_refusal(partial, f"malformed exec-request: {problem}")
                continue
            await self._exec_request(entry)

    async def _exec_refusal(self, request: ExecRequest, text: str) -> None:
        """An error to the requester on the session's subject, when that subject can exist."""
        self.refused += 1
        self._count("sessions_refused_total")
        if subject_problem(request) is None:
            await self._send(request.session_id, error(text))

    async def _exec_request(self, request: ExecRequest) -> None:
        session_id = request.session_id
        if request.stop:
            await self._stop(session_id)
            return
        allowed, why = self._allowed(self.policy.exec)
        if not allowed:
            self._warn_once(
                "exec-refused",
                f"refusing exec-request (a shell in a pod): {why}; configure NATS "
                "authentication or, if everyone who can reach NATS may have a shell in any "
                "pod, start with --pod-exec on (this warning is shown once)",
            )
            await self._exec_refusal(request, f"exec is not served by this MeshSync ({why})")
            return
        bad_subject = subject_problem(request)
        if bad_subject is not None:
            self.refused += 1
            self._count("sessions_refused_total")
            self._warn_limited(f"ignoring {bad_subject} (nowhere to answer)")
            return
        admitted = await self._admit(request, _EXEC, self.policy.exec_namespaces)
        if admitted is None:
            return
        session, streams = admitted
        self.sessions[session_id] = session  # reserved: a duplicate sees it from now on
        inputs: asyncio.Queue[bytes] = asyncio.Queue(maxsize=INPUT_QUEUE)
        try:
            # Subscribed before the session is announced on active_sessions.exec: a client
            # that waits for the announcement knows its input is heard.
            session.cleanups.append(
                await self.subscribe(f"input.{session_id}", self._input_handler(session, inputs))
            )
        except Exception as exc:
            self.sessions.pop(session_id, None)
            self._warn_limited(f"exec {session_id}: cannot subscribe to its input: {exc}")
            await self._exec_refusal(request, f"cannot listen for input: {exc}")
            return
        self._start(session, self._run_exec(session, streams, inputs))

    def _input_handler(
        self, session: Session, inputs: asyncio.Queue[bytes]
    ) -> Callable[[bytes], Awaitable[None]]:
        """What happens to a message on ``input.<session>``: exec-input text goes to the shell
        (never to the log), anything else is ignored as Go does."""

        async def on_input(data: bytes) -> None:
            try:
                msg = orjson.loads(data)
            except orjson.JSONDecodeError:
                self._warn_limited(f"ignoring input for {session.id}: not JSON")
                return
            if not isinstance(msg, dict) or msg.get("ObjectType") != OBJECT_EXEC_INPUT:
                return  # Go ignores anything but exec-input
            text = msg.get("Object")
            if not isinstance(text, str):
                self._warn_limited(f"ignoring input for {session.id}: Object is not a string")
                return
            try:
                inputs.put_nowait(text.encode() + b"\n")
            except asyncio.QueueFull:
                session.dropped += len(text) + 1
                self._warn_limited(
                    f"exec session {session.id}: input arrives faster than the shell takes it; "
                    "dropped some"
                )

        return on_input

    async def _run_exec(
        self, session: Session, streams: WorkloadStreams, inputs: asyncio.Queue[bytes]
    ) -> None:
        exec_session: ExecSession | None = None
        try:
            try:
                exec_session = await streams.open_exec(session.target, SHELL, tty=True)
            except StreamError as exc:
                session.note_end(f"failed: {exc}")
                self._stream_warning(exc, "exec", "create pods/exec", "exec.enabled")
                await self._send(session.id, error(str(exc)))
                return
            self.log.info(
                "exec session %s open (pod %s/%s, container %s, requester id %r, %s)",
                session.id,
                session.target.namespace,
                session.target.name,
                session.target.container,
                session.requester,
                getattr(exec_session, "protocol", "") or "stream",
            )
            writer = asyncio.create_task(self._pump_input(session, exec_session, inputs))
            try:
                await self._pump_output(session, exec_session)
            finally:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await writer
            failure = exec_session.failure
            if failure and not session.stopped.is_set():
                session.note_end(f"failed: {failure}")
                await self._send(session.id, error(failure))
            else:
                session.note_end("the shell ended")
        finally:
            if exec_session is not None:
                with contextlib.suppress(Exception):
                    await exec_session.close()

    async def _pump_input(
        self, session: Session, exec_session: ExecSession, inputs: asyncio.Queue[bytes]
    ) -> None:
        while True:
            data = await inputs.get()
            try:
                await exec_session.send(data)
            except StreamError:
                return
            session.inputs += 1
            session.bytes_in += len(data)
            session.last_activity = time.monotonic()

    async def _pump_output(self, session: Session, exec_session: ExecSession) -> None:
        await self._relay(session, exec_session.output(), EXEC_CHUNK, session.id, exec_output)

    async def _relay(
        self,
        session: Session,
        output: AsyncIterator[bytes],
        chunk: int,
        subject: str,
        message: Callable[[str], bytes],
    ) -> None:
        """A session's output (pod logs, a shell's output) to the requester on ``subject``:
        whole UTF-8 text in chunks of at most ``chunk`` bytes, each as ``message(text)``, at
        the output rate; what cannot be published is counted as dropped."""
        chunks = Utf8Chunks(chunk)
        limit = RateLimit(self.policy.output_rate, chunk)

        async def publish(text: str) -> None:
            size = len(text.encode())
            await limit.take(size)
            if await self._send(subject, message(text)):
                session.bytes_out += size
            else:
                session.dropped += size

        async with contextlib.aclosing(output):  # type: ignore[type-var]
            async for data in output:
                session.last_activity = time.monotonic()
                for text in chunks.feed(data):
                    await publish(text)
        for text in chunks.flush():
            await publish(text)

    def _stream_warning(self, exc: StreamError, what: str, permission: str, value: str) -> None:
        if exc.kind == kinds.FORBIDDEN:
            self._warn_once(
                f"forbidden-{what}",
                f"the API server refuses {what} to MeshSync: {exc}; grant {permission} "
                f"(Helm value {value}=true, or the optional rule in deploy/kubernetes) "
                "(this warning is shown once)",
            )
        else:  # one line a minute per kind of failure, however many requests fail so
            self._warn_limited(f"{what} session failed: {exc}", f"{what}-{exc.kind}")

    # -- lifecycle ---------------------------------------------------------------------------

    def _start(self, session: Session, work: Awaitable[None]) -> None:
        self.sessions[session.id] = session  # before any await: a duplicate sees it
        self._count("sessions_started_total")
        self.log.info(
            "%s session %s started (pod %s/%s, container %s, requester id %r)",
            session.kind,
            session.id,
            session.target.namespace,
            session.target.name,
            session.target.container or "(default)",
            session.requester,
        )
        session.task = asyncio.ensure_future(self._supervise(session, work))
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.ensure_future(self._tick())
        self._background(self.publish_active())

    def _background(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _supervise(self, session: Session, work: Awaitable[None]) -> None:
        """Run the session until it ends by itself, is stopped, or hits a limit."""
        worker = asyncio.ensure_future(work)
        stopper = asyncio.ensure_future(session.stopped.wait())
        try:
            while not worker.done():
                timeout = self._next_deadline(session) - time.monotonic()
                await asyncio.wait(
                    {worker, stopper},
                    timeout=max(timeout, 0.0) if timeout != float("inf") else None,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if worker.done():
                    break
                if session.stopped.is_set():
                    worker.cancel()
                    break
                reason = self._limit_reached(session)
                if reason:
                    session.end(reason)
                    worker.cancel()
                    await asyncio.gather(worker, return_exceptions=True)
                    # Out of the list before the client hears it is closed: a session list
                    # it asks for next must not name it (the cleanup below can take a while).
                    self.sessions.pop(session.id, None)
                    await self._tell_limit(session, reason)
                    break
            await asyncio.gather(worker, return_exceptions=True)
            if worker.done() and not worker.cancelled() and worker.exception() is not None:
                exc = worker.exception()
                session.end(f"failed: {exc}")
                self.log.error("%s session %s failed: %r", session.kind, session.id, exc)
        except asyncio.CancelledError:
            session.end("MeshSync is shutting down")
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
            raise
        finally:
            stopper.cancel()
            for cleanup in session.cleanups:
                with contextlib.suppress(Exception):
                    await cleanup()
            self.sessions.pop(session.id, None)
            self._audit(session)
            if not self._closing:
                self._background(self.publish_active())

    def _next_deadline(self, session: Session) -> float:
        deadline = float("inf")
        if self.policy.max_duration > 0:
            deadline = session.started + self.policy.max_duration
        if session.kind == "exec" and self.policy.idle_timeout > 0:
            deadline = min(deadline, session.last_activity + self.policy.idle_timeout)
        return deadline

    def _limit_reached(self, session: Session) -> str:
        now = time.monotonic()
        if self.policy.max_duration > 0 and now >= session.started + self.policy.max_duration:
            return f"reached the maximum session length ({_seconds(self.policy.max_duration)})"
        if (
            session.kind == "exec"
            and self.policy.idle_timeout > 0
            and now >= session.last_activity + self.policy.idle_timeout
        ):
            return f"idle for {_seconds(self.policy.idle_timeout)}"
        return ""

    async def _tell_limit(self, session: Session, reason: str) -> None:
        text = f"session closed: {reason}"
        if session.kind == "exec":
            await self._send(session.id, error(text))
        else:
            await self._send(
                SUBJECT_LOGS,
                log_error(session.requester, text, session.target.name, session.target.container),
            )

    def _audit(self, session: Session) -> None:
        extra = f", {session.dropped} byte(s) not delivered" if session.dropped else ""
        inputs = (
            f"{session.inputs} input(s) / {session.bytes_in} byte(s) in, "
            if session.kind == "exec"
            else ""
        )
        self.log.info(
            "%s session %s ended after %.1fs (%s): %s%d byte(s) out%s",
            session.kind,
            session.id,
            time.monotonic() - session.started,
            session.end_reason or "ended",
            inputs,
            session.bytes_out,
            extra,
        )

    async def publish_active(self) -> None:
        """The open session ids on ``active_sessions.exec``."""
        await self._send(SUBJECT_ACTIVE, active_list(sorted(self.sessions)))

    async def _tick(self) -> None:
        while self.sessions and not self._closing:
            await asyncio.sleep(ACTIVE_INTERVAL)
            if self.sessions and not self._closing:
                await self.publish_active()

    async def close(self) -> None:
        """End every session (shutdown): each is logged; the list is published empty."""
        self._closing = True
        tasks = [s.task for s in self.sessions.values() if s.task is not None]
        for session in list(self.sessions.values()):
            session.end("MeshSync is shutting down")
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.publish_active()
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _seconds(value: float) -> str:
    if value >= 3600 and value % 3600 == 0:
        return f"{value / 3600:g}h"
    if value >= 60 and value % 60 == 0:
        return f"{value / 60:g}m"
    return f"{value:g}s"
