"""A job's way from the queue to its outcome: one literal list of stages.

Like Alertmanager's notify ``MultiStage``, the pipeline is the list ``Pipeline.stages``
and a job runs through it with ``first_stop``: each stage answers Skip (recorded as
``skipped:<reason>``), Defer (the job waits and comes back) or nothing (go on). Render,
the gates, the admissions, approval, act and outcome are all stages; people are told
from one place (``telling.Teller``). Before the list, ``process`` settles what earlier
deliveries of the job left (an outcome already recorded, steps to carry over, too many
deliveries) and finds the job's rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable

import structlog

from remediator import clock
from remediator.durations import format_duration
from remediator.errors import StoreUnavailable
from remediator.handling.context import Resources
from remediator.metrics import Metrics
from remediator.models import Result, Step
from remediator.notify.notice import Notifier
from remediator.rules.ruleset import RuleSet
from remediator.settings import Settings
from remediator.store.base import Store
from remediator.store.values import Delivery
from remediator.worker.act import Act
from remediator.worker.admit import Admit
from remediator.worker.approval import AwaitingApproval
from remediator.worker.brake import Brake
from remediator.worker.gates import Inhibited, PauseBook, Paused, ResolvedIgnored, StaleLease
from remediator.worker.gathering import GatherContext, kept_steps
from remediator.worker.lease import release
from remediator.worker.outcome import Outcomes, OutcomeStage
from remediator.worker.owners import ResolveOwner
from remediator.worker.precheck import Precheck
from remediator.worker.render import Render
from remediator.worker.resolution import AnnounceResolution
from remediator.worker.runs import Run
from remediator.worker.stages import Defer, Skip, Stage, first_stop
from remediator.worker.telling import Teller

log = structlog.get_logger("remediator.worker.pipeline")
# The waits a job's Slack thread hears about once (Defer.reason).
WAIT_NOTED = frozenset({"inhibited", "paused", "approval"})
# A job delivered again after these steps starts a new attempt (and says it was received).
NEW_ATTEMPT_AFTER = frozenset({"interrupted", "retry"})


class Pipeline:
    """Runs one job at a time through ``stages`` (one ``Pipeline`` per replica)."""

    def __init__(
        self,
        *,
        store: Store,
        rules: Callable[[], RuleSet],
        notifier: Notifier,
        metrics: Metrics,
        resources: Resources,
        settings: Settings,
        replica: str,
    ) -> None:
        self.store = store
        self.rules = rules
        self.metrics = metrics
        self.settings = settings
        self.replica = replica
        self.tell = Teller(notifier)
        self.outcomes = Outcomes(
            store=store, teller=self.tell, metrics=metrics, settings=settings, replica=replica
        )
        paused = Paused(PauseBook(store.pauses), lambda: rules().windows, settings.defer_interval)
        self.approval = AwaitingApproval(store.approvals, settings, self.tell)
        owners = ResolveOwner(resources)
        context = GatherContext(
            resources, self.tell, asks=self.approval.needed, dry_run=self.approval.dry_run
        )
        self.stages: list[Stage] = [
            Render(),  # the plan: target, params, probe (a template that fails: failed below)
            StaleLease(store.locks, store.audit),  # a re-delivered job waits out its first worker
            AnnounceResolution(  # a resolved alert: once per target, after the run on it
                store.locks,
                store.gates,
                self.tell,
                ttl=settings.firing_ttl,
                interval=settings.defer_interval,
                owners=owners,
            ),
            ResolvedIgnored(),  # on_resolved: ignore
            owners,  # resolve: the pod's owner is the target, found before any lease (or gone)
            paused,  # held by a pause or an open maintenance window (in memory)
            Admit(  # check-only: still firing, episode, cooldown, circuit (nothing taken)
                store, metrics, paused, replica, take=False, when=self._checks_first
            ),
            Inhibited(store.firing),  # held while an inhibited_by alert fires
            context,  # the rule's context: logs, events, a PromQL value (after the check-only admission)
            Precheck(resources=resources, asks=self.approval.needed),  # shown in the approval request
            self.approval,  # a human's yes, asked once per (rule, target, episode)
            Admit(store, metrics, paused, replica, take=True),  # the same checks, then the lease
            Brake(store.brakes, metrics, self.tell, settings),  # max_targets: held:brake past it
            Act(  # probe, then the steps one after another (each: precheck again, act, verify)
                store=store, metrics=metrics, resources=resources, settings=settings, teller=self.tell
            ),
            OutcomeStage(self.outcomes),  # marks, the event, the ack, the notice; or a retry
        ]

    def _checks_first(self, run: Run) -> bool:
        """Jobs that ask the store before they wait, fail or fetch: an inhibited_by rule
        (before it waits on a blocker), an approval (before it asks), a failed render, a
        rule with context: (before it gathers: a job skipped for cooldown fetches nothing)."""
        rule = run.known_rule
        return bool(rule.inhibited_by or rule.context) or self.approval.needed(run) or run.result is not None

    # ---- one job -----------------------------------------------------------------------
    async def process(self, delivery: Delivery, consumer: str, *, hand_over: bool = False) -> Delivery | None:
        """Run one job; returns the next one if the store handed it over with this one's
        outcome (``hand_over``: asked for it)."""
        job = delivery.job
        bound = log.bind(
            event_id=job.event_id,
            fingerprint=job.alert.fingerprint,
            rule=job.rule,
            alertname=job.alert.name,
            delivery=delivery.deliveries,
        )
        run = Run(delivery=delivery, consumer=consumer, log=bound, hand_over=hand_over)
        try:
            if await self._prepared(run):
                await self._process(run)
        except asyncio.CancelledError:
            await self._interrupted(run)
            raise
        except StoreUnavailable as exc:
            # Not acked: the job stays pending and is re-delivered once the store is back.
            self.metrics.store_errors.labels("process").inc()
            bound.warning("remediation.store_unavailable", error=str(exc))
        return run.next

    async def _process(self, run: Run) -> None:
        try:
            stop = await first_stop(self.stages, run)
        finally:
            await release(self.store.locks, run)  # if the outcome's store call did not
        if isinstance(stop, Skip):
            await self.approval.withdraw(run, stop)
            await self.outcomes.skip(run, stop)
        elif isinstance(stop, Defer):  # queued once the lease is free: it cannot meet its own
            await self._defer(run, stop)

    async def _prepared(self, run: Run) -> bool:
        """Finish what an earlier delivery recorded, carry its steps over, dead-letter a
        job delivered too often, find the rule. False: the job is done with."""
        job, delivery = run.job, run.delivery
        again = delivery.deliveries > 1 or job.deferrals > 0
        if again and await self.store.audit.get_event(job.event_id) is not None:
            # The outcome was recorded but the ack was lost (crash or outage in between),
            # or the job was re-delivered while its first worker was still finishing it:
            # finish the ack, never record a second outcome for the same event.
            await self.store.queue.ack(delivery.id)
            run.log.info("remediation.already_recorded", deliveries=delivery.deliveries)
            return False
        if again:
            await self._carry_over(run)
        if not run.carried or run.carried[-1].name in NEW_ATTEMPT_AFTER:
            run.step("received", f"{job.alert.status} alert {job.alert.name}", manual=job.manual)
        if delivery.deliveries > self.settings.max_deliveries:
            await self.store.queue.dead_letter(delivery, f"delivered {delivery.deliveries} times")
            self.metrics.dead_letters.inc()
            run.log.error("remediation.dead_lettered", deliveries=delivery.deliveries)
            reason = f"dead-lettered after {delivery.deliveries} deliveries (worker crashes?)"
            await self.outcomes.finish(run, Result.failed(reason), ack=False)
            return False
        run.rule = self.rules().get(job.rule)
        if run.rule is None:
            await self.outcomes.finish(run, Result.failed(f"rule {job.rule!r} is no longer loaded"))
            return False
        return True

    # ---- waiting -----------------------------------------------------------------------
    async def _defer(self, run: Run, defer: Defer) -> None:
        """Put the job back to wait; it has no outcome yet."""
        # The run that finally happens still tells the whole story: the steps carried
        # from earlier deliveries, and those of a pass that asked (approval) or failed
        # (a retry): ``Defer.job`` keeps them.
        steps = run.timeline if defer.job is not None else kept_steps(run)
        if steps:
            await self._stash(run, steps)
        noted = run.job.wait_noted or self._note_wait(run, defer)
        job = (defer.job or run.job).model_copy(
            update={"deferrals": run.job.deferrals + 1, "first_deferred_at": defer.first, "wait_noted": noted}
        )
        wait = self.settings.defer_interval if defer.delay is None else defer.delay
        await self.store.queue.defer(run.delivery.id, job, wait, defer.hold)
        await self.store.jobs.set_job_state(
            job.event_id, _state(defer), await self._why(run, defer), run.target
        )
        self.metrics.deferred.labels(run.known_rule.name, defer.reason).inc()
        if job.deferrals == 1:
            run.log.info("remediation.deferred", reason=defer.reason, message=defer.message)

    async def _why(self, run: Run, defer: Defer) -> str:
        """What the job waits for, as the jobs view shows it."""
        if defer.reason == "locked" and run.target:
            holder = await self.store.locks.lease_holder(run.target)
            if holder:
                return f"{defer.message} (the lease on {run.target} is held by event {holder})"
        return defer.message

    def _note_wait(self, run: Run, defer: Defer) -> bool:
        """One note per job in its thread once it has waited WAIT_NOTE_AFTER (inhibited,
        held, awaiting approval). True: the note is sent."""
        waited = clock.now() - defer.first
        if defer.reason not in WAIT_NOTED or waited < self.settings.wait_note_after:
            return False
        self.tell.waiting(run, defer.message, waited)
        return True

    # ---- shutdown and the steps kept across deliveries ------------------------------------
    async def _interrupted(self, run: Run) -> None:
        """A shutdown cancelled this job (its grace ran out). The job stays un-acked, so it
        is delivered again (to another replica, or to this one after its restart); the
        steps so far are kept for that run's audit timeline, and logged now."""
        stage = run.timeline[-1].name if run.timeline else ""
        run.step(
            "interrupted",
            f"interrupted by the shutdown of replica {self.replica} "
            f"(SHUTDOWN_GRACE {format_duration(self.settings.shutdown_grace)} ran out); "
            "the job stays queued and runs again",
            replica=self.replica,
            stage=stage,
        )
        run.log.warning(
            "remediation.interrupted",
            replica=self.replica,
            stage=stage,
            message="interrupted by shutdown; the job will be delivered again",
        )
        with contextlib.suppress(StoreUnavailable, TimeoutError):
            await asyncio.wait_for(self._stash(run, run.timeline), 2.0)  # carried included

    async def _stash(self, run: Run, steps: list[Step]) -> None:
        data = json.dumps([step.model_dump(mode="json") for step in steps])
        await self.store.audit.stash_timeline(run.job.event_id, data, self.settings.audit_retention)

    async def _carry_over(self, run: Run) -> None:
        """A job delivered again starts with the steps its earlier passes kept: a run cut
        by a shutdown, an approval asked, a failed attempt retried."""
        data = await self.store.audit.take_timeline(run.job.event_id)
        if data:
            run.carried = [Step.model_validate(step) for step in json.loads(data)]
            run.timeline[:0] = run.carried
            if run.carried[-1].name == "interrupted":  # a retry was logged as it was queued
                run.log.info("remediation.resumed_after_interruption", deliveries=run.delivery.deliveries)


def _state(defer: Defer) -> str:
    """The jobs view's state of a job put back to wait."""
    if defer.reason == "approval":
        return "awaiting_approval"
    return "held" if defer.hold else "deferred"
