"""Hook implementations of the nats plugin (entry point ``nats``): the sink and its options."""

from __future__ import annotations

import click

from meshsync_core import Duration, Sink, hookimpl
from meshsync_nats.sessions import session_options
from meshsync_nats.sink import NatsSink


@hookimpl
def meshsync_sinks() -> list[type[Sink]]:
    return [NatsSink]


@hookimpl
def meshsync_commands(cli: click.Group) -> None:
    """``meshsync request``: Meshery's log, exec and session-list requests from a terminal."""
    from meshsync_nats.request_command import build_request_command

    cli.add_command(build_request_command())


@hookimpl
def meshsync_add_options() -> list[click.Option]:
    """Every NATS option; each also has an environment variable (the flag wins over it)."""
    return [
        click.Option(
            ["--broker-url", "broker_url"],
            envvar="BROKER_URL",
            help="[nats] NATS server URL(s): nats://host:4222, host:4222, tls://host:4222; "
            "several comma-separated for a cluster. Env: BROKER_URL.",
        ),
        click.Option(
            ["--nats-user"],
            envvar="NATS_USER",
            help="[nats] User name for user/password authentication. Env: NATS_USER.",
        ),
        click.Option(
            ["--nats-password"],
            envvar="NATS_PASSWORD",
            help="[nats] Password for --nats-user. Env: NATS_PASSWORD.",
        ),
        click.Option(
            ["--nats-token"],
            envvar="NATS_TOKEN",
            help="[nats] Token authentication. Env: NATS_TOKEN.",
        ),
        click.Option(
            ["--nats-creds"],
            envvar="NATS_CREDS",
            type=click.Path(dir_okay=False),
            help="[nats] Credentials file (JWT + NKEY seed). Env: NATS_CREDS.",
        ),
        click.Option(
            ["--nats-nkey-seed"],
            envvar="NATS_NKEY_SEED",
            type=click.Path(dir_okay=False),
            help="[nats] File holding an NKEY user seed. Env: NATS_NKEY_SEED.",
        ),
        click.Option(
            ["--nats-tls-ca"],
            envvar="NATS_TLS_CA",
            type=click.Path(dir_okay=False),
            help="[nats] CA certificate (PEM) to verify the server; enables TLS. Env: NATS_TLS_CA.",
        ),
        click.Option(
            ["--nats-tls-cert"],
            envvar="NATS_TLS_CERT",
            type=click.Path(dir_okay=False),
            help="[nats] Client certificate (PEM) for mutual TLS. Env: NATS_TLS_CERT.",
        ),
        click.Option(
            ["--nats-tls-key"],
            envvar="NATS_TLS_KEY",
            type=click.Path(dir_okay=False),
            help="[nats] Private key of --nats-tls-cert. Env: NATS_TLS_KEY.",
        ),
        click.Option(
            ["--nats-reconnect-wait"],
            envvar="NATS_RECONNECT_WAIT",
            type=Duration(),
            default="2s",
            show_default=True,
            help="[nats] Wait between connection attempts; attempts never stop.",
        ),
        click.Option(
            ["--nats-resend-delay"],
            envvar="NATS_RESEND_DELAY",
            type=Duration(),
            default="2s",
            show_default=True,
            help="[nats] After a reconnect, wait this long (for subscribers to reconnect too) "
            "before re-sending buffered changes. Core NATS only.",
        ),
        click.Option(
            ["--nats-buffer-size"],
            envvar="NATS_BUFFER_SIZE",
            type=click.IntRange(min=1),
            default=10_000,
            show_default=True,
            help="[nats] Objects whose latest change is kept while NATS is unreachable; beyond "
            "it the oldest states are dropped (counted, logged, then a resync).",
        ),
        click.Option(
            ["--nats-jetstream/--no-nats-jetstream"],
            envvar="NATS_JETSTREAM",
            default=False,
            help="[nats] Durable mode: publish into a JetStream stream and wait for acks.",
        ),
        click.Option(
            ["--nats-stream"],
            envvar="NATS_STREAM",
            default="MESHSYNC",
            show_default=True,
            help="[nats] JetStream stream name (created if missing).",
        ),
        click.Option(
            ["--nats-stream-retention"],
            envvar="NATS_STREAM_RETENTION",
            type=click.Choice(["limits", "interest", "workqueue"], case_sensitive=False),
            default="limits",
            show_default=True,
            help="[nats] Retention policy of a stream the sink creates.",
        ),
        click.Option(
            ["--nats-stream-max-age"],
            envvar="NATS_STREAM_MAX_AGE",
            type=Duration(),
            help="[nats] Maximum age of messages in a stream the sink creates (default: none).",
        ),
        click.Option(
            ["--nats-stream-replicas"],
            envvar="NATS_STREAM_REPLICAS",
            type=click.IntRange(min=1, max=5),
            default=1,
            show_default=True,
            help="[nats] Replicas of a stream the sink creates (3 on a 3-node JetStream "
            "cluster survives the loss of a node).",
        ),
        click.Option(
            ["--nats-index-bucket"],
            envvar="NATS_INDEX_BUCKET",
            default="meshsync-index",
            show_default=True,
            help="[nats] JetStream key-value bucket of the published index (created if "
            "missing; needs JetStream on the server). Empty: keep no index in NATS.",
        ),
        click.Option(
            ["--nats-index-replicas"],
            envvar="NATS_INDEX_REPLICAS",
            type=click.IntRange(min=1, max=5),
            default=None,
            help="[nats] Replicas of the index bucket the sink creates [default: "
            "--nats-stream-replicas].",
        ),
        click.Option(
            ["--nats-ack-timeout"],
            envvar="NATS_ACK_TIMEOUT",
            type=Duration(),
            default="5s",
            show_default=True,
            help="[nats] How long to wait for JetStream acks (and flushes) before re-sending.",
        ),
        click.Option(
            ["--meshery-ids/--no-meshery-ids"],
            envvar="MESHSYNC_MESHERY_IDS",
            default=False,
            help="[nats] Fill id fields the way Meshery computes them (Go sends empty ids).",
        ),
        *session_options(),
    ]
