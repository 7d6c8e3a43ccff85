"""``pods/log`` and ``pods/exec``, as kube-apiserver v1.37 serves them in front of a kubelet.

What the real server does was recorded against kube-apiserver with kwok's node server behind it
(``tests/realkube/test_kwok_logs_exec.py``); ``tests/k8s_fake/test_logs_exec.py`` holds this
module to the same assertions.

Logs come from :class:`LogBook`, filled by the programmatic API (``server.append_log`` ...):
``GET .../pods/<name>/log`` answers ``text/plain`` in chunks, with ``container`` (required when
the pod has several), ``follow`` (new lines as they are appended, until the pod is deleted, its
container restarts, the server stops or the client goes away), ``previous``, ``timestamps``
(RFC3339 with nine fractional digits, as the kubelet writes them), ``tailLines``,
``limitBytes``, ``sinceSeconds`` and ``sinceTime``; query values are parsed and validated as
kube does (bad integers 400, negative ``tailLines`` 422 ...).

Exec is a WebSocket on ``GET .../pods/<name>/exec`` speaking the remotecommand channel
protocols: ``v5.channel.k8s.io`` (preferred whenever offered, as kube-apiserver's stream
translator does), ``v4.channel.k8s.io``, and the older ``channel.k8s.io`` /
``base64.channel.k8s.io`` / ``v4.base64.channel.k8s.io``. Every binary frame is one channel
byte and its data: 0 stdin, 1 stdout, 2 stderr, 3 the final Status (JSON), 4 terminal resize
(``{"Width":..,"Height":..}``); in v5 a client frame ``[255, n]`` closes channel n (255,0 ends
stdin). The server first sends an empty frame on the lowest output channel it opened (stdout,
else stderr, else 3), then output, then one Status on channel 3, then a close frame (1000).
The Status bodies differ per protocol because, behind a real apiserver, v5 is answered by the
apiserver's translator (``metav1.Status``: ``{"metadata":{},"status":"Success"}``) and older
protocols by the node's streaming server (``{"status":"Success"}``).

Commands run in a small built-in interpreter, never a real shell: ``echo``, ``cat`` (stdin to
stdout), ``env``/``printenv`` (the container's ``env`` values from the pod spec plus
``HOSTNAME``, ``PATH``, ``HOME``), ``read``, ``exit N``, ``true``, ``false``, ``pwd``,
``hostname``, ``sleep``, ``stty size``, ``$VAR``/``$?`` expansion, ``;``/``&&``/``||`` and
``>&2``; ``sh -c '<script>'`` runs a script, a bare ``sh`` runs the lines it reads from stdin.
A Python callable registered for a pod (``server.set_exec_handler``) replaces the interpreter.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import inspect
import itertools
import re
import shlex
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import WSMsgType, hdrs, web

from .errors import ApiError, bad_request, not_found
from .store import Watcher, decode
from .watch import make_notifier

if TYPE_CHECKING:
    from .server import FakeApiServer

# -- the wire ------------------------------------------------------------------------------

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V4_BASE64 = "v4.base64.channel.k8s.io"
V1 = "channel.k8s.io"
V1_BASE64 = "base64.channel.k8s.io"
#: Served subprotocols. v5 wins whenever offered, whatever the client's order (kube-apiserver
#: translates every request that offers it); otherwise the request reaches the node's server,
#: which takes the client's first supported one.
PROTOCOLS = (V5, V4, V4_BASE64, V1, V1_BASE64)
STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE_SIGNAL = 255  # v5 only: [255, channel] from the client closes that channel

_TEXT = "text/plain"
_INTEGER = re.compile(r"[+-]?[0-9]+")
_LOCAL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?")
_ZONE = re.compile(r"Z|[+-][0-9]{2}:[0-9]{2}")
_NO_CACHE = "no-cache, private"
_NS = 1_000_000_000

ExecHandler = Callable[["ExecSession"], "Awaitable[int | None] | int | None"]


def _v5_status(status: str, **rest: Any) -> bytes:
    return orjson.dumps({"metadata": {}, "status": status, **rest})


def exit_status(protocol: str, code: int, command: list[str]) -> bytes | None:
    """Channel 3's body when the command ended with ``code`` (None: send nothing)."""
    if protocol == V5:
        if code == 0:
            return _v5_status("Success")
        return _v5_status(
            "Failure",
            message=(
                "command terminated with non-zero exit code: command terminated with exit "
                f"code {code}"
            ),
            reason="NonZeroExitCode",
            details={"causes": [{"reason": "ExitCode", "message": str(code)}]},
        )
    message = (
        "command terminated with non-zero exit code: error executing command "
        f"[{' '.join(command)}], exit code {code}"
    )  # the node's streaming server quoting the runtime (containerd) verbatim
    if protocol in (V4, V4_BASE64):
        if code == 0:
            return orjson.dumps({"status": "Success"})
        return orjson.dumps(
            {
                "status": "Failure",
                "message": message,
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
            }
        )
    return None if code == 0 else message.encode()


