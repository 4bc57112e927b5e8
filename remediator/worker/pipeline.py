"""The worker side: gates in order, the lease, the handler, the outcome."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from remediator.durations import format_duration
from remediator.errors import StoreUnavailable, TemplateError
from remediator.handling.context import Context, Resources
from remediator.handling.execution import execute
from remediator.metrics import Metrics
from remediator.models import AuditEvent, Job, Outcome, Result, SkipReason, Step
from remediator.notify.notice import Notice, Notifier
from remediator.rules.ruleset import Plan, Rule, RuleSet, render
from remediator.settings import Settings
from remediator.store.base import Delivery, Store

T = TypeVar("T")
log = structlog.get_logger("remediator.worker.pipeline")


@dataclass
class _Run:
    """The state of one job while it is processed."""

    delivery: Delivery
    consumer: str
    log: Any
    timeline: list[Step] = field(default_factory=list)
    plan: Plan | None = None
    rule: Rule | None = None
    carried: list[Step] = field(default_factory=list)  # of a delivery cut by a shutdown

    @property
    def job(self) -> Job:
        return self.delivery.job

    def step(self, name: str, message: str = "", **data: Any) -> None:
        self.timeline.append(Step(at=time.time(), name=name, message=message, data=data))


class _Deferred(Exception):
    """The job was put back to wait; it has no outcome yet."""


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
        self.notifier = notifier
        self.metrics = metrics
        self.resources = resources
        self.settings = settings
        self.replica = replica
        self.busy: set[str] = set()  # consumers in the middle of a job

    # ---- the worker loop -------------------------------------------------
    async def run_worker(self, consumer: str, stop: asyncio.Event) -> None:
        """Take jobs until ``stop`` is set; a store outage pauses, never kills, the loop."""
        backoff, next_reclaim = 0.5, 0.0
        while not stop.is_set():
            try:
                deliveries: list[Delivery] = []
                if time.monotonic() >= next_reclaim:
                    next_reclaim = time.monotonic() + max(1.0, self.settings.reclaim_idle / 4)
                    deliveries = await self.store.reclaim(consumer, self.settings.reclaim_idle, 1)
                if not deliveries:
                    deliveries = await self.store.dequeue(consumer, 1, 1.0)
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
                    await self.process(delivery, consumer)
            finally:
                self.busy.discard(consumer)

    async def run_maintenance(self, stop: asyncio.Event) -> None:
        """Move due deferred jobs back into the queue; refresh the depth gauge."""
        while not stop.is_set():
            try:
                await self.store.promote_due()
                self.metrics.queue_depth.set(await self.store.queue_depth())
            except StoreUnavailable:
                self.metrics.store_errors.labels("maintenance").inc()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)

    # ---- one job -----------------------------------------------------------
    async def process(self, delivery: Delivery, consumer: str) -> None:
        job = delivery.job
        bound = log.bind(
            event_id=job.event_id, fingerprint=job.alert.fingerprint, rule=job.rule,
            alertname=job.alert.name, delivery=delivery.deliveries,
        )
        run = _Run(delivery=delivery, consumer=consumer, log=bound)
        run.step("received", f"{job.alert.status} alert {job.alert.name}", manual=job.manual)
        try:
            await self._process(run)
        except _Deferred:
            if run.carried:  # the run that finally happens still tells the whole story
                await self._stash(run, run.carried)
            return
        except asyncio.CancelledError:
            await self._interrupted(run)
            raise
        except StoreUnavailable as exc:
            # Not acked: the job stays pending and is re-delivered once the store is back.
            self.metrics.store_errors.labels("process").inc()
            bound.warning("remediation.store_unavailable", error=str(exc))

    async def _process(self, run: _Run) -> None:
        job, delivery = run.job, run.delivery
        again = delivery.deliveries > 1 or job.deferrals > 0
        if again and await self.store.get_event(job.event_id) is not None:
            # The outcome was recorded but the ack was lost (crash or outage in between),
            # or the job was re-delivered while its first worker was still finishing it:
            # finish the ack, never record a second outcome for the same event.
            await self.store.ack(delivery.id)
            run.log.info("remediation.already_recorded", deliveries=delivery.deliveries)
            return
        if again:
            await self._carry_over(run)
        if delivery.deliveries > self.settings.max_deliveries:
            await self.store.dead_letter(delivery, f"delivered {delivery.deliveries} times")
            self.metrics.dead_letters.inc()
            run.log.error("remediation.dead_lettered", deliveries=delivery.deliveries)
            reason = f"dead-lettered after {delivery.deliveries} deliveries (worker crashes?)"
            await self._finish(run, Result.failed(reason), ack=False)
            return
        rule = self.rules().get(job.rule)
        if rule is None:
            await self._finish(run, Result.failed(f"rule {job.rule!r} is no longer loaded"))
            return
        run.rule = rule
        if delivery.deliveries > 1:
            await self._wait_for_stale_lease(run, rule)
        if job.alert.status == "resolved":
            await self._notify_resolved(run, rule)
            if rule.on_resolved == "ignore":
                await self._skip(run, SkipReason.RESOLVED, "alert resolved; on_resolved: ignore")
                return
        skip = await self._gates_before_lease(run, rule)
        if skip is not None:
            await self._skip(run, *skip)
            return
        try:
            run.plan = render(rule, job.alert)
        except TemplateError as exc:
            run.log.error("remediation.render_failed", error=str(exc))
            await self._finish(run, Result.failed(f"cannot render rule {rule.name!r}: {exc}"))
            return
        run.log = run.log.bind(target=run.plan.target)
        skip = await self._gates_on_target(run, rule, run.plan.target)
        if skip is not None:
            await self._skip(run, *skip)
            return
        await self._locked_run(run, rule, run.plan)

    # ---- shutdown --------------------------------------------------------------
    async def _interrupted(self, run: _Run) -> None:
        """A shutdown cancelled this job (its grace ran out). The job stays un-acked, so it
        is delivered again (to another replica, or to this one after its restart); the
        steps so far are kept for that run's audit timeline, and logged now."""
        stage = run.timeline[-1].name if run.timeline else ""
        run.step("interrupted", f"interrupted by the shutdown of replica {self.replica} "
                 f"(SHUTDOWN_GRACE {format_duration(self.settings.shutdown_grace)} ran out); "
                 "the job stays queued and runs again", replica=self.replica, stage=stage)
        run.log.warning("remediation.interrupted", replica=self.replica, stage=stage,
                        message="interrupted by shutdown; the job will be delivered again")
        with contextlib.suppress(StoreUnavailable, TimeoutError):
            await asyncio.wait_for(self._stash(run, run.timeline), 2.0)  # carried included

    async def _stash(self, run: _Run, steps: list[Step]) -> None:
        data = json.dumps([step.model_dump(mode="json") for step in steps])
        await self.store.stash_timeline(run.job.event_id, data, self.settings.audit_retention)

    async def _carry_over(self, run: _Run) -> None:
        """A delivery after a shutdown's interruption starts with the earlier steps."""
        data = await self.store.take_timeline(run.job.event_id)
        if data:
            run.carried = [Step.model_validate(step) for step in json.loads(data)]
            run.timeline[:0] = run.carried
            run.log.info("remediation.resumed_after_interruption",
                         deliveries=run.delivery.deliveries)

    async def _wait_for_stale_lease(self, run: _Run, rule: Rule) -> None:
        """A re-delivered job first waits out the target's lease: its first worker may be
        alive and finishing (e.g. after a Redis outage), so no gate may record an outcome yet."""
        with contextlib.suppress(TemplateError):  # the normal path reports the template error
            left = await self.store.lease_remaining(render(rule, run.job.alert).target)
            if left > 0:
                await self._defer(run, rule, "locked", "waiting for the lease of an earlier "
                                  "delivery", time.time(), left + 0.5)

    async def _gates_before_lease(self, run: _Run, rule: Rule) -> tuple[SkipReason, str] | None:
        job = run.job
        pause = await self.store.get_pause()
        if pause is not None:
            until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(pause.until))
            return SkipReason.PAUSED, f"remediation paused until {until}: {pause.reason}"
        firing_job = job.alert.status == "firing"
        if firing_job and not job.manual:
            if not await self.store.is_firing(job.alert.fingerprint, job.alert.starts_at.isoformat()):
                return SkipReason.RESOLVED, "the alert resolved before the job ran"
        if rule.inhibited_by:
            blocker = await self._inhibitor(run, rule)
            if blocker is not None:
                await self._defer_or_give_up(run, rule, blocker)
                return SkipReason.INHIBITED, f"inhibited by firing alert {blocker}"
        if firing_job and not job.manual and await self.store.episode_done(rule.name, job.alert.episode):
            return SkipReason.DUPLICATE, "already remediated for this firing episode"
        return None

    async def _gates_on_target(
        self, run: _Run, rule: Rule, target: str
    ) -> tuple[SkipReason, str] | None:
        job = run.job
        if not job.ignore_cooldown:
            left = await self.store.cooldown_remaining(rule.name, target)
            if left > 0:
                return SkipReason.COOLDOWN, (f"in cooldown for {format_duration(left)} more "
                                             "(replay with --ignore-cooldown to override)")
        if not job.ignore_circuit:
            left = await self.store.circuit_remaining(rule.name, target)
            if left > 0:
                self.metrics.circuit_open.labels(rule.name).set(1)
                return SkipReason.CIRCUIT_OPEN, (
                    f"circuit open after {rule.max_attempts} failures; closes in "
                    f"{format_duration(left)} (replay with --ignore-circuit to override)"
                )
        return None

    async def _inhibitor(self, run: _Run, rule: Rule) -> str | None:
        for labels in await self.store.firing_labels():
            if rule.inhibits(labels, run.job.alert.labels):
                return labels.get("alertname", "?") + _brief(labels)
        return None

    async def _defer_or_give_up(self, run: _Run, rule: Rule, blocker: str) -> None:
        job = run.job
        first = job.first_deferred_at or time.time()
        if time.time() - first >= rule.inhibit_wait:
            return  # waited long enough: the caller records skipped:inhibited
        await self._defer(run, rule, "inhibited", f"waiting: inhibited by {blocker}", first)

    async def _defer(self, run: _Run, rule: Rule, reason: str, message: str, first: float,
                     delay: float | None = None) -> None:
        job = run.job.model_copy(
            update={"deferrals": run.job.deferrals + 1, "first_deferred_at": first}
        )
        wait = self.settings.defer_interval if delay is None else delay
        await self.store.defer(run.delivery.id, job, wait)
        self.metrics.deferred.labels(rule.name, reason).inc()
        if job.deferrals == 1:
            run.log.info("remediation.deferred", reason=reason, message=message)
        raise _Deferred

    # ---- the lease and the handler ------------------------------------------
    async def _locked_run(self, run: _Run, rule: Rule, plan: Plan) -> None:
        token = await self.store.acquire_lease(plan.target, rule.lease, run.job.event_id)
        if token is None:
            self.metrics.lease_contention.labels(rule.name).inc()
            if run.delivery.deliveries > 1:
                # Re-delivered after a crash: the dead worker's lease must expire first.
                wait = await self.store.lease_remaining(plan.target) + 0.5
                await self._defer(run, rule, "locked", "waiting for a stale lease", time.time(), wait)
            await self._lost_lease_race(run, plan.target)
            return
        run.step("lease.acquired", plan.target, ttl=rule.lease)
        slot = None
        try:
            # Re-check under the lease: a worker that just finished set these before releasing.
            skip = await self._gates_under_lease(run, rule, plan.target)
            if skip is None and rule.concurrency_group:
                slot = secrets.token_hex(8)
                if not await self.store.acquire_slot(
                    rule.concurrency_group, rule.concurrency_limit, slot, rule.lease
                ):
                    slot = None
                    skip = (SkipReason.CONCURRENCY,
                            f"concurrency group {rule.concurrency_group!r} is at its limit "
                            f"({rule.concurrency_limit})")
            if skip is not None:
                await self._skip(run, *skip)
                return
            result = await self._run_handler(run, rule, plan, token, slot)
            await self._after_handler(run, rule, plan, result)
        finally:
            with contextlib.suppress(StoreUnavailable):
                if slot is not None and rule.concurrency_group:
                    await self.store.release_slot(rule.concurrency_group, slot)
                await self.store.release_lease(plan.target, token)

    async def _lost_lease_race(self, run: _Run, target: str) -> None:
        """Another job holds the target: this alert is merged into that run."""
        holder = await self.store.lease_holder(target)
        if holder:
            run.step("lease.held", f"by event {holder}", holder=holder)
            message = (f"merged into event {holder} running on target {target} "
                       f"(see: remediator event {holder})")
        else:  # released or expired in between, or taken by an older replica
            message = f"merged into the run that holds the lease on target {target}"
        await self._skip(run, SkipReason.LOCKED, message)

    async def _gates_under_lease(
        self, run: _Run, rule: Rule, target: str
    ) -> tuple[SkipReason, str] | None:
        job = run.job
        if job.alert.status == "firing" and not job.manual:
            if await self.store.episode_done(rule.name, job.alert.episode):
                return SkipReason.DUPLICATE, "already remediated for this firing episode"
        return await self._gates_on_target(run, rule, target)

    async def _run_handler(
        self, run: _Run, rule: Rule, plan: Plan, token: str, slot: str | None = None
    ) -> Result:
        job = run.job
        dry_run = self.settings.dry_run or rule.dry_run or bool(job.dry_run)
        ctx = Context(
            event_id=job.event_id, rule=rule.name, target=plan.target, alert=job.alert,
            dry_run=dry_run, deadline=time.monotonic() + rule.timeout,
            verify_timeout=rule.verify_timeout, log=run.log, resources=self.resources,
            timeline=run.timeline,
        )
        self.metrics.overhead.observe(max(0.0, time.time() - job.received_at))
        self.notifier.send(self._notice(run, "started", dry_run=dry_run))
        run.step("handler.started", rule.handler.name, dry_run=dry_run)
        run.log.info("remediation.started", handler=rule.handler.name, dry_run=dry_run)
        lost = asyncio.Event()
        beat = asyncio.create_task(self._heartbeat(run, rule, plan.target, token, slot, lost))
        started = time.monotonic()
        try:
            result = await execute(rule.handler, plan.params, ctx, timeout=rule.timeout,
                                   lease_lost=lost)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        elapsed = time.monotonic() - started
        run.step("handler.finished", result.outcome.value, seconds=round(elapsed, 3))
        self.metrics.handler_duration.labels(rule.handler.name).observe(elapsed)
        result.details.setdefault("duration_seconds", round(elapsed, 3))
        if dry_run and result.outcome is Outcome.SUCCEEDED:
            result = Result.failed("handler acted although dry-run was on (handler bug)")
        elif dry_run and result.outcome is Outcome.FAILED:
            # The precheck could not read the target (e.g. `make run` far from the cluster):
            # a dry run still shows what it would do, from the params alone.
            result = Result.dry_run(
                rule.handler.plan(plan.params),
                f"dry run; the precheck failed, so this plan is from the params alone: "
                f"{result.message}",
                precheck_error=result.message, **result.details)
        return result

    async def _heartbeat(
        self, run: _Run, rule: Rule, target: str, token: str, slot: str | None,
        lost: asyncio.Event,
    ) -> None:
        """Extend the lease (and the concurrency slot) and keep the job from looking idle
        while the handler runs."""
        ttl = rule.lease
        interval = max(0.05, min(ttl / 3, self.settings.heartbeat))
        last_ok = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            try:
                if not await self.store.extend_lease(target, token, ttl):
                    lost.set()
                    return
                if slot is not None and rule.concurrency_group:
                    await self.store.acquire_slot(  # the same token refreshes its expiry
                        rule.concurrency_group, rule.concurrency_limit, slot, ttl)
                await self.store.touch(run.consumer, run.delivery.id)
                last_ok = time.monotonic()
            except StoreUnavailable:
                if time.monotonic() - last_ok >= ttl:  # it has expired by now: fail closed
                    lost.set()
                    return

    async def _after_handler(self, run: _Run, rule: Rule, plan: Plan, result: Result) -> None:
        job = run.job
        if result.outcome is Outcome.SUCCEEDED:
            await self._retry(lambda: self.store.set_cooldown(rule.name, plan.target, rule.cooldown))
            await self._retry(lambda: self.store.reset_failures(rule.name, plan.target))
            self.metrics.circuit_open.labels(rule.name).set(0)
        if result.outcome in (Outcome.SUCCEEDED, Outcome.DRY_RUN) and job.alert.status == "firing":
            await self._retry(lambda: self.store.mark_episode(
                rule.name, job.alert.episode, self.settings.episode_ttl))
        opened = 0
        if result.outcome is Outcome.FAILED and not result.details.get("lease_lost"):
            count = await self._retry(lambda: self.store.record_failure(
                rule.name, plan.target, rule.attempt_window, rule.max_attempts))
            result.details["failures_in_window"] = count.failures
            if count.opened:
                opened = count.failures
                self.metrics.circuit_open.labels(rule.name).set(1)
                run.step("circuit.opened", f"{count.failures} failures in "
                         f"{format_duration(rule.attempt_window)}")
                run.log.error("remediation.escalated", failures=count.failures)
        try:
            await self._finish(run, result)
        finally:
            if opened:  # after the outcome, so the thread reads: failed, then escalated
                self.notifier.send(self._notice(run, "escalated", result=result,
                                                failures=opened))

    async def _retry(self, call: Callable[[], Awaitable[T]]) -> T:
        """Post-action writes must land: retry through a short store outage."""
        deadline = time.monotonic() + max(30.0, self.settings.reclaim_idle)
        delay = 0.2
        while True:
            try:
                return await call()
            except StoreUnavailable:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 3.0)

    # ---- outcomes ------------------------------------------------------------
    async def _skip(self, run: _Run, reason: SkipReason, message: str) -> None:
        await self._finish(run, Result(outcome=Outcome.SKIPPED, message=message), reason)

    async def _finish(self, run: _Run, result: Result, reason: SkipReason | None = None,
                      *, ack: bool = True) -> None:
        job, rule, plan = run.job, run.rule, run.plan
        if job.deferrals:
            run.step("deferred", f"waited {job.deferrals} time(s) before this run")
        run.step("outcome", result.message, outcome=result.outcome.value,
                 reason=reason.value if reason else "")
        event = AuditEvent(
            event_id=job.event_id, rule=job.rule, target=plan.target if plan else "",
            handler=rule.handler.name if rule else "", alertname=job.alert.name,
            fingerprint=job.alert.fingerprint, alert_status=job.alert.status,
            manual=job.manual, note=job.note,
            dry_run=result.outcome is Outcome.DRY_RUN, received_at=job.received_at,
            finished_at=time.time(), outcome=result.outcome,
            reason=reason.value if reason else "", message=result.message, plan=result.plan,
            details=result.details, timeline=run.timeline, alert=job.alert, replica=self.replica,
        )
        await self._retry(lambda: self.store.record_event(event))
        if ack:
            await self._retry(lambda: self.store.ack(run.delivery.id))
        self.metrics.jobs.labels(job.rule, result.outcome.value, event.reason).inc()
        level = "info" if result.outcome is not Outcome.FAILED else "error"
        getattr(run.log, level)(f"remediation.{result.outcome.value}", reason=event.reason,
                                message=result.message, plan=result.plan or None)
        if result.outcome is not Outcome.SKIPPED:
            self.notifier.send(self._notice(run, "outcome", result=result))

    async def _notify_resolved(self, run: _Run, rule: Rule) -> None:
        """Announce a resolution once, although an Alertmanager HA pair sends it twice.

        A marker claimed once (atomic, first wins across replicas) says this resolution
        of this firing episode has been announced.
        """
        if not await self.store.claim_resolution(rule.name, run.job.alert.episode,
                                                 self.settings.firing_ttl):
            run.step("resolved.duplicate", "this resolution was already announced")
            return
        self.notifier.send(self._notice(run, "resolved"))

    def _notice(self, run: _Run, kind: Any, *, result: Result | None = None,
                dry_run: bool = False, failures: int = 0) -> Notice:
        job, rule = run.job, run.rule
        target = run.plan.target if run.plan else ""
        if not target and rule is not None:
            with contextlib.suppress(TemplateError):
                target = render(rule, job.alert).target
        return Notice(
            kind=kind, rule=job.rule, target=target, event_id=job.event_id,
            handler=rule.handler.name if rule else "", alert=job.alert,
            external_url=job.external_url, manual=job.manual,
            dry_run=dry_run or (result is not None and result.outcome is Outcome.DRY_RUN),
            outcome=result.outcome.value if result else "", message=result.message if result else "",
            duration=result.details.get("duration_seconds") if result else None,
            plan=result.plan if result else [], details=result.details if result else {},
            escalate=rule.escalate if rule else "", cooldown=rule.cooldown if rule else 0.0,
            failures=failures, max_attempts=rule.max_attempts if rule else 0,
            attempt_window=rule.attempt_window if rule else 0.0,
            timeline=list(run.timeline) if result else [],
        )


def _brief(labels: dict[str, str]) -> str:
    shown = {k: v for k, v in labels.items() if k != "alertname"}
    if not shown:
        return ""
    inner = ", ".join(f"{k}={v}" for k, v in sorted(shown.items())[:4])
    return "{" + inner + "}"
