"""kopf's index-readiness ToggleSet, patched: same semantics, notifications only on flips."""

from __future__ import annotations

import asyncio

from kopf._cogs.aiokits import aiotoggles

from mlfootprint.operator import kopf_compat


def test_waiters_wake_exactly_when_the_set_turns_on_and_wake_ups_stay_linear() -> None:
    assert kopf_compat.install() and kopf_compat.installed()
    assert kopf_compat.install()  # idempotent

    async def main() -> tuple[int, int]:
        ts = aiotoggles.ToggleSet(all)
        notified = 0
        real = ts._condition.notify_all

        def counting() -> None:
            nonlocal notified
            notified += 1
            real()

        ts._condition.notify_all = counting  # type: ignore[method-assign]
        blocker = await ts.make_toggle(name="blocker")
        toggles = [await ts.make_toggle(name=f"object {i}") for i in range(2000)]
        woke: list[int] = []

        async def waiter(i: int) -> None:
            await ts.wait_for(True)
            woke.append(i)

        waiters = [asyncio.create_task(waiter(i)) for i in range(2000)]
        await asyncio.sleep(0)
        for t in toggles:
            await ts.drop_toggle(t)
        await asyncio.sleep(0)
        assert woke == [] and ts.is_off()  # the blocker still holds everyone
        await ts.drop_toggle(blocker)
        await asyncio.wait_for(asyncio.gather(*waiters), 5)
        # an individual toggle's own waiters still wake on its own changes
        solo = await ts.make_toggle(name="solo")
        solo_waiter = asyncio.create_task(solo.wait_for(True))
        await asyncio.sleep(0)
        await solo.turn_to(True)
        await asyncio.wait_for(solo_waiter, 5)
        return len(woke), notified

    woke, notified = asyncio.run(main())
    assert woke == 2000
    # stock kopf notifies on each of the 4,002 adds and drops (each waking all 2,000 waiters);
    # patched: on the first add (on -> off) and the last drop (off -> on), plus "solo" (on -> off)
    assert notified <= 4, notified
