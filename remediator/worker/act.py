"""The stage that acts: the handler runs under the held lease, kept alive by a heartbeat."""

from __future__ import annotations

import asyncio
import contextlib
import time

from remediator.handling.context import Context, Resources
from remediator.handling.execution import execute
from remediator.metrics import Metrics
from remediator.models import Outcome, Result
from remediator.settings import Settings
from remediator.store.base import Store
from remediator.worker.lease import heartbeat
from remediator.worker.outcome import Outcomes
from remediator.worker.run import Run


class Act:
    """Runs the rule's handler for a run that passed every gate and holds the lease."""

    def __init__(
        self, *, store: Store, metrics: Metrics, resources: Resources, settings: Settings, outcomes: Outcomes
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.resources = resources
        self.settings = settings
        self.outcomes = outcomes

    async def __call__(self, run: Run) -> Result:
        job, rule, plan = run.job, run.known_rule, run.plan
        if plan is None:
            raise RuntimeError("no plan: the handler runs after the templates rendered")
        dry_run = self.settings.dry_run or rule.policy.dry_run or bool(job.dry_run)
        ctx = Context(
            event_id=job.event_id,
            rule=rule.name,
            target=plan.target,
            alert=job.alert,
            dry_run=dry_run,
            deadline=time.monotonic() + rule.policy.timeout,
            verify_timeout=rule.policy.verify_timeout,
            log=run.log,
            resources=self.resources,
            timeline=run.timeline,
        )
        self.metrics.overhead.observe(max(0.0, time.time() - job.received_at))
        self.outcomes.notifier.send(self.outcomes.notice(run, "started", dry_run=dry_run))
        run.step("handler.started", rule.handler.name, dry_run=dry_run)
        run.log.info("remediation.started", handler=rule.handler.name, dry_run=dry_run)
        lost = asyncio.Event()
        beat = asyncio.create_task(heartbeat(self.store, self.settings, run, lost))
        started = time.monotonic()
        try:
            result = await execute(
                rule.handler, plan.params, ctx, timeout=rule.policy.timeout, lease_lost=lost
            )
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        elapsed = time.monotonic() - started
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