def internal_error(protocol: str, inner: str) -> bytes:
    """Channel 3's body for a failure that is not an exit code (``inner`` as the node says it;
    the v5 translator wraps it once more, as kube-apiserver does)."""
    if protocol == V5:
        return _v5_status(
            "Failure",
            message=f"Internal error occurred: {inner}",
            reason="InternalError",
            details={"causes": [{"message": inner}]},
            code=500,
        )
    if protocol in (V4, V4_BASE64):
        return orjson.dumps(
            {"status": "Failure", "message": inner, "reason": "InternalError", "code": 500}
        )
    return inner.encode()


def choose_protocol(offered: str) -> str | None:
    """The subprotocol to answer with, or None when none is supported ("" = none offered)."""
    names = [p.strip() for p in offered.split(",") if p.strip()]
    if not names:
        return ""
    if V5 in names:
        return V5
    return next((name for name in names if name in PROTOCOLS), None)


# -- logs ------------------------------------------------------------------------------------


def format_timestamp(ns: int) -> str:
    """RFC3339 with nine fractional digits, UTC (the kubelet's ``timestamps=true`` prefix)."""
    seconds, frac = divmod(ns, _NS)
    stamp = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return f"{stamp:%Y-%m-%dT%H:%M:%S}.{frac:09d}Z"


def _to_ns(value: datetime.datetime | float | int | None) -> int:
    if value is None:
        return time.time_ns()
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return int(value.timestamp()) * _NS + value.microsecond * 1000
    return int(value * _NS) if isinstance(value, float) else int(value)


_EPOCHS = itertools.count(1)


@dataclass
class _ContainerLog:
    current: list[tuple[int, str]] = field(default_factory=list)
    previous: list[tuple[int, str]] | None = None
    #: Changes when the container restarts or its log is cleared: followers then stop.
    epoch: int = field(default_factory=lambda: next(_EPOCHS))
    followers: set[Callable[[], None]] = field(default_factory=set)


