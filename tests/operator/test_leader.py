"""Leader election decisions (pure) and the elector against an in-memory Lease API with the
API server's optimistic concurrency (resourceVersion, 409 Conflict)."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from mlfootprint.operator.kube import Conflict, NotFound
from mlfootprint.operator.leader import LeaderElector, LeaseRecord, can_acquire, lease_body, record_of


def test_a_lease_is_free_when_unheld_mine_or_expired_by_my_own_clock() -> None:
    held = LeaseRecord(holder="a", duration_s=15.0)
    assert can_acquire(LeaseRecord(), "b", observed_at=100.0, now=100.0)
    assert can_acquire(held, "a", observed_at=100.0, now=100.0)
    assert not can_acquire(held, "b", observed_at=100.0, now=114.9)
    assert can_acquire(held, "b", observed_at=100.0, now=115.0)


def test_lease_bodies_take_renew_and_release() -> None:
    taken = lease_body("l", "ns", LeaseRecord(holder="a", transitions=3, resource_version="7"), "b", 1_700_000_000.0, 15)
    assert taken["metadata"] == {"name": "l", "namespace": "ns", "resourceVersion": "7"}
    assert taken["spec"]["holderIdentity"] == "b" and taken["spec"]["leaseTransitions"] == 4
    assert taken["spec"]["renewTime"] == "2023-11-14T22:13:20.000000Z" == taken["spec"]["acquireTime"]
    mine = record_of(taken)
    renewed = lease_body("l", "ns", mine, "b", 1_700_000_002.0, 15)
    assert renewed["spec"]["acquireTime"] == "2023-11-14T22:13:20.000000Z" and renewed["spec"]["leaseTransitions"] == 4
    released = lease_body("l", "ns", mine, "b", 1_700_000_003.0, 15, release=True)
    assert released["spec"]["holderIdentity"] == "" and released["spec"]["leaseDurationSeconds"] == 1


class FakeLeases:
    """get/create/replace with resourceVersion checks, like the API server; `down` fails all calls."""

    def __init__(self) -> None:
        self.obj: dict[str, Any] | None = None
        self.rv = 0
        self.down: set[str] = set()  # identities whose requests fail (a partitioned replica)

    def client(self, me: str) -> Any:
        leases = self

        class Client:
            async def get_lease(self, namespace: str, name: str) -> dict[str, Any]:
                leases._check(me)
                if leases.obj is None:
                    raise NotFound(404, "NotFound")
                return copy.deepcopy(leases.obj)

            async def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
                leases._check(me)
                if leases.obj is not None:
                    raise Conflict(409, "AlreadyExists")
                return leases._store(body)

            async def replace_lease(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
                leases._check(me)
                assert leases.obj is not None
                if body["metadata"].get("resourceVersion") != leases.obj["metadata"]["resourceVersion"]:
                    raise Conflict(409, "Conflict")
                return leases._store(body)

        return Client()

    def _check(self, me: str) -> None:
        if me in self.down:
            raise OSError("connection refused")

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        self.rv += 1
        self.obj = copy.deepcopy(body)
        self.obj["metadata"]["resourceVersion"] = str(self.rv)
        return copy.deepcopy(self.obj)

    @property
    def holder(self) -> str:
        return str(((self.obj or {}).get("spec") or {}).get("holderIdentity") or "")


def _elector(leases: FakeLeases, me: str, log: list[tuple[str, bool]]) -> LeaderElector:
    return LeaderElector(
        kube=leases.client(me), namespace="ns", name="l", identity=me,
        on_start=lambda: log.append((me, True)), on_stop=lambda: log.append((me, False)),
        lease_duration_s=0.6, renew_deadline_s=0.4, retry_period_s=0.05,
    )


def test_one_leader_a_clean_stop_hands_over_at_once() -> None:
    leases = FakeLeases()
    log: list[tuple[str, bool]] = []

    async def main() -> None:
        a, b = _elector(leases, "a", log), _elector(leases, "b", log)
        ta = asyncio.create_task(a.run())
        await asyncio.sleep(0.2)
        tb = asyncio.create_task(b.run())
        await asyncio.sleep(0.3)
        assert (a.leader, b.leader) == (True, False) and leases.holder == "a"
        ta.cancel()
        await asyncio.gather(ta, return_exceptions=True)
        assert leases.holder == ""  # released
        await asyncio.sleep(0.2)  # far less than the lease duration
        assert b.leader and leases.holder == "b"
        tb.cancel()
        await asyncio.gather(tb, return_exceptions=True)

    asyncio.run(main())
    assert log == [("a", True), ("a", False), ("b", True), ("b", False)]


def test_a_partitioned_leader_steps_down_before_another_can_take_over() -> None:
    leases = FakeLeases()
    log: list[tuple[str, bool, float]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        a = _elector(leases, "a", [])
        b = _elector(leases, "b", [])
        a.on_stop = lambda: log.append(("a", False, loop.time()))
        b.on_start = lambda: log.append(("b", True, loop.time()))
        ta = asyncio.create_task(a.run())
        await asyncio.sleep(0.2)
        tb = asyncio.create_task(b.run())
        await asyncio.sleep(0.2)
        leases.down.add("a")  # a can no longer reach the API server (but keeps running)
        await asyncio.sleep(1.5)
        assert not a.leader and b.leader
        for t in (ta, tb):
            t.cancel()
        await asyncio.gather(ta, tb, return_exceptions=True)

    asyncio.run(main())
    (_, _, stopped), (_, _, started) = log[0], log[1]
    assert log[0][:2] == ("a", False) and log[1][:2] == ("b", True)
    assert started - stopped >= 0.1  # a stopped at its renew deadline, b took over only after the lease expired


def test_lease_timing_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="retry period < renew deadline < lease duration"):
        LeaderElector(kube=None, namespace="n", name="l", identity="a", on_start=lambda: None,  # type: ignore[arg-type]
                      on_stop=lambda: None, lease_duration_s=5, renew_deadline_s=10, retry_period_s=2)
