"""The act stage: the rule's probe, then its steps one after another (``chain.py``; a
single ``handler:`` is the one-step chain), all under the held lease, kept alive by a
heartbeat. The result goes on the run for the outcome stage to record; a job whose result
is known already (it failed before acting, or its precheck found nothing to do) passes.

After an approval, the first step's precheck runs again here, under the lease, before it
acts: the handler's three phases run together (``execution.execute``).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from functools import cached_property

import aiohttp

from remediator import clock
from remediator.handling.context import Resources
from remediator.metrics import Metrics
from remediator.models import Outcome, Result
from remediator.settings import Settings
from remediator.store.base import Store
from remediator.worker import probe
from remediator.worker.chain import Chain
from remediator.worker.lease import heartbeat
from remediator.worker.runs import Run
from remediator.worker.stages import Stop
from remediator.worker.telling import Teller


@dataclass(frozen=True, kw_only=True)
class Act:
    """Runs the rule's handler for a run that passed every gate and holds the lease."""

    store: Store
    metrics: Metrics
    resources: Resources
    settings: Settings
    teller: Teller

    async def __call__(self, run: Run) -> Stop | None:
        if run.result is not None:
            return None
        run.result = await self.act(run)
        run.acted = True
        return None

    async def act(self, run: Run) -> Result:
        job, rule, plan = run.job, run.known_rule, run.plan
        if plan is None:
            raise RuntimeError("no plan: the handler runs after the templates rendered")
        dry_run = self.settings.dry_run or rule.policy.dry_run or bool(job.dry_run)
        self.metrics.overhead.observe(max(0.0, clock.now() - job.received_at))
        lost = asyncio.Event()
        beat = asyncio.create_task(heartbeat(self.store.locks, self.store.queue, self.settings, run, lost))
        resumed = bool(run.finished_steps())
        try:
            if (
                plan.probe is not None
                and not resumed
                and (healthy := await probe.before(run, plan.probe, self.http))
            ):
                return healthy
            result = await self.chain.run(run, plan, dry_run=dry_run, lost=lost)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        if plan.probe is not None and result.outcome is Outcome.DRY_RUN:
            result.plan.extend(plan.probe.plan(rule.policy.verify_timeout))
        return result

    @property
    def http(self) -> aiohttp.ClientSession:
        return self.resources.http

    @cached_property
    def chain(self) -> Chain:
        return Chain(
            store=self.store,
            metrics=self.metrics,
            resources=self.resources,
            settings=self.settings,
            teller=self.teller,
        )