class LogBook:
    """Every container's log lines (current and previous), thread-safe, with followers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logs: dict[tuple[str, str, str], _ContainerLog] = {}

    def _get(self, key: tuple[str, str, str]) -> _ContainerLog:
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = _ContainerLog()
        return log

    def append(
        self,
        key: tuple[str, str, str],
        text: str,
        *,
        previous: bool = False,
        timestamp: datetime.datetime | float | int | None = None,
    ) -> None:
        lines = text.split("\n")
        if text.endswith("\n"):
            lines.pop()
        ns = _to_ns(timestamp)
        with self._lock:
            log = self._get(key)
            if previous:
                if log.previous is None:
                    log.previous = []
                log.previous.extend((ns, line) for line in lines)
                return
            log.current.extend((ns, line) for line in lines)
            followers = list(log.followers)
        for notify in followers:
            notify()

    def restart(self, key: tuple[str, str, str]) -> None:
        with self._lock:
            log = self._get(key)
            log.previous, log.current = log.current, []
            log.epoch = next(_EPOCHS)
            followers = list(log.followers)
        for notify in followers:
            notify()

    def lines(self, key: tuple[str, str, str], previous: bool = False) -> list[str] | None:
        with self._lock:
            log = self._logs.get(key)
            if log is None:
                return None if previous else []
            chosen = log.previous if previous else log.current
            return None if chosen is None else [text for _, text in chosen]

    def clear(self, namespace: str, pod: str) -> None:
        with self._lock:
            for key in [k for k in self._logs if k[:2] == (namespace, pod)]:
                log = self._logs.pop(key)
                for notify in log.followers:
                    notify()

    def snapshot(
        self, key: tuple[str, str, str], previous: bool, follower: Callable[[], None] | None
    ) -> tuple[list[tuple[int, str]] | None, int]:
        """The lines now (None: no previous container) and the log's epoch; registers the
        follower in the same critical section, so no line falls between the two."""
        with self._lock:
            log = self._get(key)
            if follower is not None:
                log.followers.add(follower)
            chosen = log.previous if previous else log.current
            return (None if chosen is None else list(chosen)), log.epoch

    def since(self, key: tuple[str, str, str], index: int) -> tuple[list[tuple[int, str]], int]:
        with self._lock:
            log = self._get(key)
            return log.current[index:], log.epoch

    def unfollow(self, key: tuple[str, str, str], follower: Callable[[], None]) -> None:
        with self._lock:
            log = self._logs.get(key)
            if log is not None:
                log.followers.discard(follower)


@dataclass
class LogOptions:
    container: str
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None
    since_ns: int | None = None

    @classmethod
    def parse(cls, query: Mapping[str, str], name: str) -> LogOptions:
        """Query values converted as kube-apiserver converts them, then its validation."""
        since_seconds = _int(query, "sinceSeconds")
        since_time = _time(query, "sinceTime")
        opts = cls(
            container=query.get("container", ""),
            follow=_flag(query, "follow"),
            previous=_flag(query, "previous"),
            timestamps=_flag(query, "timestamps"),
            tail_lines=_int(query, "tailLines"),
            limit_bytes=_int(query, "limitBytes"),
        )
        causes: list[tuple[str, str, str]] = []  # (reason, field, message)
        if opts.tail_lines is not None and opts.tail_lines < 0:
            causes.append(_invalid("tailLines", opts.tail_lines, "greater than or equal to 0"))
        if opts.limit_bytes is not None and opts.limit_bytes < 1:
            causes.append(_invalid("limitBytes", opts.limit_bytes, "greater than 0"))
        if since_seconds is not None and since_time is not None:
            why = "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"
            causes.append(("FieldValueForbidden", "[]", why))  # kube's field.NewPath("")
        elif since_seconds is not None:
            if since_seconds < 1:
                causes.append(_invalid("sinceSeconds", since_seconds, "greater than 0"))
            opts.since_ns = time.time_ns() - since_seconds * _NS
        elif since_time is not None:
            opts.since_ns = since_time
        if "stream" in query:
            causes.append(("FieldValueForbidden", "stream", "Forbidden: may not be specified"))
        if causes:
            raise _invalid_options(name, causes)
        return opts

    def render(self, lines: list[tuple[int, str]]) -> bytes:
        if self.tail_lines is not None:
            lines = lines[-self.tail_lines :] if self.tail_lines else []
        return b"".join(self.line(ns, text) for ns, text in lines if self.keeps(ns))

    def keeps(self, ns: int) -> bool:
        return self.since_ns is None or ns >= self.since_ns

    def line(self, ns: int, text: str) -> bytes:
        if self.timestamps:
            return f"{format_timestamp(ns)} {text}\n".encode()
        return f"{text}\n".encode()


def _flag(query: Mapping[str, str], name: str) -> bool:
    """kube's query bool: present and not "0"/"false" (so ``?follow=`` is true)."""
    value = query.get(name)
    return value is not None and value != "0" and value.lower() != "false"


