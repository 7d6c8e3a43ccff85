"""``meshsync request``: ask a running MeshSync for what Meshery asks it, from a terminal.

It publishes exactly Meshery Server's requests (:mod:`meshsync_nats.meshery_client`) and
prints the answers::

    meshsync request logs shop/web-0 --container web --follow --tail 20
    meshsync request exec shop/web-0 --container web -- ls /         # or interactively, no command
    meshsync request sessions

A log or shell ends when MeshSync takes the session off ``active_sessions.exec`` (Go's
contract has no end-of-stream message), or at Ctrl-C, which sends Meshery's ``stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

import click

from meshsync_core import SignalControl
from meshsync_nats.connection import ConnectionSettings
from meshsync_nats.meshery_client import ExecClient, Inbox, MesheryClient, log_request


def _target(value: str) -> tuple[str, str]:
    namespace, sep, name = value.partition("/")
    if not sep or not namespace or not name:
        raise click.BadParameter("give the pod as NAMESPACE/NAME", param_hint="POD")
    return namespace, name


async def _connect(options: dict[str, Any]) -> MesheryClient:
    settings = ConnectionSettings.from_options(options)
    kwargs = settings.kwargs()
    kwargs.pop("name", None)
    servers = kwargs.pop("servers")
    kwargs["max_reconnect_attempts"] = 3
    return await MesheryClient.connect(servers, **kwargs)


def _listed(message: dict[str, Any], session_id: str) -> bool | None:
    """Whether an ``active_sessions.exec`` message lists the session (None: not such a list)."""
    if message.get("ObjectType") != "active-exec":
        return None
    return session_id in (message.get("Object") or [])


async def _next_of(
    first: Inbox, second: Inbox, timeout: float | None
) -> tuple[Inbox, dict[str, Any]] | None:
    """The next message of either (``first`` when both have one), or None at the timeout."""
    done, _ = await asyncio.wait(
        {first.next(), second.next()}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
    )
    if not done:
        return None
    inbox = first if first.next().done() else second
    return inbox, inbox.take()


async def stream_logs(
    client: MesheryClient,
    namespace: str,
    name: str,
    container: str,
    *,
    follow: bool,
    previous: bool,
    tail: int,
    out: TextIO,
    request_id: str | None = None,
    start_timeout: float = 30.0,
) -> int:
    """Print a pod's log as MeshSync publishes it; 0 when it ended, 1 on an error message."""
    request = log_request(
        request_id or uuid.uuid4().hex,
        namespace,
        name,
        container,
        follow=follow,
        previous=previous,
        tail_lines=tail,
    )
    session_id = f"logs.{namespace}.{name}.{container}"
    logs = await client.logs_inbox()
    active = await client.sessions_inbox()
    await client.request_logs(request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + start_timeout
    started = ended = False
    try:
        while True:
            wait = None if started else max(deadline - loop.time(), 0.0)
            got = await _next_of(logs, active, wait)
            if got is None:
                click.echo("meshsync request: no answer from MeshSync", err=True)
                return 1
            inbox, message = got
            if inbox is logs:
                if _print_log(message, request["id"], out):
                    return 1
                continue
            listed = _listed(message, session_id)
            if listed:
                started = True
            elif listed is False and started:
                ended = True  # what it sent before is in the logs subscription already
                while not logs.empty():
                    _print_log(await logs.get(), request["id"], out)
                return 0
    finally:
        if started and not ended:
            with contextlib.suppress(Exception):
                await client.stop_logs(request)
        await logs.close()
        await active.close()


def _print_log(message: dict[str, Any], request_id: str, out: TextIO) -> bool:
    """Print one log message of ours; True if it was an error."""
    obj = message.get("Object")
    if not isinstance(obj, dict) or obj.get("id") != request_id:
        return False
    if message.get("ObjectType") == "error":
        click.echo(f"meshsync request: {obj.get('data')}", err=True)
        return True
    out.write(str(obj.get("data") or ""))
    out.flush()
    return False


async def run_exec(
    client: MesheryClient,
    namespace: str,
    name: str,
    container: str,
    lines: list[str] | None,
    out: TextIO,
    start_timeout: float = 30.0,
) -> int:
    """A shell: ``lines`` are typed (then ``exit``); without them, stdin is."""
    active = await client.sessions_inbox()
    shell: ExecClient = await client.open_exec(namespace, name, container)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + start_timeout
    started = ended = False
    typing: asyncio.Future[None] | None = None

    def show(message: dict[str, Any]) -> bool:
        """Print one message of the session; True when it was the error that ends it."""
        if message.get("ObjectType") == "exec-output":
            out.write(str(message.get("Object") or ""))
            out.flush()
        elif message.get("ObjectType") == "error":
            click.echo(f"\nmeshsync request: {message.get('Object')}", err=True)
            return True
        return False

    try:
        while True:
            wait = None if started else max(deadline - loop.time(), 0.0)
            got = await _next_of(shell.inbox, active, wait)
            if got is None:
                click.echo("meshsync request: no answer from MeshSync", err=True)
                return 1
            inbox, message = got
            if inbox is shell.inbox:
                if show(message):
                    ended = True
                    return 1
                continue
            listed = _listed(message, shell.session_id)
            if listed and not started:
                started = True  # MeshSync hears input.<session> now
                if lines is not None:
                    for line in [*lines, "exit"]:
                        await shell.send(line)
                else:
                    typing = asyncio.ensure_future(_type_stdin(shell))
            elif listed is False and started:
                ended = True
                while not shell.inbox.empty():
                    if show(await shell.inbox.get()):
                        return 1
                return 0
    finally:
        if typing is not None:
            typing.cancel()
        if started and not ended:
            with contextlib.suppress(Exception):
                await shell.stop()
        await shell.close()
        await active.close()


async def _type_stdin(shell: ExecClient) -> None:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            await shell.send("exit")
            return
        await shell.send(line.rstrip("\n"))


async def list_sessions(client: MesheryClient, out: TextIO, timeout: float = 10.0) -> int:
    active = await client.sessions_inbox()
    await client.request_active()
    try:
        while True:
            message = await active.get(timeout)
            if message.get("ObjectType") == "active-exec":
                for session in message.get("Object") or []:
                    out.write(f"{session}\n")
                return 0
    except asyncio.TimeoutError:
        click.echo("meshsync request: no answer from MeshSync", err=True)
        return 1
    finally:
        await active.close()


def _nats_options(func: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--broker-url",
                envvar="BROKER_URL",
                required=True,
                help="NATS URL of the MeshSync to ask. Env: BROKER_URL.",
            ),
            click.option("--nats-user", envvar="NATS_USER"),
            click.option("--nats-password", envvar="NATS_PASSWORD"),
            click.option("--nats-token", envvar="NATS_TOKEN"),
            click.option("--nats-creds", envvar="NATS_CREDS"),
            click.option("--nats-tls-ca", envvar="NATS_TLS_CA"),
        ]
    ):
        func = option(func)
    return func


