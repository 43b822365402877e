"""The refresh queue: every run refreshed once per interval, bounded concurrency, oldest first
when behind, retry delays, removal, and leadership (pause cancels what is in flight)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from mlfootprint.operator.handlers.queue import _delay
from mlfootprint.operator.scheduler import RefreshScheduler


def _body(uid: str) -> dict[str, Any]:
    return {"metadata": {"uid": uid, "namespace": "ns", "name": uid}}


async def until(pred: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll ``pred`` on the event loop (not a fixed sleep: a loaded machine stalls the loop)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not pred():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_first_refreshes_are_spread_over_the_interval() -> None:
    s = RefreshScheduler(interval_s=30.0, refresh=lambda kind, body: asyncio.sleep(0))
    offsets = [s.spread(f"uid-{i}") for i in range(1000)]
    assert all(0 <= o < 30.0 for o in offsets)
    assert sum(o < 15.0 for o in offsets) in range(400, 600)  # about half in each half
    assert s.spread("uid-7") == s.spread("uid-7")  # stable across restarts


def test_each_run_is_refreshed_every_interval_with_bounded_concurrency() -> None:
    calls: dict[str, int] = {}
    running = 0
    peak = 0

    async def refresh(kind: str, body: Mapping[str, Any]) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        calls[body["metadata"]["uid"]] = calls.get(body["metadata"]["uid"], 0) + 1
        running -= 1

    async def main() -> None:
        s = RefreshScheduler(interval_s=0.3, refresh=refresh, concurrency=4)
        for i in range(40):
            s.upsert("TrainingRun", f"u{i}", _body(f"u{i}"))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        task = asyncio.create_task(s.run())
        await asyncio.sleep(1.5)
        await until(lambda: len(calls) == 40 and min(calls.values()) >= 2)  # every run more than once
        elapsed_s = loop.time() - t0
        snapshot = dict(calls)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        st = s.stats()["TrainingRun"]
        assert st.runs == 40
        # never more often than the interval (the first refresh within the first one): at most
        # elapsed / 0.3 + 1 each (6 in 1.5 s on an idle machine)
        assert max(snapshot.values()) <= elapsed_s / 0.3 + 1, (elapsed_s, snapshot)

    asyncio.run(main())
    assert peak <= 4


def test_when_behind_the_oldest_run_goes_first() -> None:
    order: list[str] = []

    async def refresh(kind: str, body: Mapping[str, Any]) -> None:
        order.append(body["metadata"]["uid"])
        await asyncio.sleep(0.05)

    async def main() -> None:
        s = RefreshScheduler(interval_s=10.0, refresh=refresh, concurrency=1)
        for uid in ("a", "b", "c"):
            s.upsert("TrainingRun", uid, _body(uid))
        # make them all overdue, c the most
        s._entries["a"].due, s._entries["b"].due, s._entries["c"].due = -1.0, -2.0, -3.0
        for uid in ("a", "b", "c"):
            s._push(s._entries[uid])
        task = asyncio.create_task(s.run())
        await until(lambda: len(order) >= 3)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    assert order[:3] == ["c", "b", "a"]


def test_a_temporary_error_is_retried_after_its_delay_and_removal_stops_a_run() -> None:
    calls: list[float] = []

    async def refresh(kind: str, body: Mapping[str, Any]) -> None:
        calls.append(asyncio.get_running_loop().time())
        raise kopf.TemporaryError("boom", delay=0.2)

    async def main() -> None:
        s = RefreshScheduler(interval_s=100.0, refresh=refresh, delay_of=_delay)
        s.upsert("TrainingRun", "x", _body("x"))
        s._entries["x"].due = 0.0
        s._push(s._entries["x"])
        task = asyncio.create_task(s.run())
        await until(lambda: len(calls) >= 2)
        s.remove("x")
        n = len(calls)
        await asyncio.sleep(0.3)
        assert len(calls) == n  # removed: no more refreshes
        assert s.stats() == {}
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    assert len(calls) >= 2
    assert all(b - a >= 0.19 for a, b in zip(calls, calls[1:], strict=False))  # the error's delay, not the interval


def test_pausing_cancels_refreshes_in_flight_and_nothing_runs_until_activated() -> None:
    started: list[str] = []
    finished: list[str] = []

    async def refresh(kind: str, body: Mapping[str, Any]) -> None:
        started.append(body["metadata"]["uid"])
        await asyncio.sleep(5)
        finished.append(body["metadata"]["uid"])

    async def main() -> None:
        s = RefreshScheduler(interval_s=0.1, refresh=refresh, concurrency=8)
        for i in range(3):
            s.upsert("TrainingRun", f"u{i}", _body(f"u{i}"))
        task = asyncio.create_task(s.run())
        await until(lambda: len(started) == 3)
        await s.deactivate()
        assert not s._tasks and finished == []
        n = len(started)
        await asyncio.sleep(0.4)
        assert len(started) == n  # paused: nothing starts
        assert s.stats()["TrainingRun"].in_flight == 0
        s.activate()
        await until(lambda: len(started) > n)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())


def test_stats_report_the_oldest_refresh_age() -> None:
    now = [100.0]

    async def refresh(kind: str, body: Mapping[str, Any]) -> None:
        return None

    s = RefreshScheduler(interval_s=30.0, refresh=refresh, clock=lambda: now[0])
    s.upsert("TrainingRun", "a", _body("a"))
    s.upsert("InferenceService", "b", _body("b"))
    now[0] = 145.0
    st = s.stats()
    assert st["TrainingRun"].oldest_age_s == 45.0 and st["TrainingRun"].overdue == 1
    s._entries["a"].last_ok = 140.0
    assert s.stats()["TrainingRun"].oldest_age_s == 5.0
    assert s.stats()["InferenceService"].runs == 1