def _int(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None:
        return None
    if not _INTEGER.fullmatch(value):  # Go's strconv.ParseInt(value, 10, 64)
        raise bad_request(f'strconv.ParseInt: parsing "{value}": invalid syntax')
    number = int(value)
    if not -(2**63) <= number < 2**63:
        raise bad_request(f'strconv.ParseInt: parsing "{value}": value out of range')
    return number


def _time(query: Mapping[str, str], name: str) -> int | None:
    """An RFC3339 time, or 400 with Go's time.Parse message (its two common forms)."""
    value = query.get(name)
    if value is None:
        return None
    layout = "2006-01-02T15:04:05Z07:00"
    local = _LOCAL_TIME.match(value)
    if local is None:
        problem = f'cannot parse "{value}" as "2006"'
    else:
        rest = value[local.end() :]
        if _ZONE.fullmatch(rest):
            stamp = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            return _to_ns(stamp)
        problem = f'cannot parse "{rest}" as "Z07:00"'
    raise bad_request(f'parsing time "{value}" as "{layout}": {problem}')


def _invalid(path: str, value: int, must: str) -> tuple[str, str, str]:
    return ("FieldValueInvalid", path, f"Invalid value: {value}: must be {must}")


def _invalid_options(name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    summary = ", ".join(f"{path}: {message}" for _, path, message in causes)
    if len(causes) > 1:
        summary = f"[{summary}]"
    return ApiError(
        422,
        f'PodLogOptions "{name}" is invalid: {summary}',
        "Invalid",
        details={
            "name": name,
            "kind": "PodLogOptions",
            "causes": [
                {"reason": reason, "message": message, "field": path}
                for reason, path, message in causes
            ],
        },
    )


# -- exec ------------------------------------------------------------------------------------


class ExecError(Exception):
    """Raised by an exec handler: the session ends with an InternalError Status carrying the
    message (as when a container runtime cannot start the command)."""


@dataclass
class ExecSession:
    """One exec request, as a handler (or the built-in interpreter) sees it."""

    namespace: str
    pod: str
    container: str
    command: list[str]
    tty: bool
    env: dict[str, str]
    stdin_open: bool
    #: (width, height) after the client's last resize message (TTY sessions), else None.
    terminal_size: tuple[int, int] | None = None
    _stdin: asyncio.StreamReader = field(default_factory=asyncio.StreamReader, repr=False)
    _send: Callable[[int, bytes], Awaitable[None]] | None = field(default=None, repr=False)

    async def read(self, n: int = -1) -> bytes:
        """Up to n bytes of stdin (all of it until EOF with -1); b"" at EOF."""
        if not self.stdin_open:
            return b""
        return await self._stdin.read(n)

    async def readline(self) -> bytes:
        """One line of stdin including its newline; b"" at EOF."""
        if not self.stdin_open:
            return b""
        return await self._stdin.readline()

    async def write(self, data: bytes | str) -> None:
        """Write to stdout."""
        await self._out(STDOUT, data)

    async def write_stderr(self, data: bytes | str) -> None:
        """Write to stderr (stdout on a TTY, which has one output stream)."""
        await self._out(STDOUT if self.tty else STDERR, data)

    async def _out(self, channel: int, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        if self.tty:
            raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if raw and self._send is not None:
            await self._send(channel, raw)


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


_SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh"})
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*|\?))")
Writer = Callable[[bytes | str], Awaitable[None]]


class Interpreter:
    """A tiny POSIX-shell look-alike: enough for tests, never a real shell."""

    def __init__(self, session: ExecSession) -> None:
        self.session = session
        self.vars: dict[str, str] = dict(session.env)
        self.status = 0

    async def run(self) -> int:
        argv = self.session.command
        if not argv:
            raise ExecError(
                "failed to exec in container: OCI runtime exec failed: exec failed: unable to "
                "start container process: exec: no command specified: unknown"
            )
        name = argv[0].rsplit("/", 1)[-1]
        if name in _SHELLS:
            if len(argv) >= 3 and argv[1] == "-c":
                return await self.script(argv[2])
            while line := await self.session.readline():  # `sh` reading commands from stdin
                await self.script(line.decode(errors="replace"))
            return self.status
        if name not in self.BUILTINS or name == "exit":
            raise ExecError(
                "failed to exec in container: OCI runtime exec failed: exec failed: unable to "
                f'start container process: exec: "{argv[0]}": executable file not found in '
                "$PATH: unknown"
            )
        return await self.simple(argv)

    async def script(self, text: str) -> int:
        try:
            for line in text.splitlines():
                try:
                    commands = _split_commands(line)
                    for op, raw in commands:
                        if (op == "&&" and self.status != 0) or (op == "||" and self.status == 0):
                            continue
                        # expanded when it runs, so `$?` is the status of the one before
                        self.status = await self.simple(shlex.split(self._expand(raw)))
                except ValueError:  # an unterminated quote
                    await self.session.write_stderr(
                        "sh: 1: Syntax error: Unterminated quoted string\n"
                    )
                    raise _Exit(2) from None
        except _Exit as done:
            self.status = done.code
            raise
        return self.status

    def _expand(self, text: str) -> str:
        out, quoted, start = [], False, 0
        for i, char in enumerate(text):
            if char == "'":
                if not quoted:
                    out.append(self._expand_vars(text[start:i]))
                    start = i
                else:
                    out.append(text[start : i + 1])
                    start = i + 1
                quoted = not quoted
        rest = text[start:]
        out.append(rest if quoted else self._expand_vars(rest))
        return "".join(out)

    def _expand_vars(self, text: str) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(2)
            return str(self.status) if name == "?" else self.vars.get(name, "")

        return _VAR.sub(value, text)

    async def simple(self, argv: list[str]) -> int:
        to_stderr = bool(argv) and argv[-1] in (">&2", "1>&2")
        if to_stderr:
            argv = argv[:-1]
        if not argv:
            return 0
        name = argv[0].rsplit("/", 1)[-1]
        builtin = self.BUILTINS.get(name)
        if builtin is None:
            await self.session.write_stderr(f"sh: 1: {argv[0]}: not found\n")
            return 127
        write = self.session.write_stderr if to_stderr else self.session.write
        return await builtin(self, argv[1:], write)

    async def _echo(self, args: list[str], write: Writer) -> int:
        newline = True
        if args[:1] == ["-n"]:
            args, newline = args[1:], False
        await write(" ".join(args) + ("\n" if newline else ""))
        return 0

    async def _cat(self, args: list[str], write: Writer) -> int:
        if args and args != ["-"]:
            await self.session.write_stderr(f"cat: {args[0]}: No such file or directory\n")
            return 1
        while chunk := await self.session.read(65536):
            await write(chunk)
        return 0

    async def _env(self, args: list[str], write: Writer) -> int:
        await write("".join(f"{k}={v}\n" for k, v in self.vars.items()))
        return 0

    async def _printenv(self, args: list[str], write: Writer) -> int:
        if not args:
            return await self._env(args, write)
        found = [self.vars[name] for name in args if name in self.vars]
        await write("".join(f"{v}\n" for v in found))
        return 0 if len(found) == len(args) else 1

    async def _read(self, args: list[str], write: Writer) -> int:
        line = await self.session.readline()
        if not line:
            return 1
        names = [a for a in args if not a.startswith("-")] or ["REPLY"]
        words = line.decode(errors="replace").rstrip("\r\n").split(None, len(names) - 1)
        for i, name in enumerate(names):
            self.vars[name] = words[i] if i < len(words) else ""
        return 0

    async def _exit(self, args: list[str], write: Writer) -> int:
        try:
            code = int(args[0]) if args else self.status
        except ValueError:
            await self.session.write_stderr(f"sh: 1: exit: Illegal number: {args[0]}\n")
            code = 2
        raise _Exit(code & 0xFF)

    async def _true(self, args: list[str], write: Writer) -> int:
        return 0

    async def _false(self, args: list[str], write: Writer) -> int:
        return 1

    async def _pwd(self, args: list[str], write: Writer) -> int:
        await write("/\n")
        return 0

    async def _hostname(self, args: list[str], write: Writer) -> int:
        await write(self.session.pod + "\n")
        return 0

    async def _sleep(self, args: list[str], write: Writer) -> int:
        try:
            await asyncio.sleep(float(args[0]) if args else 0)  # the command's own semantics
        except ValueError:
            await self.session.write_stderr(f"sleep: invalid time interval '{args[0]}'\n")
            return 1
        return 0

    async def _stty(self, args: list[str], write: Writer) -> int:
        if args != ["size"]:
            return 0
        if not self.session.tty:
            await self.session.write_stderr("stty: 'standard input': Inappropriate ioctl\n")
            return 1
        width, height = self.session.terminal_size or (80, 24)
        await write(f"{height} {width}\n")
        return 0

    BUILTINS: dict[str, Callable[..., Awaitable[int]]] = {
        "echo": _echo,
        "cat": _cat,
        "env": _env,
        "printenv": _printenv,
        "read": _read,
        "exit": _exit,
        "true": _true,
        "false": _false,
        "pwd": _pwd,
        "hostname": _hostname,
        "sleep": _sleep,
        "stty": _stty,
    }


def _split_commands(line: str) -> list[tuple[str, str]]:
    """[(operator before it, command text)] split on ``;``, ``&&``, ``||`` outside quotes; a
    ``#`` comment ends the line. ValueError on an unterminated quote."""
    commands: list[tuple[str, str]] = []
    op, buf, quote, i = ";", [], "", 0
    while i < len(line):
        char = line[i]
        if quote:
            buf.append(char)
            if char == quote:
                quote = ""
            elif char == "\\" and quote == '"' and i + 1 < len(line):
                buf.append(line[i + 1])
                i += 1
        elif char in "'\"":
            quote = char
            buf.append(char)
        elif char == "\\" and i + 1 < len(line):
            buf += [char, line[i + 1]]
            i += 1
        elif line.startswith(("&&", "||"), i):
            commands.append((op, "".join(buf)))
            op, buf = line[i : i + 2], []
            i += 1
        elif char == ";":
            commands.append((op, "".join(buf)))
            op, buf = ";", []
        elif char == "#" and (not buf or buf[-1].isspace()):
            break
        else:
            buf.append(char)
        i += 1
    if quote:
        raise ValueError("unterminated quote")
    commands.append((op, "".join(buf)))
    return [(op, text) for op, text in commands if text.strip()]


async def builtin_interpreter(session: ExecSession) -> int:
    """The default exec handler."""
    try:
        return await Interpreter(session).run()
    except _Exit as done:
        return done.code


# -- serving ---------------------------------------------------------------------------------


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    """Init containers, containers, ephemeral containers: the order kube lists them in."""
    spec = pod.get("spec") or {}
    return [
        c
        for kind in ("initContainers", "containers", "ephemeralContainers")
        for c in spec.get(kind) or ()
        if isinstance(c, dict)
    ]


def _container_env(container: dict[str, Any], pod_name: str) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOSTNAME": pod_name,
    }
    for var in container.get("env") or ():
        if isinstance(var, dict) and "name" in var and "valueFrom" not in var:
            env[str(var["name"])] = str(var.get("value", ""))
    env["HOME"] = "/root"
    return env


