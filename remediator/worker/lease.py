"""The target's lease (and the concurrency slot): taken, kept alive, given back."""

from __future__ import annotations

import asyncio
import contextlib
import time

from remediator.errors import StoreUnavailable
from remediator.metrics import Metrics
from remediator.models import SkipReason
from remediator.settings import Settings
from remediator.store.base import Store
from remediator.worker.run import Defer, Run, Skip, Stop


class Lease:
    """The first gate under the lease: take it (``run.token``), or stop.

    A job that finds the target held is merged into the run that holds it
    (``skipped:locked``); a re-delivered one waits for the stale lease to expire instead.
    """

    def __init__(self, store: Store, metrics: Metrics) -> None:
        self.store = store
        self.metrics = metrics

    async def check(self, run: Run) -> Stop | None:
        rule, target = run.known_rule, run.target
        run.token = await self.store.acquire_lease(target, rule.policy.lease, run.job.event_id)
        if run.token is not None:
            run.step("lease.acquired", target, ttl=rule.policy.lease)
            return None
        self.metrics.lease_contention.labels(rule.name).inc()
        if run.delivery.deliveries > 1:
            # Re-delivered after a crash: the dead worker's lease must expire first.
            wait = await self.store.lease_remaining(target) + 0.5
            return Defer("locked", "waiting for a stale lease", time.time(), wait)
        holder = await self.store.lease_holder(target)
        if holder:
            run.step("lease.held", f"by event {holder}", holder=holder)
            return Skip(
                SkipReason.LOCKED,
                f"merged into event {holder} running on target {target} (see: remediator event {holder})",
            )
        # released or expired in between, or taken by an older replica
        return Skip(SkipReason.LOCKED, f"merged into the run that holds the lease on target {target}")


async def release(store: Store, run: Run) -> None:
    """Give back the concurrency slot and the lease the run holds (a store outage: they expire)."""
    rule = run.known_rule
    with contextlib.suppress(StoreUnavailable):
        if run.slot is not None and rule.policy.concurrency_group:
            await store.release_slot(rule.policy.concurrency_group, run.slot)
        if run.token is not None:
            await store.release_lease(run.target, run.token)
    run.slot = run.token = None


async def heartbeat(store: Store, settings: Settings, run: Run, lost: asyncio.Event) -> None:
    """Extend the lease (and the concurrency slot) and keep the job from looking idle
    while the handler runs; set ``lost`` once the lease is gone."""
    rule, target, token = run.known_rule, run.target, run.token
    if token is None:
        raise RuntimeError("heartbeat without a lease")
    ttl = rule.policy.lease
    interval = max(0.05, min(ttl / 3, settings.heartbeat))
    last_ok = time.monotonic()
    while True:
        await asyncio.sleep(interval)
        try:
            if not await store.extend_lease(target, token, ttl):
                lost.set()
                return
            if run.slot is not None and rule.policy.concurrency_group:
                await store.acquire_slot(  # the same token refreshes its expiry
                    rule.policy.concurrency_group, rule.concurrency_limit, run.slot, ttl
                )
            await store.touch(run.consumer, run.delivery.id)
            last_ok = time.monotonic()
        except StoreUnavailable:
            if time.monotonic() - last_ok >= ttl:  # it has expired by now: fail closed
                lost.set()
                return
