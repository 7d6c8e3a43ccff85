"""Several replicas, one publishing: the Kubernetes source's side of leader election.

With ``--leader-elect`` every replica connects, lists and watches as usual (a standby is warm:
its view of the cluster is current), but only the holder of the Lease emits events:

* A standby emits nothing. Its initial sync completes as usual (sinks connect, ``/readyz``
  answers 200), so a takeover needs no start-up.
* On becoming the leader, the source re-emits every object it tracks as ``ADDED`` (a resync, as
  Go MeshSync does on start) and from then on emits every change.
* On losing the Lease the process exits at once (exit code 3, as client-go controllers do on
  ``OnStoppedLeading``): nothing this replica still holds in a sink's buffer may be published
  after the new leader has started. Kubernetes restarts it, and it comes back as a standby.

The election itself is :mod:`meshsync_k8s.leader` (client-go's rules).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import click

from meshsync_core import ConfigError, Duration, Options
from meshsync_k8s.client import ApiClient
from meshsync_k8s.leader import LeaderElector, LeaseTiming

LOST_EXIT_CODE = 3
_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


#: The Lease's name unless ``--leader-elect-lease`` says otherwise.
DEFAULT_LEASE = "meshsync"
#: LeaseTiming field -> (option key, flag, help). Each option is declared from this table and
#: read back by ``Leadership.from_options``; its default is the LeaseTiming field's.
_TIMING_OPTIONS: dict[str, tuple[str, str, str]] = {
    "lease_duration": (
        "leader_elect_lease_duration", "--leader-elect-lease-duration",
        "[k8s] How long a Lease not renewed counts as held (client-go's meaning).",
    ),
    "renew_deadline": (
        "leader_elect_renew_deadline", "--leader-elect-renew-deadline",
        "[k8s] How long the leader keeps trying to renew before it gives up.",
    ),
    "retry_period": (
        "leader_elect_retry_period", "--leader-elect-retry-period",
        "[k8s] Time between two tries to acquire or renew the Lease.",
    ),
}  # fmt: skip


def leadership_options() -> list[click.Option]:
    defaults = LeaseTiming()
    return [
        click.Option(
            ["--leader-elect/--no-leader-elect", "leader_elect"],
            default=False,
            show_default=True,
            envvar="MESHSYNC_LEADER_ELECT",
            help="[k8s] Run as one of several replicas: only the holder of a Lease publishes, "
            "the others stay connected and take over when it goes away.",
        ),
        click.Option(
            ["--leader-elect-lease", "leader_elect_lease"],
            default=DEFAULT_LEASE,
            show_default=True,
            envvar="MESHSYNC_LEADER_ELECT_LEASE",
            help="[k8s] Name of the coordination.k8s.io Lease the replicas compete for.",
        ),
        click.Option(
            ["--leader-elect-namespace", "leader_elect_namespace"],
            default=None,
            envvar="MESHSYNC_LEADER_ELECT_NAMESPACE",
            help="[k8s] Namespace of the Lease [default: POD_NAMESPACE, the in-cluster "
            "namespace, or default].",
        ),
        *(
            click.Option(
                [flag, key],
                type=Duration(),
                default=f"{getattr(defaults, field):g}s",
                show_default=True,
                help=help_text,
            )
            for field, (key, flag, help_text) in _TIMING_OPTIONS.items()
        ),
    ]


def _default_namespace() -> str:
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return _SA_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


def _exit_now() -> None:
    logging.shutdown()
    sys.stderr.flush()
    os._exit(LOST_EXIT_CODE)


class Leadership:
    """What ``--leader-elect`` and its options ask for; None from :meth:`from_options` if off."""

    def __init__(
        self, lease: str, namespace: str, identity: str, timing: LeaseTiming,
        on_lost: Callable[[], None] = _exit_now,
    ) -> None:  # fmt: skip
        self.lease = lease
        self.namespace = namespace
        self.identity = identity
        self.timing = timing
        self.on_lost = on_lost
        self.elector: LeaderElector | None = None

    @classmethod
    def from_options(cls, options: Options) -> Leadership | None:
        if not options.get("leader_elect"):
            return None
        given = {field: options.get(key) for field, (key, _f, _h) in _TIMING_OPTIONS.items()}
        try:
            # unset (or 0): LeaseTiming's default
            timing = LeaseTiming(**{field: float(value) for field, value in given.items() if value})
        except ValueError as exc:
            raise ConfigError(f"--leader-elect: {exc}") from None
        identity = os.environ.get("POD_NAME") or socket.gethostname()
        return cls(
            str(options.get("leader_elect_lease") or DEFAULT_LEASE),
            str(options.get("leader_elect_namespace") or _default_namespace()),
            f"{identity}_{uuid.uuid4().hex[:8]}",  # unique even when two share a host name
            timing,
        )

    @property
    def leading(self) -> bool:
        return self.elector is not None and self.elector.leading

    def elector_for(
        self, client: ApiClient, on_started: Callable[[], None], log: logging.Logger
    ) -> LeaderElector:
        def lost() -> None:
            log.error(
                "lost the leadership of lease %s/%s: exiting so that only the new leader "
                "publishes", self.namespace, self.lease,
            )  # fmt: skip
            self.on_lost()

        self.elector = LeaderElector(
            client, self.namespace, self.lease, self.identity, self.timing,
            on_started=on_started, on_stopped=lost, log=log,
        )  # fmt: skip
        return self.elector