class PodStreams:
    """The ``log`` and ``exec`` subresources of pods, for one FakeApiServer."""

    def __init__(self, server: FakeApiServer) -> None:
        self.server = server
        self.logs = LogBook()
        self._handlers: dict[tuple[str, str, str | None], ExecHandler] = {}
        self._lock = threading.Lock()

    # -- programmatic API (FakeApiServer delegates here) ----------------------------------

    def set_exec_handler(
        self, namespace: str, pod: str, handler: ExecHandler | None, container: str | None = None
    ) -> None:
        with self._lock:
            if handler is None:
                self._handlers.pop((namespace, pod, container), None)
            else:
                self._handlers[(namespace, pod, container)] = handler

    def _handler(self, namespace: str, pod: str, container: str) -> ExecHandler:
        with self._lock:
            return (
                self._handlers.get((namespace, pod, container))
                or self._handlers.get((namespace, pod, None))
                or builtin_interpreter
            )

    # -- HTTP --------------------------------------------------------------------------------

    @staticmethod
    def matches(group: str, version: str, rest: list[str]) -> bool:
        """Is this ``/api/v1/namespaces/<ns>/pods/<name>/(log|exec)``?"""
        return (
            group == ""
            and version == "v1"
            and len(rest) == 5
            and rest[0] == "namespaces"
            and rest[2] == "pods"
            and rest[4] in ("log", "exec")
        )

    async def serve(self, request: web.Request, namespace: str, name: str, sub: str):
        verb = "get" if request.method == "GET" else "create"
        if (sub == "log" and request.method != "GET") or request.method not in ("GET", "POST"):
            body = ApiError(
                405, "the server does not allow this method on the requested resource"
            ).status()
            body["details"] = {}  # kube sends an empty one here
            return web.Response(
                body=orjson.dumps(body), status=405, content_type="application/json"
            )
        if self.server.faults.is_forbidden(f"pods/{sub}", ""):
            raise ApiError(
                403,
                f'pods "{name}" is forbidden: User "system:serviceaccount:meshsync:meshsync" '
                f'cannot {verb} resource "pods/{sub}" in API group "" in the namespace '
                f'"{namespace}"',
                "Forbidden",
                details={"name": name, "kind": "pods"},
            )
        if sub == "log":
            return await self._serve_log(request, namespace, name)
        return await self._serve_exec(request, namespace, name)

    def _pod(self, namespace: str, name: str) -> dict[str, Any]:
        rt = self.server.registry.lookup("", "v1", "pods")
        entry = self.server.store.get(rt, namespace, name) if rt is not None else None
        if entry is None:
            raise not_found("pods", name)
        return decode(entry)

    @staticmethod
    def _container(pod: dict[str, Any], name: str) -> dict[str, Any]:
        """kube's validateContainer: the named one, or the only one."""
        pod_name = (pod.get("metadata") or {}).get("name", "")
        containers = _containers(pod)
        if not name:
            spec_containers = (pod.get("spec") or {}).get("containers") or []
            if len(spec_containers) == 1:
                return spec_containers[0]
            if not spec_containers:
                raise bad_request(f"a container name must be specified for pod {pod_name}")
            names = " ".join(str(c.get("name")) for c in containers)
            raise bad_request(
                f"a container name must be specified for pod {pod_name}, choose one of: [{names}]"
            )
        for container in containers:
            if container.get("name") == name:
                return container
        raise bad_request(f"container {name} is not valid for pod {pod_name}")

    async def _serve_log(self, request: web.Request, namespace: str, name: str):
        opts = LogOptions.parse(request.query, name)
        pod = self._pod(namespace, name)
        container = str(self._container(pod, opts.container).get("name"))
        headers = {"Content-Type": _TEXT, "Cache-Control": _NO_CACHE}
        if not (pod.get("spec") or {}).get("nodeName"):
            # not scheduled: kube-apiserver has no kubelet to ask and answers 204 No Content
            return web.Response(status=204, headers={"Cache-Control": _NO_CACHE})
        key = (namespace, name, container)
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        notify = make_notifier(loop, wake) if opts.follow and not opts.previous else None
        lines, epoch = self.logs.snapshot(key, opts.previous, notify)
        try:
            if lines is None:
                raise bad_request(
                    f'previous terminated container "{container}" in pod "{name}" not found'
                )
            response = web.StreamResponse(headers=headers)
            response.enable_chunked_encoding()
            await response.prepare(request)
            budget = [opts.limit_bytes]
            if not await self._write(response, opts.render(lines), budget):
                return response
            if notify is not None:
                await self._follow(response, key, len(lines), epoch, pod, opts, budget, wake)
            with contextlib.suppress(ConnectionError):
                await response.write_eof()
            return response
        finally:
            if notify is not None:
                self.logs.unfollow(key, notify)

    @staticmethod
    async def _write(response: web.StreamResponse, data: bytes, budget: list[int | None]) -> bool:
        """Write within limitBytes; False once the limit is reached (the log ends there)."""
        if budget[0] is not None:
            data, budget[0] = data[: budget[0]], max(0, budget[0] - len(data))
        if data:
            await response.write(data)
        return budget[0] != 0

    async def _follow(
        self,
        response: web.StreamResponse,
        key: tuple[str, str, str],
        index: int,
        epoch: int,
        pod: dict[str, Any],
        opts: LogOptions,
        budget: list[int | None],
        wake: asyncio.Event,
    ) -> None:
        """Stream new lines until the pod goes (or is replaced), its container restarts, the
        server stops or the client disconnects."""
        server = self.server
        rt = server.registry.lookup("", "v1", "pods")
        assert rt is not None
        namespace, name, _ = key
        uid = (pod.get("metadata") or {}).get("uid")
        watcher = Watcher(
            rt, namespace, [], [(("metadata", "name"), True, name)], make_notifier_for(wake)
        )
        server.store.add_watcher(watcher, server.store.rv)
        try:
            while True:
                wake.clear()
                server.store.drain(watcher)
                new, now_epoch = self.logs.since(key, index)
                index += len(new)
                data = b"".join(opts.line(ns, text) for ns, text in new if opts.keeps(ns))
                try:
                    if not await self._write(response, data, budget):
                        return
                except ConnectionError:
                    return
                if now_epoch != epoch or server.stopping or watcher.control == "close":
                    return
                entry = server.store.get(rt, namespace, name)
                if entry is None or (uid and decode(entry)["metadata"].get("uid") != uid):
                    return
                await wake.wait()
        finally:
            server.store.remove_watcher(watcher)

    async def _serve_exec(self, request: web.Request, namespace: str, name: str):
        query = request.query
        pod = self._pod(namespace, name)
        container = self._container(pod, query.get("container", ""))
        if not (pod.get("spec") or {}).get("nodeName"):
            raise bad_request(f"pod {name} does not have a host assigned")
        upgrade = request.headers.get(hdrs.UPGRADE, "").lower()
        if upgrade != "websocket":
            if upgrade.startswith("spdy/"):
                raise bad_request(
                    "the fake apiserver serves exec over WebSocket (v5.channel.k8s.io, "
                    "v4.channel.k8s.io), not SPDY"
                )
            raise bad_request("Upgrade request required")
        if request.method != "GET":
            return web.Response(status=405)  # the node's WebSocket server answers only GET
        protocol = choose_protocol(request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL, ""))
        if protocol is None:
            return web.Response(status=403, headers={"Connection": "close"})
        tty = _flag(query, "tty")
        stdin, stdout = _flag(query, "stdin"), _flag(query, "stdout")
        stderr = _flag(query, "stderr") and not tty  # kube drops stderr on a TTY
        if not (stdin or stdout or stderr) and protocol != V5:
            return web.Response(
                status=400,
                text="you must specify at least 1 of stdin, stdout, stderr\n",
                content_type="text/plain",
            )
        ws = web.WebSocketResponse(protocols=(protocol,) if protocol else (), autoping=True)
        await ws.prepare(request)
        base64_frames = protocol in (V1_BASE64, V4_BASE64)

        async def send(channel: int, data: bytes) -> None:
            if ws.closed:
                raise ConnectionResetError("the client closed the exec session")
            if base64_frames:
                await ws.send_str(str(channel) + base64.b64encode(data).decode())
            else:
                await ws.send_bytes(bytes((channel,)) + data)

        command = list(query.getall("command", []))
        container_name = str(container.get("name"))
        session = ExecSession(
            namespace,
            name,
            container_name,
            command,
            tty,
            _container_env(container, name),
            stdin_open=stdin,
        )
        try:
            await send(STDOUT if stdout else STDERR if stderr else ERROR, b"")
            if not (stdin or stdout or stderr):  # v5: the translator opened the socket first
                await send(
                    ERROR,
                    internal_error(
                        protocol,
                        "unable to upgrade connection: you must specify at least 1 of stdin, "
                        "stdout, stderr",
                    ),
                )
                return ws
            session._send = send
            status = await self._run(ws, session, protocol, stdout, stderr, base64_frames)
            if status is not None:
                await send(ERROR, status)
        except ConnectionError:
            pass
        finally:
            with contextlib.suppress(ConnectionError):
                await ws.close()
        return ws

    async def _run(
        self,
        ws: web.WebSocketResponse,
        session: ExecSession,
        protocol: str,
        stdout: bool,
        stderr: bool,
        base64_frames: bool,
    ) -> bytes | None:
        """Run the handler while reading the client's frames; the Status to send."""
        if not stdout:
            session._send = _drop_channel(session._send, STDOUT)
        if not stderr and not session.tty:
            session._send = _drop_channel(session._send, STDERR)
        reader = asyncio.create_task(self._read_frames(ws, session, protocol, base64_frames))
        handler = self._handler(session.namespace, session.pod, session.container)
        task = asyncio.ensure_future(_call(handler, session))
        try:
            await asyncio.wait((task, reader), return_when=asyncio.FIRST_COMPLETED)
            if not task.done():  # the client went away first
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
                return None
            try:
                code = task.result()
            except ExecError as err:
                return internal_error(
                    protocol,
                    f"Internal error occurred: error executing command in container: {err}",
                )
            except ConnectionError:
                return None
            except Exception as err:  # a handler's bug: reported as the node would report it
                return internal_error(
                    protocol,
                    f"Internal error occurred: error executing command in container: {err}",
                )
            return exit_status(protocol, int(code or 0) & 0xFF, session.command)
        finally:  # also when aiohttp cancels this request because the client went away
            for pending in (task, reader):
                pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(task, reader, return_exceptions=True)

    @staticmethod
    async def _read_frames(
        ws: web.WebSocketResponse, session: ExecSession, protocol: str, base64_frames: bool
    ) -> None:
        """Client frames: stdin, resize, and (v5) channel close; returns when the client
        closes the connection."""
        stdin = session._stdin
        try:
            async for message in ws:
                if message.type == WSMsgType.BINARY and not base64_frames:
                    raw = bytes(message.data)
                elif message.type == WSMsgType.TEXT and base64_frames and message.data:
                    try:
                        raw = bytes((int(message.data[0]),)) + base64.b64decode(message.data[1:])
                    except ValueError:
                        continue
                else:
                    continue
                if not raw:
                    continue
                channel, data = raw[0], raw[1:]
                if channel == STDIN and session.stdin_open and not stdin.at_eof():
                    stdin.feed_data(data)
                elif channel == RESIZE:
                    with contextlib.suppress(orjson.JSONDecodeError, KeyError, TypeError):
                        size = orjson.loads(data)
                        session.terminal_size = (int(size["Width"]), int(size["Height"]))
                elif channel == CLOSE_SIGNAL and protocol == V5 and data[:1] == bytes((STDIN,)):
                    stdin.feed_eof()
        finally:
            if not stdin.at_eof():
                stdin.feed_eof()


def _drop_channel(
    send: Callable[[int, bytes], Awaitable[None]] | None, dropped: int
) -> Callable[[int, bytes], Awaitable[None]]:
    async def filtered(channel: int, data: bytes) -> None:
        if channel != dropped and send is not None:
            await send(channel, data)

    return filtered


async def _call(handler: ExecHandler, session: ExecSession) -> int | None:
    result = handler(session)
    if inspect.isawaitable(result):
        result = await result
    return result  # type: ignore[return-value]


def make_notifier_for(wake: asyncio.Event) -> Callable[[], None]:
    """A store-watcher callback that wakes a follower (thread-safe)."""
    return make_notifier(asyncio.get_running_loop(), wake)
