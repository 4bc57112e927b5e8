"""The worker side: take jobs, run each through its gates, the handler and the outcome.

Like Alertmanager's notify pipeline, a job passes ordered lists of gates (``gates.py``);
a gate answers Skip, Defer or nothing, so this module reads as the list it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import Callable

import structlog

from remediator.durations import format_duration
from remediator.errors import StoreUnavailable, TemplateError
from remediator.handling.context import Resources
from remediator.metrics import Metrics
from remediator.models import Result, Step
from remediator.notify.notice import Notifier
from remediator.rules.ruleset import RuleSet, render
from remediator.settings import Settings
from remediator.store.base import Store
from remediator.store.values import Delivery
from remediator.worker.act import Act
from remediator.worker.admit import Admit
from remediator.worker.approval import AwaitingApproval
from remediator.worker.gates import (
    EpisodeDone,
    Inhibited,
    PauseBook,
    Paused,
    ResolvedIgnored,
    StaleLease,
    StillFiring,
    best_target,
)
from remediator.worker.lease import release
from remediator.worker.outcome import Outcomes
from remediator.worker.pause_expiry import PauseExpiry
from remediator.worker.run import Defer, Gate, Run, Skip, first_stop

log = structlog.get_logger("remediator.worker.pipeline")
# The waits a job's Slack thread hears about once (Defer.reason).
WAIT_NOTED = frozenset({"inhibited", "paused", "approval"})


class Pipeline:
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
        self.busy: set[str] = set()  # consumers in the middle of a job
        self.outcomes = Outcomes(
            store=store, notifier=notifier, metrics=metrics, settings=settings, replica=replica
        )
        self.act = Act(
            store=store, metrics=metrics, resources=resources, settings=settings, outcomes=self.outcomes
        )
        # The gates, in the order a job meets them.
        # A re-delivered job waits out its first worker's lease before anything is recorded.
        self.redelivered: list[Gate] = [StaleLease(store)]
        # Then (after a resolution is announced) those decided in memory: the pause list
        # is read again only when it changed (``admit`` tells) or would hold the job.
        self.paused = Paused(PauseBook(store), lambda: rules().windows, settings.defer_interval)
        self.in_memory: list[Gate] = [ResolvedIgnored(), self.paused]
        # A rule with ``inhibited_by`` reads the firing alerts (matched here, in Python).
        self.inhibition: list[Gate] = [StillFiring(store), Inhibited(store)]
        # Once the target is rendered, one store call asks the rest: still firing, episode,
        # cooldown, circuit; then takes the lease and the concurrency slot (``admit.py``).
        self.admit = Admit(store, metrics, self.paused, replica, take=True)
        # A rule that wants a human's yes asks the same without taking anything, waits for
        # the yes, then asks again and takes the lease.
        self.awaiting = AwaitingApproval(store, settings, self.outcomes)
        self.approval: list[Gate] = [Admit(store, metrics, self.paused, replica, take=False), self.awaiting]
        # A rule whose target does not render is failed, unless the alert resolved or its
        # episode was repaired meanwhile (as for every other job).
        self.unrendered: list[Gate] = [StillFiring(store), EpisodeDone(store)]

    @property
    def notifier(self) -> Notifier:
        return self.outcomes.notifier

    @notifier.setter
    def notifier(self, notifier: Notifier) -> None:
        self.outcomes.notifier = notifier

    # ---- the worker loop -------------------------------------------------
    async def run_worker(self, consumer: str, stop: asyncio.Event) -> None:
        """Take jobs until ``stop`` is set; a store outage pauses, never kills, the loop."""
        backoff, next_reclaim = 0.5, 0.0
        handed: Delivery | None = None  # claimed for this consumer with the last job's outcome
        while not stop.is_set() or handed is not None:
            try:
                deliveries: list[Delivery] = []
                if time.monotonic() >= next_reclaim and not stop.is_set():
                    next_reclaim = time.monotonic() + max(1.0, self.settings.reclaim_idle / 4)
                    deliveries = await self.store.queue.reclaim(consumer, self.settings.reclaim_idle, 1)
                if handed is not None:
                    deliveries.append(handed)
                    handed = None
                if not deliveries:
                    deliveries = await self.store.queue.dequeue(consumer, 1, 1.0)
                backoff = 0.5
            except StoreUnavailable as exc:
                self.metrics.store_errors.labels("dequeue").inc()
                log.warning("worker.store_unavailable", consumer=consumer, error=str(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self.busy.add(consumer)
            try:
                for delivery in deliveries:
                    # While running, the next job may come with this one's outcome (one
                    # round trip less); one claimed while stopping is still run.
                    ask = handed is None and not stop.is_set()
                    handed = await self.process(delivery, consumer, hand_over=ask) or handed
            finally:
                self.busy.discard(consumer)

    async def run_maintenance(self, stop: asyncio.Event) -> None:
        """Move due deferred jobs back into the queue; refresh the depth gauge; announce
        the pauses that run out."""
        expiry = PauseExpiry(self.store, lambda: self.notifier)
        while not stop.is_set():
            try:
                await self.store.queue.promote_due()
                self.metrics.queue_depth.set(await self.store.queue.queue_depth())
                await expiry.check(time.time())
            except StoreUnavailable:
                self.metrics.store_errors.labels("maintenance").inc()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)

    # ---- one job -----------------------------------------------------------
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
        run.step("received", f"{job.alert.status} alert {job.alert.name}", manual=job.manual)
        try:
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
        if not await self._prepared(run):
            return
        if await self._stopped(run, self.redelivered):
            return
        if run.job.alert.status == "resolved":
            await self.outcomes.announce_resolution(run)
        if await self._stopped(run, self.in_memory):
            return
        rule = run.known_rule
        if rule.inhibited_by and await self._stopped(run, self.inhibition):
            return
        try:
            run.plan = run.plan or render(rule, run.job.alert)  # the pause check may have rendered it
        except TemplateError as exc:
            if await self._stopped(run, self.unrendered):
                return
            run.log.error("remediation.render_failed", error=str(exc))
            await self.outcomes.finish(run, Result.failed(f"cannot render rule {rule.name!r}: {exc}"))
            return
        run.log = run.log.bind(target=run.plan.target)
        if self._needs_approval(run) and await self._stopped(run, self.approval):
            return
        retry = None
        try:
            if await self._stopped(run, [self.admit]):
                return
            retry = await self.outcomes.after_handler(run, await self.act(run))
        finally:
            await release(self.store, run)  # if the outcome's store call did not
        if retry is not None:  # queued once the lease is free, so it cannot meet its own
            await self._defer(run, retry)

    def _needs_approval(self, run: Run) -> bool:
        spec = run.known_rule.policy.approval
        return spec is not None and spec.required and not self.awaiting.dry_run(run)

    async def _prepared(self, run: Run) -> bool:
        """Finish what an earlier delivery recorded, dead-letter a job delivered too often,
        find the rule. False: the job is done with."""
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

    async def _stopped(self, run: Run, gates: list[Gate]) -> bool:
        """Run ``gates``; a Skip is recorded, a Defer puts the job back. True: stop here."""
        stop = await first_stop(gates, run)
        if isinstance(stop, Skip):
            await self.awaiting.withdraw(run, stop)
            await self.outcomes.skip(run, stop)
        elif isinstance(stop, Defer):
            await self._defer(run, stop)
        return stop is not None

    async def _defer(self, run: Run, defer: Defer) -> None:
        """Put the job back to wait; it has no outcome yet."""
        # The run that finally happens still tells the whole story: the steps carried
        # from earlier deliveries, and those of a failed attempt that is retried.
        steps = run.timeline if defer.job is not None else run.carried
        if steps:
            await self._stash(run, steps)
        noted = run.job.wait_noted or self._note_wait(run, defer)
        job = (defer.job or run.job).model_copy(
            update={"deferrals": run.job.deferrals + 1, "first_deferred_at": defer.first, "wait_noted": noted}
        )
        wait = self.settings.defer_interval if defer.delay is None else defer.delay
        await self.store.queue.defer(run.delivery.id, job, wait, defer.hold)
        await self.store.jobs.set_job_state(
            job.event_id, _state(defer), await self._why(run, defer), best_target(run)
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
        waited = time.time() - defer.first
        if defer.reason not in WAIT_NOTED or waited < self.settings.wait_note_after:
            return False
        notice = self.outcomes.notice(run, "waiting")
        self.notifier.send(dataclasses.replace(notice, message=defer.message, duration=waited))
        return True

    # ---- shutdown --------------------------------------------------------------
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
        """A delivery after a shutdown's interruption (or a retry) starts with the earlier steps."""
        data = await self.store.audit.take_timeline(run.job.event_id)
        if data:
            run.carried = [Step.model_validate(step) for step in json.loads(data)]
            run.timeline[:0] = run.carried
            if run.carried[-1].name != "retry":  # a retry was logged as it was queued
                run.log.info("remediation.resumed_after_interruption", deliveries=run.delivery.deliveries)


def _state(defer: Defer) -> str:
    """The jobs view's state of a job put back to wait."""
    if defer.reason == "approval":
        return "awaiting_approval"
    return "held" if defer.hold else "deferred"
