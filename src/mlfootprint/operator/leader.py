"""Leader election over a coordination.k8s.io Lease, as client-go's leaderelection does it.

Several operator replicas watch the same objects (their kopf indexes stay warm), but only the
holder of the Lease refreshes runs and writes status; the others wait to take over.

* **Acquire**: a replica takes the Lease when it has no holder, or when the holder has not
  renewed it for ``lease_duration_s`` *as observed by this replica's own clock* (the time
  the record last changed; no clock needs to agree with another machine's). The update is a
  PUT carrying the observed ``resourceVersion``, so when two replicas try at once the API
  server accepts one and answers the other 409 Conflict.
* **Renew**: the holder renews every ``retry_period_s``. If it cannot renew for
  ``renew_deadline_s`` (< ``lease_duration_s``), it steps down on its own: ``on_stop`` runs
  (the refresh queue cancels what is in flight) *before* any other replica can consider the
  Lease expired, so two leaders never write at once. A renewal answered with another holder
  (the Lease was taken) stops it at once.
* **Release**: on a clean stop the holder empties ``holderIdentity`` so another replica takes
  over at its next try instead of waiting out the lease. A killed holder (no release) is
  replaced once ``lease_duration_s`` has passed without renewal: the hand-over time is at most
  ``lease_duration_s + retry_period_s`` (defaults 15 s + 2 s).

The decisions are pure functions (:func:`can_acquire`, :func:`lease_body`), tested alone;
:class:`LeaderElector` does the I/O through the operator's API client.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mlfootprint import rfc3339
from mlfootprint.operator.kube import Conflict, Kube, NotFound

__all__ = ["LeaderElector", "LeaseRecord", "can_acquire", "default_identity", "lease_body", "record_of"]

log = logging.getLogger(__name__)


def default_identity() -> str:
    """``$POD_NAME`` (the chart sets it from the downward API), else host name and pid."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class LeaseRecord:
    holder: str = ""
    duration_s: float = 0.0
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0
    resource_version: str | None = None

    def same_record(self, other: LeaseRecord | None) -> bool:
        """The same holder and renewal (the record did not move)."""
        return other is not None and (self.holder, self.renew_time, self.transitions) == (
            other.holder, other.renew_time, other.transitions,
        )


def record_of(lease: Mapping[str, Any]) -> LeaseRecord:
    spec = lease.get("spec") or {}
    return LeaseRecord(
        holder=str(spec.get("holderIdentity") or ""),
        duration_s=float(spec.get("leaseDurationSeconds") or 0),
        acquire_time=spec.get("acquireTime"),
        renew_time=spec.get("renewTime"),
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=(lease.get("metadata") or {}).get("resourceVersion"),
    )


def can_acquire(record: LeaseRecord, me: str, observed_at: float, now: float) -> bool:
    """Whether ``me`` may take (or keep) the Lease: it is mine, has no holder, or its holder
    has not renewed it for its duration since this replica last saw it change."""
    if not record.holder or record.holder == me:
        return True
    return now >= observed_at + record.duration_s


def lease_body(
    name: str, namespace: str, record: LeaseRecord | None, me: str, now_wall: float, duration_s: float, *, release: bool = False
) -> dict[str, Any]:
    """The Lease to write to take or renew it (or, with ``release``, to give it up)."""
    held = record is not None and record.holder == me
    transitions = record.transitions if record is not None else 0
    if record is not None and not held and not release:
        transitions += 1
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if record is not None and record.resource_version:
        metadata["resourceVersion"] = record.resource_version
    spec: dict[str, Any] = {
        "holderIdentity": "" if release else me,
        "leaseDurationSeconds": 1 if release else max(int(round(duration_s)), 1),
        "acquireTime": (record.acquire_time if held and record and record.acquire_time else rfc3339.format_micro(now_wall)),
        "renewTime": rfc3339.format_micro(now_wall),
        "leaseTransitions": transitions,
    }
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}


