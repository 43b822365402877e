"""One refresh queue for every run, instead of one kopf timer task per object.

kopf runs a ``@kopf.timer`` as a task per object that sleeps ``interval`` *after* each call,
goes through kopf's full handler machinery (state, outcomes, patch application) on every
tick, and has its schedule reset by every watch event. With 10,000 runs that is 10,000 tasks
whose periods drift (interval + handler time + event-loop lag) and bunch together, with no
bound on how many refreshes run at once and no way to see how far behind they are.

:class:`RefreshScheduler` keeps the latest body of every run (fed by the runs' watch events)
and one heap of due times. Each run is refreshed every ``interval_s`` measured from the start
of its previous refresh (so the period does not grow by the refresh's own time); first
refreshes are spread over the first interval by the run's uid, so 10,000 runs do not all
fire at start-up; at most ``concurrency`` refreshes run at once (the API client's connection
pool); a run that is overdue waits in due-time order, oldest first. Only one refresh of a run
runs at a time, and it always reads the newest body.

Leadership: the queue refreshes only while ``active()`` is true (the leader-election lease
is held, :mod:`mlfootprint.operator.leader`); :meth:`deactivate` cancels the refreshes in
flight at once, before the lease can expire, so a former leader writes nothing after another
replica may have taken over.

Figure age: :meth:`stats` reports, per kind, the runs, the overdue ones and the age of the
oldest refresh (time since a run's last *successful* refresh, or since it was first seen if
it has none yet); each successful refresh records the time since the previous one. These
are exported as ``mlfootprint_operator_oldest_refresh_age_seconds`` and
``mlfootprint_operator_refresh_lag_seconds`` (docs/operator.md).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["KindStats", "RefreshScheduler"]

log = logging.getLogger(__name__)

Refresh = Callable[[str, Mapping[str, Any]], Awaitable[None]]


@dataclass
class _Entry:
    kind: str
    uid: str
    body: Mapping[str, Any]
    due: float
    seen: float
    last_ok: float | None = None
    running: bool = False
    generation: int = 0  # bumped when re-queued, so stale heap items are skipped


@dataclass(frozen=True)
class KindStats:
    runs: int = 0
    overdue: int = 0
    in_flight: int = 0
    oldest_age_s: float = 0.0


@dataclass
class RefreshScheduler:
    interval_s: float
    refresh: Refresh
    concurrency: int = 16
    clock: Callable[[], float] = time.monotonic
    on_refreshed: Callable[[str, float], None] | None = None  # kind, seconds since the previous refresh
    delay_of: Callable[[BaseException], float | None] = lambda e: None  # retry delay an error asks for
    start_paused: bool = False  # with leader election: nothing until activate()
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _heap: list[tuple[float, int, str, int]] = field(default_factory=list)
    _seq: int = 0
    _wake: asyncio.Event | None = None
    _active: bool = True
    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._active = not self.start_paused

    # -- feeding (watch events)
    def spread(self, uid: str) -> float:
        """A stable offset in [0, interval) for the first refresh of ``uid``."""
        return (zlib.crc32(uid.encode()) % 10_000) / 10_000.0 * self.interval_s

    def upsert(self, kind: str, uid: str, body: Mapping[str, Any]) -> None:
        e = self._entries.get(uid)
        if e is not None:
            e.body = body
            return
        now = self.clock()
        e = _Entry(kind=kind, uid=uid, body=body, due=now + self.spread(uid), seen=now)
        self._entries[uid] = e
        self._push(e)

    def remove(self, uid: str) -> None:
        self._entries.pop(uid, None)
        task = self._tasks.pop(uid, None)
        if task is not None:
            task.cancel()

    def __len__(self) -> int:
        return len(self._entries)

    def _push(self, e: _Entry) -> None:
        self._seq += 1
        e.generation += 1
        heapq.heappush(self._heap, (e.due, self._seq, e.uid, e.generation))
        if self._wake is not None:
            self._wake.set()

    # -- leadership
    def active(self) -> bool:
        return self._active

    def activate(self) -> None:
        if not self._active:
            log.info("refresh queue active", extra={"runs": len(self._entries)})
        self._active = True
        now = self.clock()
        for e in self._entries.values():  # a new leader refreshes soon, still spread
            if e.due < now:
                e.due = now + self.spread(e.uid) / 4
                self._push(e)
        if self._wake is not None:
            self._wake.set()

    async def deactivate(self) -> None:
        """Stop refreshing now: cancel the refreshes in flight and wait until they have ended."""
        if self._active:
            log.info("refresh queue paused", extra={"in_flight": len(self._tasks)})
        self._active = False
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- figures
    def stats(self) -> dict[str, KindStats]:
        """Per kind; safe to call from another thread (the metrics server's)."""
        now = self.clock()
        acc: dict[str, list[float]] = {}
        for e in list(self._entries.values()):  # one C-level copy under the GIL
            a = acc.setdefault(e.kind, [0, 0, 0, 0.0])
            a[0] += 1
            if e.running:
                a[2] += 1
            elif e.due <= now:
                a[1] += 1
            a[3] = max(a[3], now - (e.last_ok if e.last_ok is not None else e.seen))
        return {k: KindStats(int(a[0]), int(a[1]), int(a[2]), a[3]) for k, a in acc.items()}

    # -- the loop
    async def run(self) -> None:
        """Refresh due runs until cancelled."""
        self._wake = asyncio.Event()
        sem = asyncio.Semaphore(self.concurrency)
        try:
            while True:
                self._wake.clear()
                if not self._active:
                    await self._wake.wait()
                    continue
                now = self.clock()
                launched = False
                while self._heap and self._heap[0][0] <= now and self._active:
                    _due, _seq, uid, gen = self._heap[0]
                    e = self._entries.get(uid)
                    if e is None or gen != e.generation or e.running:
                        heapq.heappop(self._heap)
                        continue
                    if sem.locked():
                        break
                    heapq.heappop(self._heap)
                    await sem.acquire()
                    e.running = True
                    self._tasks[uid] = asyncio.create_task(self._one(e, sem), name=f"refresh {e.kind} {uid}")
                    launched = True
                if launched:
                    await asyncio.sleep(0)  # let the refreshes start before looking again
                    continue
                timeout = None
                if self._heap and not sem.locked():
                    timeout = max(self._heap[0][0] - self.clock(), 0.0)
                if sem.locked():
                    await self._wait_slot(sem)
                    continue
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the
                # task's cancellation when the event is set at the same moment, and the
                # queue then never stopped
                try:
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
                except TimeoutError:
                    pass
        finally:
            for t in list(self._tasks.values()):
                t.cancel()

    async def _wait_slot(self, sem: asyncio.Semaphore) -> None:
        await sem.acquire()
        sem.release()

    async def _one(self, e: _Entry, sem: asyncio.Semaphore) -> None:
        started = self.clock()
        delay: float | None = None
        ok = False
        try:
            await self.refresh(e.kind, e.body)
            ok = True
        except asyncio.CancelledError:
            delay = 0.0
            raise
        except Exception as ex:  # noqa: BLE001 - the refresh reports its own failures; retry later
            delay = self.delay_of(ex)
            if delay is None:
                log.warning("refresh failed", extra={"kind": e.kind, "uid": e.uid, "error": type(ex).__name__})
        finally:
            sem.release()
            e.running = False
            if self._tasks.get(e.uid) is asyncio.current_task():
                del self._tasks[e.uid]
            now = self.clock()
            if ok:
                if self.on_refreshed is not None:
                    self.on_refreshed(e.kind, now - (e.last_ok if e.last_ok is not None else e.seen))
                e.last_ok = now
            if self._entries.get(e.uid) is e:
                e.due = max(started + self.interval_s, now) if delay is None else now + delay
                self._push(e)
