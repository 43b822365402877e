"""A fix for kopf's start-up with many indexed objects (O(N^2) wake-ups), applied at start.

kopf holds back every handler until all ``@kopf.index``es are populated. It does so with one
``ToggleSet(all)`` (``operator_indexed``): each indexed object adds a toggle when its first
event arrives and drops it once indexed, and every object's worker (indexed or not) waits on
the set's condition until all toggles are gone. ``ToggleSet.make_toggle``/``drop_toggle``
call ``Condition.notify_all()`` every time, so each of the 2N changes wakes all N waiting
workers to re-check the set: O(N^2) wake-ups. Measured with 10,000 TrainingRuns and 10,000
pods (kopf 1.45.2): not one refresh in the first 400 s, the operator spinning at 0.4 core in
``Condition.notify_all``/``call_soon`` (benchmarks/bench_operator_scale.py, docs/operator.md).

The waiters only care about the set's aggregate state (``is_on() == wanted``), and a
toggle's own waiters about its own state, which adding or dropping *another* toggle does not
change. So notifying only when the aggregate state flips wakes exactly the tasks that can
proceed, and never misses one: the same semantics with O(N) work. ``is_on()`` stays cheap
while the set is off (``all()`` stops at the first toggle, which is off).

Applied by :func:`install` (idempotent) before ``kopf.operator()`` starts; when kopf's
internals are not the shape this was written for, nothing is patched and a warning says so
(the operator then starts as slowly as stock kopf, but correctly).
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["install", "installed"]

log = logging.getLogger(__name__)

_MARK = "_mlfootprint_aggregate_notify"


def installed() -> bool:
    from kopf._cogs.aiokits import aiotoggles

    return bool(getattr(aiotoggles.ToggleSet, _MARK, False))


def install() -> bool:
    """Patch ``kopf._cogs.aiokits.aiotoggles.ToggleSet``; True when it is (now) patched."""
    try:
        from kopf._cogs.aiokits import aiotoggles
    except ImportError:  # pragma: no cover - a kopf without this module
        log.warning("kopf internals changed (no aiotoggles); start-up with many objects stays O(N^2)")
        return False
    cls: Any = aiotoggles.ToggleSet
    if getattr(cls, _MARK, False):
        return True
    probe = cls(all)
    if not all(hasattr(probe, a) for a in ("_condition", "_toggles", "_fn")) or not all(
        hasattr(cls, m) for m in ("make_toggle", "drop_toggle", "drop_toggles", "is_on")
    ):
        log.warning("kopf internals changed (ToggleSet); start-up with many objects stays O(N^2)")
        return False
    toggle_cls = aiotoggles.Toggle

    async def make_toggle(self: Any, __val: bool = False, *, name: str | None = None) -> Any:
        toggle = toggle_cls(__val, name=name, condition=self._condition)
        async with self._condition:
            before = self.is_on()
            self._toggles.add(toggle)
            if self.is_on() != before:
                self._condition.notify_all()
        return toggle

    async def drop_toggle(self: Any, toggle: Any) -> None:
        async with self._condition:
            before = self.is_on()
            self._toggles.discard(toggle)
            if self.is_on() != before:
                self._condition.notify_all()

    async def drop_toggles(self: Any, toggles: Any) -> None:
        async with self._condition:
            before = self.is_on()
            self._toggles.difference_update(toggles)
            if self.is_on() != before:
                self._condition.notify_all()

    cls.make_toggle = make_toggle
    cls.drop_toggle = drop_toggle
    cls.drop_toggles = drop_toggles
    setattr(cls, _MARK, True)
    log.debug("kopf ToggleSet notifies on aggregate changes only")
    return True
