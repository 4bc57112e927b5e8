"""The act stage: the rule's probe, the handler, the probe again (``probe.py``), all under
the held lease, kept alive by a heartbeat. The result goes on the run for the outcome
stage to record; a job whose result is known already (it failed before acting) passes.

Slots for what comes next (runbooks issue): the handler's precheck runs again here,
under the lease, after an approval; ``steps:`` run one after another here, a single
``handler:`` being the one-step chain.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import aiohttp

from remediator import clock
from remediator.handling.context import Context, Resources
from remediator.handling.execution import execute
from remediator.metrics import Metrics
from remediator.models import Outcome, Result
from remediator.rules.ruleset import Plan
from remediator.settings import Settings
from remediator.store.base import Store
from remediator.worker import probe
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
        try:
            if plan.probe is not None and (healthy := await probe.before(run, plan.probe, self.http)):
                return healthy
            result = await self._handler(run, plan, dry_run, lost)
            if plan.probe is not None and not dry_run:
                within = rule.policy.verify_timeout
                result = await probe.after(run, plan.probe, self.http, result, within=within, lost=lost)
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

    async def _handler(self, run: Run, plan: Plan, dry_run: bool, lost: asyncio.Event) -> Result:
        job, rule = run.job, run.known_rule
        ctx = Context(
            event_id=job.event_id,
            rule=rule.name,
            target=plan.target,
            alert=job.alert,
            dry_run=dry_run,
            deadline=clock.monotonic() + rule.policy.timeout,
            verify_timeout=rule.policy.verify_timeout,
            log=run.log,
            resources=self.resources,
            timeline=run.timeline,
        )
        self.teller.started(run, dry_run=dry_run)
        run.step("handler.started", rule.handler.name, dry_run=dry_run)
        run.log.info("remediation.started", handler=rule.handler.name, dry_run=dry_run)
        started = clock.monotonic()
        result = await execute(rule.handler, plan.params, ctx, timeout=rule.policy.timeout, lease_lost=lost)
        elapsed = clock.monotonic() - started
        run.step("handler.finished", result.outcome.value, seconds=round(elapsed, 3))
        self.metrics.handler_duration.labels(rule.handler.name).observe(elapsed)
        result.details.setdefault("duration_seconds", round(elapsed, 3))
        if dry_run and result.outcome is Outcome.SUCCEEDED:
            return Result.failed("handler acted although dry-run was on (handler bug)")
        if dry_run and result.outcome is Outcome.FAILED:
            # The precheck could not read the target (e.g. `make run` far from the cluster):
            # a dry run still shows what it would do, from the params alone.
            return Result.dry_run(
                rule.handler.plan(plan.params),
                f"dry run; the precheck failed, so this plan is from the params alone: {result.message}",
                precheck_error=result.message,
                **result.details,
            )
        return result
