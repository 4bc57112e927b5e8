"""The target's lease (and the concurrency slot), taken by ``admit.Admit``: kept alive while
the handler runs, and given back if the outcome's store call did not."""

from __future__ import annotations

import asyncio
import contextlib

from remediator import clock
from remediator.errors import StoreUnavailable
from remediator.settings import Settings
from remediator.store.base import Locks, Queue
from remediator.worker.runs import Run


async def release(locks: Locks, run: Run) -> None:
    """Give back the concurrency slot and the lease the run holds (a store outage: they expire)."""
    rule = run.known_rule
    with contextlib.suppress(StoreUnavailable):
        if run.slot is not None and rule.policy.concurrency_group:
            await locks.release_slot(rule.policy.concurrency_group, run.slot)
        if run.token is not None:
            await locks.release_lease(run.target, run.token)
    run.slot = run.token = None


async def heartbeat(locks: Locks, queue: Queue, settings: Settings, run: Run, lost: asyncio.Event) -> None:
    """Extend the lease (and the concurrency slot) and keep the job from looking idle
    while the handler runs; set ``lost`` once the lease is gone."""
    rule, target, token = run.known_rule, run.target, run.token
    if token is None:
        raise RuntimeError("heartbeat without a lease")
    ttl = rule.policy.lease
    interval = max(0.05, min(ttl / 3, settings.heartbeat))
    last_ok = clock.monotonic()
    while True:
        await asyncio.sleep(interval)
        try:
            if not await locks.extend_lease(target, token, ttl):
                lost.set()
                return
            if run.slot is not None and rule.policy.concurrency_group:
                await locks.acquire_slot(  # the same token refreshes its expiry
                    rule.policy.concurrency_group, rule.concurrency_limit, run.slot, ttl
                )
            await queue.touch(run.consumer, run.delivery.id)
            last_ok = clock.monotonic()
        except StoreUnavailable:
            if clock.monotonic() - last_ok >= ttl:  # it has expired by now: fail closed
                lost.set()
                return
