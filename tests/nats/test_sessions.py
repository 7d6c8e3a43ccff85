"""log-stream, exec-request and active-exec through the NATS sink and a real nats-server, with
a stand-in for the source's workload streams (tests/nats/fake_streams.py).

The requests are what Meshery Server publishes (meshsync_nats.meshery_client); the answers are
checked byte for byte against Go MeshSync's shapes. The Kubernetes side is tested against the
fake and the real API server (tests/k8s_fake, tests/realkube).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from meshsync_nats import sessions as s
from meshsync_nats.meshery_client import MesheryClient, log_request, request_message
from meshsync_nats.sink import NatsSink
from meshsync_testkit.nats_server import NatsServer

from meshsync_core import ConfigError, Engine, Options
from tests.nats.fake_streams import FakeStreams, StreamingSource
from tests.nats.helpers import Running, Subscriber, log_lines, nats_options, pod, wait_until

ALLOW = {"pod_logs": "on", "pod_exec": "on"}


class Env:
    def __init__(self, sink: NatsSink, client: MesheryClient, source: StreamingSource) -> None:
        self.sink = sink
        self.client = client
        self.source = source

    @property
    def open_sessions(self) -> list[str]:
        assert self.sink.sessions is not None
        return sorted(self.sink.sessions.sessions)


@contextlib.asynccontextmanager
async def interactive(
    server: NatsServer,
    streams: FakeStreams | None,
    client_kwargs: dict | None = None,
    **options: Any,
) -> AsyncIterator[Env]:
    source = StreamingSource(streams, [pod("web")])
    sink = NatsSink(nats_options(server.url, **options))
    client = await MesheryClient.connect(server.url, **(client_kwargs or {}))
    try:
        async with Running(Engine([source], [sink])):
            await source.started()
            await wait_until(
                lambda: sink.nc.is_connected and sink.outage.live, 10, "sink connected"
            )
            yield Env(sink, client, source)
    finally:
        await client.close()


def shop() -> FakeStreams:
    streams = FakeStreams()
    streams.add_pod("shop", "web-0", "web", "sidecar")
    streams.add_pod("shop", "db-0", "db")
    streams.log("shop", "web-0", "web").append("one\n", "two\n", "three\n")
    return streams


async def next_of(inbox: Any, object_type: str, timeout: float = 10.0) -> dict:
    while True:
        message = await inbox.get(timeout)
        if message["ObjectType"] == object_type:
            return message


# -- logs -------------------------------------------------------------------------------------


async def test_follow_a_log_with_tail_then_stop(nats_server: NatsServer) -> None:
    streams = shop()
    async with interactive(nats_server, streams, **ALLOW) as env:
        logs = await env.client.logs_inbox()
        active = await env.client.sessions_inbox()
        request = log_request("req-1", "shop", "web-0", "web", follow=True, tail_lines=2)
        await env.client.request_logs(request)
        first = await logs.get()
        # exactly Go's broker.Message with a model.LogObject
        assert first == {
            "ObjectType": "log-stream",
            "EventType": "ADDED",
            "Request": None,
            "Object": {"id": "req-1", "data": "two\n", "primary": "web-0", "secondary": "web"},
        }
        assert list(first) == ["ObjectType", "EventType", "Request", "Object"]
        assert (await logs.get())["Object"]["data"] == "three\n"
        listed = await next_of(active, "active-exec")
        assert listed["Object"] == ["logs.shop.web-0.web"]
        target, options = streams.log_options[0]
        assert (target.namespace, target.name, target.container) == ("shop", "web-0", "web")
        assert (options.follow, options.previous, options.tail_lines, options.timestamps) == (
            True, False, 2, True,
        )  # fmt: skip
        streams.log("shop", "web-0", "web").append("four\n")
        assert (await logs.get())["Object"]["data"] == "four\n"
        await env.client.stop_logs(request)
        assert (await next_of(active, "active-exec"))["Object"] == []
        await wait_until(lambda: streams.open_logs == 0, 5, "the log stream closed")
        streams.log("shop", "web-0", "web").append("five\n")
        await env.client.request_active()  # a round trip: anything sent before it has arrived
        await next_of(active, "active-exec")
        assert logs.empty()


async def test_no_tail_means_no_history_and_previous_is_passed_on(nats_server: NatsServer) -> None:
    streams = shop()
    async with interactive(nats_server, streams, **ALLOW) as env:
        logs = await env.client.logs_inbox()
        await env.client.request_logs(log_request("r", "shop", "web-0", "web", previous=True))
        await wait_until(lambda: not env.open_sessions and streams.log_options, 5, "session end")
        _, options = streams.log_options[0]
        assert (options.previous, options.tail_lines, options.follow) == (True, 0, False)
        active = await env.client.sessions_inbox()
        await env.client.request_active()  # a round trip: anything sent before it has arrived
        await next_of(active, "active-exec")
        assert logs.empty()  # taillines 0 or missing: no history (Go's contract)


async def test_duplicate_log_request_is_ignored_while_the_session_runs(
    nats_server: NatsServer,
) -> None:
    streams = shop()
    async with interactive(nats_server, streams, **ALLOW) as env:
        logs = await env.client.logs_inbox()
        request = log_request("a", "shop", "web-0", "web", follow=True, tail_lines=1)
        await env.client.request_logs(request)
        await env.client.request_logs({**request, "id": "b"})
        assert (await logs.get())["Object"]["id"] == "a"
        await wait_until(lambda: len(streams.log_options) >= 1, 5)
        streams.log("shop", "web-0", "web").append("once\n")
        message = await logs.get()
        assert (message["Object"]["id"], message["Object"]["data"]) == ("a", "once\n")
        active = await env.client.sessions_inbox()
        await env.client.request_active()  # a round trip: anything sent before it has arrived
        await next_of(active, "active-exec")
        assert logs.empty() and len(streams.log_options) == 1
        assert env.open_sessions == ["logs.shop.web-0.web"]


async def test_log_chunks_are_at_most_2000_bytes_and_never_split_a_character(
    nats_server: NatsServer,
) -> None:
    streams = shop()
    text = ("é" * 1500) + "\n" + ("x" * 4100) + "\n"  # 3001 + 4101 bytes
    streams.log("shop", "db-0", "db").append(text)
    async with interactive(nats_server, streams, **ALLOW) as env:
        logs = await env.client.logs_inbox()
        await env.client.request_logs(log_request("r", "shop", "db-0", "db", tail_lines=5))
        pieces: list[str] = []
        while "".join(pieces) != text:
            pieces.append((await logs.get())["Object"]["data"])
        assert all(len(p.encode()) <= s.LOG_CHUNK for p in pieces)
        assert "\ufffd" not in "".join(pieces)


def test_utf8_chunks_hold_back_a_split_character() -> None:
    chunks = s.Utf8Chunks(4)
    data = "aé€😀".encode()  # 1 + 2 + 3 + 4 bytes
    out: list[str] = []
    for byte in data:
        out += chunks.feed(bytes([byte]))
    out += chunks.flush()
    assert "".join(out) == "aé€😀"
    assert all(len(p.encode()) <= 4 for p in out)
    assert s.Utf8Chunks(3).feed(b"\xff\xfeab") == ["\ufffd\ufffda", "b"]


async def test_log_errors_go_to_the_requester_once_each(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="meshsync")
    async with interactive(nats_server, shop(), **ALLOW) as env:
        logs = await env.client.logs_inbox()
        cases = {
            "pod": log_request("p", "shop", "nope", "web"),
            "container": log_request("c", "shop", "web-0", "nope"),
            "namespace": log_request("n", "elsewhere", "web-0", "web"),
            "name": {"id": "m", "namespace": "shop"},
            "types": {"id": "t", "name": "web-0", "namespace": "shop", "taillines": "ten"},
            "negative": {"id": "g", "name": "web-0", "namespace": "shop", "taillines": -1},
        }
        for request in cases.values():
            await env.client.request_logs(request)
        errors = {}
        for _ in cases:
            message = await logs.get()
            assert (message["ObjectType"], message["EventType"]) == ("error", "")
            errors[message["Object"]["id"]] = message["Object"]["data"]
        assert 'pods "nope" not found' in errors["p"]
        assert 'container "nope" is not valid' in errors["c"]
        assert 'pods "web-0" not found' in errors["n"]
        assert "lacks name" in errors["m"]
        assert "taillines must be a whole number" in errors["t"]
        assert "taillines must be a whole number" in errors["g"]
        # malformed Payloads: one error each, nothing started
        await env.client.publish_request("log-stream", "not a map")
        assert "malformed log-stream request" in (await logs.get())["Object"]["data"]
        await env.client.publish_request("log-stream", {"operator": ["x"]})
        assert "is not an object" in (await logs.get())["Object"]["data"]
        assert env.open_sessions == []


# -- exec -------------------------------------------------------------------------------------


async def test_exec_runs_commands_and_returns_their_output(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="meshsync")
    streams = shop()
    async with interactive(nats_server, streams, **ALLOW) as env:
        active = await env.client.sessions_inbox()
        shell = await env.client.open_exec("shop", "web-0", "web", "u1")
        assert shell.session_id == "exec.shop.web-0.web.u1"
        assert (await next_of(active, "active-exec"))["Object"] == [shell.session_id]
        await shell.read_until("# ")
        await shell.send("echo secret-word")
        out = await shell.read_until("secret-word\r\n")
        assert "echo secret-word" in out  # the terminal's echo, as a shell shows it
        assert streams.shells[0].received == [b"echo secret-word\n"]  # "\n" appended
        await shell.send("yes")  # 16 KiB of output
        seen = 0
        while seen < 2**14:
            message = await shell.inbox.get()
            assert message["ObjectType"] == "exec-output"
            assert list(message) == ["ObjectType", "EventType", "Request", "Object"]
            assert len(message["Object"].encode()) <= s.EXEC_CHUNK
            seen += message["Object"].count("y")
        await shell.stop()
        assert (await next_of(active, "active-exec"))["Object"] == []
        assert streams.shells[0].closed
        # teardown unsubscribed input.<id>: nothing reaches the shell any more
        await shell.send("echo late")
        await env.client.request_active()
        await next_of(active, "active-exec")
        assert streams.shells[0].received[-1] == b"yes\n"
    # the audit line is written when the session's task has finished, after it left the list
    await wait_until(
        lambda: any(
            "ended" in line
            for line in log_lines(caplog, logging.INFO, "exec session exec.shop.web-0.web.u1")
        ),
        10,
        "the session's audit line",
    )
    audit = log_lines(caplog, logging.INFO, "exec session exec.shop.web-0.web.u1")
    assert any("started" in line for line in audit) and any("ended" in line for line in audit)
    assert not any("secret-word" in r.getMessage() for r in caplog.records)  # never keystrokes


async def test_a_shell_that_fails_reports_it_as_an_error_message(nats_server: NatsServer) -> None:
    async with interactive(nats_server, shop(), **ALLOW) as env:
        shell = await env.client.open_exec("shop", "db-0", "db")
        await shell.read_until("# ")
        await shell.send("exit 3")
        message = await next_of(shell.inbox, "error")
        assert message == {
            "ObjectType": "error",
            "EventType": "",
            "Request": None,
            "Object": "command terminated with exit code 3",
        }
        await wait_until(lambda: not env.open_sessions, 5, "session ended")


async def test_exec_errors_go_to_the_session_subject(nats_server: NatsServer) -> None:
    streams = shop()
    async with interactive(nats_server, streams, **ALLOW) as env:
        for name, container, expected in [
            ("nope", "web", 'pods "nope" not found'),
            ("web-0", "nope", 'container "nope" is not valid'),
        ]:
            shell = await env.client.open_exec("shop", name, container)
            message = await next_of(shell.inbox, "error")
            assert expected in message["Object"]
            assert message["EventType"] == ""  # never "ERROR": Meshery Server panics on it
        await wait_until(lambda: not env.open_sessions, 5, "sessions ended")


# -- safety defaults --------------------------------------------------------------------------


async def test_without_nats_auth_logs_and_exec_are_refused_with_one_warning(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    streams = shop()
    async with interactive(nats_server, streams) as env:  # defaults: auto
        logs = await env.client.logs_inbox()
        for attempt in range(3):
            shell = await env.client.open_exec("shop", "web-0", "web", f"a{attempt}")
            message = await next_of(shell.inbox, "error")
            assert "exec is not served by this MeshSync" in message["Object"]
            assert "no NATS authentication is configured" in message["Object"]
            await env.client.request_logs(log_request(f"l{attempt}", "shop", "web-0", "web"))
            assert "pod logs are not served" in (await logs.get())["Object"]["data"]
        assert streams.shells == [] and streams.log_options == []
    assert len(log_lines(caplog, logging.WARNING, "refusing exec-request")) == 1
    assert len(log_lines(caplog, logging.WARNING, "refusing log-stream")) == 1


async def test_with_nats_auth_required_auto_serves_them(
    nats_server_factory: Any,
) -> None:
    server = nats_server_factory(token="s3cret")
    streams = shop()
    async with interactive(
        server, streams, client_kwargs={"token": "s3cret"}, nats_token="s3cret"
    ) as env:
        shell = await env.client.open_exec("shop", "web-0", "web")
        await shell.read_until("# ")  # the prompt: MeshSync listens on input.<id> now
        await shell.send("echo hi")
        await shell.read_until("hi\r\n")
        logs = await env.client.logs_inbox()
        await env.client.request_logs(log_request("r", "shop", "web-0", "web", tail_lines=1))
        assert (await logs.get())["Object"]["data"] == "three\n"


async def test_credentials_to_a_server_that_requires_none_do_not_count(
    nats_server: NatsServer,
) -> None:
    # nats-server without authorization accepts any token: anyone could publish requests
    async with interactive(nats_server, shop(), nats_token="unused") as env:
        shell = await env.client.open_exec("shop", "web-0", "web")
        message = await next_of(shell.inbox, "error")
        assert "the NATS server does not require authentication" in message["Object"]


async def test_off_means_off_even_with_auth(nats_server_factory: Any) -> None:
    server = nats_server_factory(token="t")
    async with interactive(
        server, shop(), client_kwargs={"token": "t"}, nats_token="t", pod_exec="off"
    ) as env:
        shell = await env.client.open_exec("shop", "web-0", "web")
        assert "switched off" in (await next_of(shell.inbox, "error"))["Object"]


async def test_namespace_allow_lists(nats_server: NatsServer) -> None:
    streams = shop()
    streams.add_pod("kube-system", "etcd-0", "etcd")
    async with interactive(
        nats_server, streams, pod_exec_namespaces=("shop",), pod_logs_namespaces="shop", **ALLOW
    ) as env:
        shell = await env.client.open_exec("kube-system", "etcd-0", "etcd")
        error = (await next_of(shell.inbox, "error"))["Object"]
        assert "namespace 'kube-system' are not allowed" in error
        logs = await env.client.logs_inbox()
        await env.client.request_logs(log_request("r", "kube-system", "etcd-0", "etcd"))
        assert "are not served here" in (await logs.get())["Object"]["data"]
        assert streams.shells == []


async def test_forbidden_gives_an_error_and_one_warning(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    streams = shop()
    streams.forbidden = {"logs", "exec"}
    async with interactive(nats_server, streams, **ALLOW) as env:
        logs = await env.client.logs_inbox()
        for attempt in range(2):
            shell = await env.client.open_exec("shop", "web-0", "web", f"f{attempt}")
            assert "forbidden" in (await next_of(shell.inbox, "error"))["Object"]
            await env.client.request_logs(log_request(f"l{attempt}", "shop", "web-0", "web"))
            assert "forbidden" in (await logs.get())["Object"]["data"]
        await wait_until(lambda: not env.open_sessions, 5)
    exec_warnings = log_lines(caplog, logging.WARNING, "refuses exec")
    log_warnings = log_lines(caplog, logging.WARNING, "refuses logs")
    assert len(exec_warnings) == 1 and "create pods/exec" in exec_warnings[0]
    assert len(log_warnings) == 1 and "get pods/log" in log_warnings[0]
    assert "exec.enabled=true" in exec_warnings[0]


# -- limits -----------------------------------------------------------------------------------


async def test_max_sessions_and_a_request_flood_disturb_nothing_else(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    streams = FakeStreams()
    for i in range(60):
        streams.add_pod("shop", f"p{i}", "main")
    core = Subscriber()
    await core.connect(nats_server.url)
    async with interactive(nats_server, streams, max_sessions=5, **ALLOW) as env:
        logs = await env.client.logs_inbox()
        assert env.client.nc is not None
        for i in range(60):  # no waiting between requests
            request = log_request(f"r{i}", "shop", f"p{i}", "main", follow=True)
            await env.client.nc.publish(
                "meshery.meshsync.request", request_message("log-stream", {"k": request})
            )
        await env.client.nc.publish("meshery.meshsync.request", b"{not json")
        await env.client.nc.flush()
        refused = [(await logs.get())["Object"] for _ in range(55)]
        assert all("too many sessions open (5, --max-sessions)" in o["data"] for o in refused)
        assert len(env.open_sessions) == 5
        # one warning for the flood, not 55; the malformed request its own one
        assert len(log_lines(caplog, logging.WARNING, "too many sessions open")) == 1
        # at the limit, a duplicate of a running session is still just ignored
        running_pod = env.open_sessions[0].split(".")[2]
        active = await env.client.sessions_inbox()
        await env.client.request_logs(log_request("dup", "shop", running_pod, "main", follow=True))
        await env.client.request_active()
        await next_of(active, "active-exec")
        assert logs.empty()
        # the change stream still flows
        await env.source.apply(pod("during-the-flood"))
        await core.wait_for(
            lambda: any(
                m["Object"]["metadata"]["name"] == "during-the-flood" for m in core.messages
            )
        )
        # a slot frees when a session ends
        first = env.open_sessions[0]
        pod_name = first.split(".")[2]
        await env.client.stop_logs(log_request("x", "shop", pod_name, "main"))
        await wait_until(lambda: first not in env.open_sessions, 5)
        await env.client.request_logs(log_request("again", "shop", "p59", "main", follow=True))
        await wait_until(lambda: "logs.shop.p59.main" in env.open_sessions, 5)
    await core.close()


async def test_idle_exec_sessions_are_closed(nats_server: NatsServer) -> None:
    async with interactive(nats_server, shop(), session_idle_timeout=0.5, **ALLOW) as env:
        shell = await env.client.open_exec("shop", "web-0", "web")
        await shell.read_until("# ")
        started = time.monotonic()
        message = await next_of(shell.inbox, "error")
        assert message["Object"] == "session closed: idle for 0.5s"
        assert time.monotonic() - started >= 0.4
        await wait_until(lambda: not env.open_sessions, 5)


async def test_sessions_end_after_the_maximum_length(nats_server: NatsServer) -> None:
    async with interactive(nats_server, shop(), session_max_duration=0.5, **ALLOW) as env:
        logs = await env.client.logs_inbox()
        request = log_request("r", "shop", "web-0", "web", follow=True, tail_lines=1)
        await env.client.request_logs(request)
        assert (await logs.get())["Object"]["data"] == "three\n"
        message = await logs.get()
        assert message["ObjectType"] == "error"
        assert message["Object"] == {
            "id": "r",
            "data": "session closed: reached the maximum session length (0.5s)",
            "primary": "web-0",
            "secondary": "web",
        }
        await wait_until(lambda: not env.open_sessions, 5)


async def test_output_rate_is_limited_per_session(nats_server: NatsServer) -> None:
    streams = shop()
    streams.log("shop", "db-0", "db").append(*["z" * 999 + "\n"] * 8)  # 8000 bytes
    async with interactive(nats_server, streams, session_output_rate="4000", **ALLOW) as env:
        logs = await env.client.logs_inbox()
        started = time.monotonic()
        await env.client.request_logs(log_request("r", "shop", "db-0", "db", tail_lines=8))
        got = 0
        while got < 8000:
            got += len((await logs.get())["Object"]["data"])
        # a second's worth of burst, then 4000 bytes a second
        assert time.monotonic() - started >= 0.9


async def test_a_chatty_session_does_not_hold_up_the_change_stream(
    nats_server: NatsServer,
) -> None:
    streams = shop()
    core = Subscriber()
    await core.connect(nats_server.url)
    async with interactive(nats_server, streams, session_output_rate="2KiB", **ALLOW) as env:
        shell = await env.client.open_exec("shop", "web-0", "web")
        await shell.read_until("# ")
        await shell.send("yes")  # 16 KiB at 2 KiB/s: eight seconds of output
        await shell.read_until("yyyy")
        started = time.monotonic()
        await env.source.apply(pod("meanwhile"))
        await core.wait_for(
            lambda: any(m["Object"]["metadata"]["name"] == "meanwhile" for m in core.messages)
        )
        assert time.monotonic() - started < 2.0
        assert env.open_sessions == [shell.session_id]
    await core.close()


async def test_shutdown_ends_every_session(nats_server: NatsServer) -> None:
    streams = shop()
    source = StreamingSource(streams, [])
    sink = NatsSink(nats_options(nats_server.url, **ALLOW))
    client = await MesheryClient.connect(nats_server.url)
    active = await client.sessions_inbox()
    running = Running(Engine([source], [sink]))
    async with running:
        await source.started()
        await wait_until(lambda: sink.outage.live, 10)
        await client.request_logs(log_request("r", "shop", "web-0", "web", follow=True))
        shell = await client.open_exec("shop", "db-0", "db")
        await shell.read_until("# ")
        await wait_until(lambda: len(sink.sessions.sessions) == 2, 5)  # type: ignore[union-attr]
        await running.stop()
    assert streams.open_logs == 0 and streams.shells[0].closed
    lists = []
    while not active.empty():
        lists.append((await active.get())["Object"])
    assert lists[-1] == []
    await client.close()


async def test_active_exec_request_answers_now_and_ticks_while_sessions_are_open(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s, "ACTIVE_INTERVAL", 0.3)
    async with interactive(nats_server, shop(), **ALLOW) as env:
        active = await env.client.sessions_inbox()
        await env.client.request_active()
        assert (await active.get()) == {
            "ObjectType": "active-exec",
            "EventType": "",
            "Request": None,
            "Object": [],
        }
        shell = await env.client.open_exec("shop", "web-0", "web", "t")
        for _ in range(3):  # on start, then ticks
            assert (await active.get(5))["Object"] == [shell.session_id]


async def test_without_a_capable_source_requests_get_an_error(nats_server: NatsServer) -> None:
    async with interactive(nats_server, None, **ALLOW) as env:
        shell = await env.client.open_exec("shop", "web-0", "web")
        assert "no source of this MeshSync" in (await next_of(shell.inbox, "error"))["Object"]


async def test_exec_request_without_a_subject_is_logged_only(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with interactive(nats_server, shop(), **ALLOW) as env:
        await env.client.publish_request(
            "exec-request", {"k": {"id": "i", "name": "web-0", "namespace": "shop"}}
        )
        await env.client.publish_request(
            "exec-request",
            {"k": {"id": "i j", "name": "web-0", "namespace": "shop", "container": "web"}},
        )
        await wait_until(
            lambda: len(log_lines(caplog, logging.WARNING, "nowhere to answer")) == 2, 5
        )
        assert env.open_sessions == []


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="--pod-exec must be auto, on or off"):
        s.SessionPolicy.from_options(Options(pod_exec="maybe"))
    with pytest.raises(ConfigError, match="--session-output-rate"):
        s.SessionPolicy.from_options(Options(session_output_rate="fast"))
    with pytest.raises(ConfigError, match="--max-sessions must be at least 1"):
        s.SessionPolicy.from_options(Options(max_sessions=0))
    policy = s.SessionPolicy.from_options(
        Options(pod_logs=True, session_output_rate="512KiB", pod_exec_namespaces=("a,b",))
    )
    assert (policy.logs, policy.exec, policy.output_rate) == ("on", "auto", 512 * 1024)
    assert policy.exec_namespaces == {"a", "b"}
    assert s.parse_size("2MB") == 2_000_000 and s.parse_size("100k") == 100_000


def test_request_message_is_what_meshery_publishes() -> None:
    data = orjson.loads(request_message("log-stream", {"operator": {"id": "x"}}))
    assert data == {
        "ObjectType": "request-payload",
        "EventType": "ADDED",
        "Request": {"Entity": "log-stream", "Payload": {"operator": {"id": "x"}}},
        "Object": None,
    }
    assert asyncio.iscoroutinefunction(MesheryClient.open_exec)


async def test_a_stop_taken_by_another_replica_ends_the_session(nats_server: NatsServer) -> None:
    """Replicas share the request subject (a queue group): a stop may reach a replica that
    does not run the session, which relays it to the one that does."""
    streams = shop()
    async with interactive(nats_server, streams, **ALLOW) as env:
        other_source = StreamingSource(streams, [])
        other = NatsSink(nats_options(nats_server.url, **ALLOW))
        async with Running(Engine([other_source], [other])):
            await other_source.started()
            await wait_until(lambda: other.outage.live, 10, "second replica connected")
            request = log_request("r", "shop", "web-0", "web", follow=True)
            await env.client.request_logs(request)
            sinks = (env.sink, other)
            await wait_until(lambda: any(k.sessions.sessions for k in sinks), 5)  # type: ignore[union-attr]
            holder, elsewhere = sinks if env.sink.sessions.sessions else sinks[::-1]  # type: ignore[union-attr]
            assert elsewhere.sessions is not None and holder.sessions is not None
            await elsewhere.sessions.handle("log-stream", {"operator": {**request, "stop": True}})
            await wait_until(lambda: not holder.sessions.sessions, 15, "the session stopped")  # type: ignore[union-attr]
            assert streams.open_logs == 0
