"""The resolution stage: a resolved alert's incident is announced once per target, after
the run on it has ended.

An Alertmanager HA pair sends a resolution twice, and the alerts of one target (two pods
of one database) resolve one by one: the first to claim the target's resolution (atomic,
first wins across replicas) announces it; the claim is cleared when a run acts on the
target again, so the next incident's resolution is announced too. While a run holds the
target's lease (it is still verifying the repair that made the alert resolve), the
resolution waits, so the thread reads: the outcome, then "resolved".
"""

from __future__ import annotations

from remediator import clock
from remediator.store.base import Gates, Locks
from remediator.worker.owners import ResolveOwner
from remediator.worker.runs import Run
from remediator.worker.stages import Defer, Stop
from remediator.worker.telling import Teller


def claim_of(run: Run) -> str:
    """What a resolution is claimed under: the target (the alert's episode when the
    target did not render)."""
    return f"target:{run.target}" if run.target else run.job.alert.episode


class AnnounceResolution:
    """Waits for the target's lease to be free, then announces the resolution once."""

    def __init__(
        self,
        locks: Locks,
        gates: Gates,
        teller: Teller,
        *,
        ttl: float,
        interval: float,
        owners: ResolveOwner | None = None,
    ) -> None:
        self.locks, self.gates, self.teller = locks, gates, teller
        self.ttl = ttl
        self.interval = interval
        self.owners = owners

    async def __call__(self, run: Run) -> Stop | None:
        if run.job.alert.status != "resolved":
            return None
        if self.owners is not None and run.plan is None and run.result is None:
            # a resolve: rule's incident is its owner's: find it (best effort: a pod gone
            # since leaves the resolution unannounced, as when no target rendered)
            if (failed := await self.owners.resolve(run)) is not None:
                run.step("resolve.failed", failed.message)
        if run.target and (left := await self.locks.lease_remaining(run.target)) > 0:
            first = run.job.first_deferred_at or clock.now()
            message = f"waiting for the run on {run.target} to end before announcing the resolution"
            return Defer("announce", message, first, min(self.interval, left + 0.1))
        if not await self.gates.claim_resolution(run.known_rule.name, claim_of(run), self.ttl):
            run.step("resolved.duplicate", "this resolution was already announced")
            return None
        self.teller.resolved(run)
        return None
