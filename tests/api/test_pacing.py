"""The webhook's pacing (issue 29): while the workers are busy, at most ``limit`` requests
are worked on at once, the others wait in order; with the workers idle there is no cap."""

from __future__ import annotations

import asyncio

from remediator.api.pacing import IntakePacing


async def enter_and_hold(pacing: IntakePacing, name: str, order: list[str], release: asyncio.Event) -> None:
    async with pacing:
        order.append(name)
        await release.wait()


async def test_busy_workers_cap_the_requests_in_flight_and_the_rest_go_in_order() -> None:
    pacing, order, release = IntakePacing(2), list[str](), asyncio.Event()
    pacing.busy = lambda: True
    tasks = [asyncio.create_task(enter_and_hold(pacing, f"r{i}", order, release)) for i in range(5)]
    await asyncio.sleep(0.01)
    assert order == ["r0", "r1"] and pacing.waiting == 3
    release.set()
    await asyncio.gather(*tasks)
    assert order == ["r0", "r1", "r2", "r3", "r4"] and pacing.waiting == 0


async def test_idle_workers_leave_the_intake_uncapped() -> None:
    pacing, order, release = IntakePacing(2), list[str](), asyncio.Event()
    tasks = [asyncio.create_task(enter_and_hold(pacing, f"r{i}", order, release)) for i in range(5)]
    await asyncio.sleep(0.01)
    assert len(order) == 5  # busy() is False: nothing waits
    release.set()
    await asyncio.gather(*tasks)


async def test_workers_going_idle_let_every_waiting_request_in() -> None:
    busy = [True]
    pacing, order, release = IntakePacing(1), list[str](), asyncio.Event()
    pacing.busy = lambda: busy[0]
    first = asyncio.create_task(enter_and_hold(pacing, "r0", order, release))
    await asyncio.sleep(0.01)
    blocked = asyncio.Event()
    rest = [asyncio.create_task(enter_and_hold(pacing, f"r{i}", order, blocked)) for i in (1, 2, 3)]
    await asyncio.sleep(0.01)
    assert order == ["r0"]
    busy[0] = False
    release.set()
    await first
    await asyncio.sleep(0.01)
    assert order == ["r0", "r1", "r2", "r3"]  # all in at once, none waits for another
    blocked.set()
    await asyncio.gather(*rest)


async def test_a_request_that_goes_away_while_waiting_gives_up_its_place() -> None:
    pacing, order, release = IntakePacing(1), list[str](), asyncio.Event()
    pacing.busy = lambda: True
    first = asyncio.create_task(enter_and_hold(pacing, "r0", order, release))
    await asyncio.sleep(0.01)
    gone = asyncio.create_task(enter_and_hold(pacing, "gone", order, release))
    last = asyncio.create_task(enter_and_hold(pacing, "r2", order, release))
    await asyncio.sleep(0.01)
    gone.cancel()
    await asyncio.sleep(0.01)
    assert pacing.waiting == 1
    release.set()
    await asyncio.gather(first, last)
    assert order == ["r0", "r2"] and pacing._inflight == 0
