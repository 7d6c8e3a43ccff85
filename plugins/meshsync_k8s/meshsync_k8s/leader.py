"""Leader election on a ``coordination.k8s.io/v1`` Lease, with client-go's semantics.

Several MeshSync replicas run; one holds the Lease and publishes, the others wait warm. The
rules are client-go's ``leaderelection`` package, so a MeshSync can share the mechanism (and its
failure behaviour) with every Kubernetes controller:

* A Lease held by someone else counts as taken until ``lease_duration`` has passed since this
  replica last *saw it change* (its own clock, never the holder's timestamps: clocks may skew).
* The holder renews every ``retry_period``; if renewing keeps failing for ``renew_deadline`` it
  gives up leadership at once. Because ``renew_deadline < lease_duration``, a replica that lost
  the Lease has stopped before anyone else may take it: the two never publish together.
* Every write carries the Lease's resourceVersion, so two candidates cannot both win a race.
* On a clean shutdown the holder releases the Lease (empty holder, 1 s duration) so that a
  standby takes over at its next try instead of waiting for the Lease to expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from meshsync_k8s.client import ApiClient, ApiError

JITTER = 1.2  # client-go's JitterFactor: retries are spread over [retry, retry * 2.2)


@dataclass(frozen=True)
class LeaseTiming:
    """How long a Lease lasts, how long its holder tries to renew it, how often anyone tries.

    The defaults are shorter than client-go's 15 s / 10 s / 2 s so that a standby takes over
    from a SIGKILLed leader within 15 s: it may take the Lease ``lease_duration`` after it last
    saw it change, at its next try (up to 2.2 x ``retry_period`` later), about 10-12 s here.
    """

    lease_duration: float = 10.0
    renew_deadline: float = 7.0
    retry_period: float = 1.0

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline > JITTER * self.retry_period > 0:
            raise ValueError(
                "leader election needs lease duration > renew deadline > 1.2 x retry period > 0 "
                f"(got {self.lease_duration:g}s, {self.renew_deadline:g}s, "
                f"{self.retry_period:g}s)"
            )


def _now_micro() -> str:
    """MicroTime as the API serialises it."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Campaigns for one Lease and keeps it; ``leading`` says whether this replica holds it.

    ``on_started`` / ``on_stopped`` are called (synchronously, on the event loop) when
    leadership begins and when it is lost; ``on_stopped`` runs before anything else can happen,
    so a caller can stop publishing inside it. Cancelling :meth:`run` (a clean stop) releases
    the Lease without calling ``on_stopped``.
    """

    def __init__(
        self,
        client: ApiClient,
        namespace: str,
        name: str,
        identity: str,
        timing: LeaseTiming | None = None,
        *,
        on_started: Callable[[], None] | None = None,
        on_stopped: Callable[[], None] | None = None,
        log: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
        release_on_cancel: bool = True,
    ) -> None:
        self.client = client
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self.name = name
        self.identity = identity
        self.timing = timing or LeaseTiming()
        self.on_started = on_started
        self.on_stopped = on_stopped
        self.log = log or logging.getLogger("meshsync.k8s.leader")
        self.clock = clock
        self.release_on_cancel = release_on_cancel
        self.leading = False
        #: The holder as last observed, and when (our clock) the record last changed.
        self.observed_holder = ""
        self._observed_spec: dict[str, Any] | None = None
        self._observed_at = 0.0
        self._lease: dict[str, Any] | None = None
        self.transitions = 0

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Campaign, lead until leadership is lost, campaign again; until cancelled."""
        try:
            while True:
                await self._acquire()
                self._became(True)
                await self._renew_until_lost()
                self._became(False)
        finally:
            if self.leading:
                # stopped on purpose (cancelled): not a loss, so on_stopped is not called
                self.leading = False
                if self.release_on_cancel:
                    with contextlib.suppress(ApiError, asyncio.CancelledError):
                        await asyncio.shield(self._release())

    async def _acquire(self) -> None:
        while not await self._try_acquire_or_renew():
            await asyncio.sleep(self._jittered())

    async def _renew_until_lost(self) -> None:
        period = self.timing.retry_period
        while True:
            await asyncio.sleep(period)
            deadline = self.clock() + self.timing.renew_deadline
            while not await self._try_acquire_or_renew():
                if self.observed_holder not in ("", self.identity):
                    self.log.warning("lost the leader lease %s to %s", self.name,
                                     self.observed_holder)  # fmt: skip
                    return
                if self.clock() >= deadline:
                    self.log.warning(
                        "lost the leader lease %s: not renewed within %gs", self.name,
                        self.timing.renew_deadline,
                    )  # fmt: skip
                    return
                await asyncio.sleep(period)

    def _became(self, leading: bool) -> None:
        if leading == self.leading:
            return
        self.leading = leading
        callback = self.on_started if leading else self.on_stopped
        self.log.info(
            "%s the leader (lease %s, identity %s)",
            "became" if leading else "no longer", self.name, self.identity,
        )  # fmt: skip
        if callback is not None:
            callback()

    def _jittered(self) -> float:
        return self.timing.retry_period * (1 + random.random() * JITTER)

    # -- one try, as client-go's tryAcquireOrRenew -------------------------------------------

    async def _try_acquire_or_renew(self) -> bool:
        now = _now_micro()
        mine = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.timing.lease_duration)),
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": 0,
        }
        try:
            lease = await self.client.send("GET", f"{self.path}/{self.name}")
        except ApiError as exc:
            if exc.code != 404:
                self.log.debug("leader lease %s: cannot read it: %s", self.name, exc)
                return False
            return await self._create(mine)
        spec = lease.get("spec") or {}
        if spec != self._observed_spec:
            self._observed_spec = spec
            self._observed_at = self.clock()
            self.observed_holder = str(spec.get("holderIdentity") or "")
        holder = self.observed_holder
        held_by_other = holder and holder != self.identity
        duration = float(spec.get("leaseDurationSeconds") or self.timing.lease_duration)
        if held_by_other and self._observed_at + duration > self.clock():
            return False
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder == self.identity:
            mine["acquireTime"] = spec.get("acquireTime") or now
            mine["leaseTransitions"] = transitions
        else:
            mine["leaseTransitions"] = transitions + 1
        lease["spec"] = mine
        try:
            updated = await self.client.send("PUT", f"{self.path}/{self.name}", lease)
        except ApiError as exc:
            # 409: someone else wrote it first (a race lost), anything else: try again later
            self.log.debug("leader lease %s: update failed: %s", self.name, exc)
            return False
        self._remember(updated)
        return True

    async def _create(self, spec: dict[str, Any]) -> bool:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name},
            "spec": spec,
        }
        try:
            created = await self.client.send("POST", self.path, body)
        except ApiError as exc:
            self.log.debug("leader lease %s: create failed: %s", self.name, exc)
            return False
        self._remember(created)
        return True

    def _remember(self, lease: dict[str, Any]) -> None:
        spec = lease.get("spec") or {}
        self._lease = lease
        self._observed_spec = spec
        self._observed_at = self.clock()
        self.observed_holder = str(spec.get("holderIdentity") or "")
        self.transitions = int(spec.get("leaseTransitions") or 0)

    async def _release(self) -> None:
        """Hand the Lease back at once (client-go's ReleaseOnCancel)."""
        if self._lease is None:
            return
        lease = dict(self._lease)
        spec = dict(lease.get("spec") or {})
        if spec.get("holderIdentity") != self.identity:
            return
        now = _now_micro()
        spec.update(holderIdentity="", leaseDurationSeconds=1, renewTime=now, acquireTime=now)
        lease["spec"] = spec
        await self.client.send("PUT", f"{self.path}/{self.name}", lease)
        self.log.info("released the leader lease %s", self.name)