@dataclass
class LeaderElector:
    kube: Kube
    namespace: str
    name: str
    identity: str
    on_start: Callable[[], Awaitable[None] | None]
    on_stop: Callable[[], Awaitable[None] | None]
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        if not self.retry_period_s < self.renew_deadline_s < self.lease_duration_s:
            raise ValueError("leader election needs retry period < renew deadline < lease duration")
        self.leader = False
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0
        self._last_renew = 0.0

    async def _call(self, fn: Callable[[], Awaitable[None] | None]) -> None:
        out = fn()
        if out is not None:
            await out

    async def _set(self, leader: bool) -> None:
        if leader == self.leader:
            return
        self.leader = leader
        log.info("leadership changed", extra={"leader": leader, "identity": self.identity, "lease": f"{self.namespace}/{self.name}"})
        await self._call(self.on_start if leader else self.on_stop)

    async def try_acquire_or_renew(self) -> bool:
        """One attempt; True when this replica holds the Lease afterwards."""
        now = self.clock()
        try:
            lease = await self.kube.get_lease(self.namespace, self.name)
        except NotFound:
            body = lease_body(self.name, self.namespace, None, self.identity, self.wall(), self.lease_duration_s)
            try:
                created = await self.kube.create_lease(self.namespace, body)
            except Conflict:
                return False
            self._observe(record_of(created), now)
            return True
        record = record_of(lease)
        self._observe(record, now)
        if not can_acquire(record, self.identity, self._observed_at, now):
            return False
        body = lease_body(self.name, self.namespace, record, self.identity, self.wall(), self.lease_duration_s)
        try:
            updated = await self.kube.replace_lease(self.namespace, self.name, body)
        except Conflict:
            return False
        self._observe(record_of(updated), now)
        return True

    def _observe(self, record: LeaseRecord, now: float) -> None:
        if not record.same_record(self._observed):
            self._observed = record
            self._observed_at = now

    async def _attempt(self, timeout_s: float) -> bool:
        try:
            async with asyncio.timeout(timeout_s):  # not wait_for: it can swallow a cancellation (3.11)
                return await self.try_acquire_or_renew()
        except Exception as e:  # noqa: BLE001 - timeouts, API and connection errors: retried
            log.warning("lease request failed", extra={"lease": f"{self.namespace}/{self.name}", "error": f"{type(e).__name__}: {e}"})
            return False

    async def run(self) -> None:
        """Acquire, then renew, until cancelled; releases the Lease when cancelled as leader."""
        try:
            while True:
                started = self.clock()
                if self.leader:
                    # never wait past the renew deadline: step down before the lease can expire
                    timeout = max(self._last_renew + self.renew_deadline_s - started, 0.05)
                else:
                    timeout = self.renew_deadline_s / 2
                ok = await self._attempt(timeout)
                if ok:
                    self._last_renew = started  # valid from when the request was sent
                    await self._set(True)
                elif self.leader and (
                    self.clock() - self._last_renew >= self.renew_deadline_s
                    or (self._observed is not None and self._observed.holder not in ("", self.identity))
                ):
                    log.warning("lost the lease or could not renew it in time; stepping down", extra={"identity": self.identity})
                    await self._set(False)
                pause = self.retry_period_s
                if self.leader and not ok:  # wake up in time to step down at the deadline
                    pause = min(pause, max(self._last_renew + self.renew_deadline_s - self.clock(), 0.0))
                await asyncio.sleep(pause)
        finally:
            if self.leader:
                await self._set(False)
                await self.release()

    async def release(self) -> None:
        """Give the Lease up (only if this replica still holds it), so a peer takes over at once."""
        try:
            async with asyncio.timeout(self.renew_deadline_s / 2):
                record = record_of(await self.kube.get_lease(self.namespace, self.name))
                if record.holder != self.identity:
                    return
                body = lease_body(self.name, self.namespace, record, self.identity, self.wall(), self.lease_duration_s, release=True)
                await self.kube.replace_lease(self.namespace, self.name, body)
            log.info("lease released", extra={"identity": self.identity, "lease": f"{self.namespace}/{self.name}"})
        except Exception as e:  # noqa: BLE001 - best effort: the lease then expires on its own
            log.warning("could not release the lease", extra={"error": f"{type(e).__name__}: {e}"})