class _Stopper:
    """What the ``meshsync`` command's signal handling stops on Ctrl-C: the request, cleanly
    (Meshery's ``stop`` is sent, subscriptions end); a second Ctrl-C ends the process."""

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.stopping = False

    def stop(self, reason: str = "", exit_code: int = 0) -> None:
        self.stopping = True
        self.task.cancel()


def _run(work: Callable[[], Awaitable[int]]) -> None:
    ctx = click.get_current_context(silent=True)
    control = ctx.find_object(SignalControl) if ctx is not None else None

    async def main() -> int:
        task = asyncio.current_task()
        assert task is not None
        stopper = _Stopper(task)
        guard = control.running(stopper) if control is not None else contextlib.nullcontext()
        with guard:
            try:
                return await work()
            except asyncio.CancelledError:
                if stopper.stopping:
                    return 130
                raise

    try:
        code = asyncio.run(main())
    except KeyboardInterrupt:  # without the command's signal handling (a library caller)
        code = 130
    sys.exit(code)


def build_request_command() -> click.Group:
    @click.group(
        "request",
        help="Ask a running MeshSync for pod logs, a shell or its session list, over NATS, "
        "exactly as Meshery Server asks (needs --pod-logs/--pod-exec allowed there).",
    )
    def request() -> None:
        pass

    @request.command("logs")
    @click.argument("pod")
    @click.option("--container", default="", help="Container (default: the only one).")
    @click.option("-f", "--follow", is_flag=True, help="Keep printing what is written.")
    @click.option("--previous", is_flag=True, help="The previous instance's log.")
    @click.option(
        "--tail",
        type=click.IntRange(min=0),
        default=10,
        show_default=True,
        help="Lines from the end (0: none; Meshery asks for 1000).",
    )
    @_nats_options
    def logs(
        pod: str, container: str, follow: bool, previous: bool, tail: int, **nats: Any
    ) -> None:
        """Print the log of POD (NAMESPACE/NAME)."""
        namespace, name = _target(pod)

        async def work() -> int:
            client = await _connect(nats)
            try:
                return await stream_logs(
                    client,
                    namespace,
                    name,
                    container,
                    follow=follow,
                    previous=previous,
                    tail=tail,
                    out=sys.stdout,
                )
            finally:
                await client.close()

        _run(work)

    @request.command("exec")
    @click.argument("pod")
    @click.argument("command", nargs=-1)
    @click.option("--container", required=True, help="Container (Meshery names it).")
    @_nats_options
    def exec_(pod: str, command: tuple[str, ...], container: str, **nats: Any) -> None:
        """A shell in POD (NAMESPACE/NAME): COMMAND is typed into it, then exit; without a
        COMMAND, lines from stdin are."""
        namespace, name = _target(pod)

        async def work() -> int:
            client = await _connect(nats)
            try:
                lines = [" ".join(command)] if command else None
                return await run_exec(client, namespace, name, container, lines, sys.stdout)
            finally:
                await client.close()

        _run(work)

    @request.command("sessions")
    @_nats_options
    def sessions(**nats: Any) -> None:
        """List the open log and exec sessions (active-exec)."""

        async def work() -> int:
            client = await _connect(nats)
            try:
                return await list_sessions(client, sys.stdout)
            finally:
                await client.close()

        _run(work)

    return request
