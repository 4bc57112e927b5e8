"""The end of a job: the outcome stage (what the handler's result leaves, or a retry),
and ``Outcomes``, which records every end (skips included) in one store call and tells
people (``telling.Teller``)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from remediator import clock
from remediator.durations import format_duration
from remediator.errors import StoreUnavailable
from remediator.metrics import Metrics
from remediator.models import AuditEvent, Job, Outcome, Result, SkipReason, Step
from remediator.settings import Settings
from remediator.store.admission import Conclusion
from remediator.store.base import Store
from remediator.worker.capping import capped
from remediator.worker.resolution import claim_of
from remediator.worker.retry import retry_after
from remediator.worker.runs import Run
from remediator.worker.stages import Defer, Skip, Stop
from remediator.worker.telling import Teller

T = TypeVar("T")
# Outcomes counted toward the circuit: a failure, and a chain handed to people (``page:``).
COUNTED = (Outcome.FAILED, Outcome.ESCALATED)


@dataclass(frozen=True, kw_only=True)
class Outcomes:
    """Records how each job ended and tells people about it."""

    store: Store
    teller: Teller
    metrics: Metrics
    settings: Settings
    replica: str

    async def write(self, call: Callable[[], Awaitable[T]]) -> T:
        """Post-action writes must land: retry through a short store outage."""
        deadline = clock.monotonic() + max(30.0, self.settings.reclaim_idle)
        delay = 0.2
        while True:
            try:
                return await call()
            except StoreUnavailable:
                if clock.monotonic() > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 3.0)

    async def skip(self, run: Run, skip: Skip) -> None:
        await self.finish(run, Result(outcome=Outcome.SKIPPED, message=skip.message), skip.reason)

    async def finish(
        self,
        run: Run,
        result: Result,
        reason: SkipReason | None = None,
        *,
        ack: bool = True,
        marks: Marks | None = None,
    ) -> None:
        """In one store call: what the result leaves (``marks``), the audit event, the ack,
        the lease and slot given back. Then count, log and tell."""
        job, rule = run.job, run.rule
        if job.deferrals:
            run.step("deferred", f"waited {job.deferrals} time(s) before this run")
        # The copies of this job collapsed at intake, counted on its marker; an episode
        # repaired (or found repaired), or a resolution handled, keeps the marker, so
        # later copies stay collapsed; otherwise the next copy is queued again.
        done = job.alert.status == "resolved" or (
            result.outcome in (Outcome.SUCCEEDED, Outcome.DRY_RUN) or reason is SkipReason.DUPLICATE
        )
        finished_at = clock.now()
        draft = EventDraft(
            run, result, reason, self.replica, finished_at, self.settings.audit_event_max_bytes
        )
        marks = marks or Marks()
        group = rule.policy.concurrency_group if rule is not None and run.slot is not None else ""
        end = Conclusion(
            job=job,
            event=draft.event,
            expected=run.collapsed,
            done=done,
            ack=run.delivery.id if ack else None,
            target=run.target,
            token=run.token,
            group=group or "",
            slot=run.slot,
            cooldown=marks.cooldown,
            reset_failures=marks.reset_failures,
            episode_ttl=marks.episode_ttl,
            forget_resolution=marks.forget_resolution,
            next_for=run.consumer if run.hand_over and ack else "",
        )
        concluded = await self.write(lambda: self.store.conclude(end))
        copies, run.next = concluded.copies, concluded.next
        run.token = run.slot = None
        if copies:
            result.details["deduplicated"] = copies
        run.timeline[:] = draft.steps(copies)
        event_reason = reason.value if reason else ""
        repaired_in = time_to_repair(job, result, finished_at)
        self.metrics.jobs.labels(job.rule, result.outcome.value, event_reason).inc()
        if repaired_in is not None:
            self.metrics.time_to_repair.labels(job.rule).observe(repaired_in)
        level = "info" if result.outcome is not Outcome.FAILED else "error"
        getattr(run.log, level)(
            f"remediation.{result.outcome.value}",
            reason=event_reason,
            message=result.message,
            plan=result.plan or None,
        )
        if result.outcome is not Outcome.SKIPPED:
            self.teller.outcome(run, result)


class OutcomeStage:
    """The last stage: records the run's result. After the handler, the result first
    leaves its marks (cooldown, episode, failure count, circuit); a temporary failure is
    retried instead (``retry.py``: a Defer that carries the attempt)."""

    def __init__(self, outcomes: Outcomes) -> None:
        self.outcomes = outcomes
        self.store, self.metrics, self.settings = outcomes.store, outcomes.metrics, outcomes.settings

    async def __call__(self, run: Run) -> Stop | None:
        result = run.result
        if result is None:
            raise RuntimeError("no result: the outcome stage runs after the act stage")
        if not run.acted:  # failed before any handler ran (templates that do not render)
            await self.outcomes.finish(run, result)
            return None
        return await self.after_handler(run, result)

    async def after_handler(self, run: Run, result: Result) -> Defer | None:
        """Cooldown, episode and circuit state from the handler's result; then the outcome,
        or the Defer of a retry (``retry.py``: the outcome waits for the last attempt)."""
        job, rule, target = run.job, run.known_rule, run.target
        marks = Marks()
        if result.outcome is Outcome.SUCCEEDED:
            marks = Marks(cooldown=rule.policy.cooldown, reset_failures=True)
            self.metrics.circuit_open.labels(rule.name).set(0)
        if result.outcome in (Outcome.SUCCEEDED, Outcome.DRY_RUN) and job.alert.status == "firing":
            marks = dataclasses.replace(marks, episode_ttl=self.settings.episode_ttl)
        if job.alert.status == "firing":  # a new run on the target: its resolution is news again
            marks = dataclasses.replace(marks, forget_resolution=claim_of(run))  # with the outcome
        opened, failures = 0, 0
        if job.attempts:  # a retried job was counted toward the circuit at its first failure
            result.details["attempts"] = job.attempts + 1
        elif result.outcome in COUNTED and not result.details.get("lease_lost"):
            count = await self.outcomes.write(
                lambda: self.store.gates.record_failure(
                    rule.name, target, rule.policy.attempt_window, rule.policy.max_attempts
                )
            )
            result.details["failures_in_window"] = failures = count.failures
            if count.opened:
                opened = count.failures
                self.metrics.circuit_open.labels(rule.name).set(1)
                run.step(
                    "circuit.opened",
                    f"{count.failures} failures in {format_duration(rule.policy.attempt_window)}",
                )
                run.log.error("remediation.escalated", failures=count.failures)
        retry = None if opened else retry_after(run, result, failures, self.settings.defer_interval)
        if retry is not None:
            if forget := marks.forget_resolution:  # no outcome yet: forgotten now
                await self.outcomes.write(lambda: self.store.gates.forget_resolution(rule.name, forget))
            run.step("retry", retry.message, attempt=job.attempts + 1, delay=retry.delay)
            run.log.warning(
                "remediation.retrying", attempt=job.attempts + 1, delay=retry.delay, message=result.message
            )
            return retry
        try:
            await self.outcomes.finish(run, result, marks=marks)
        finally:
            if opened:  # after the outcome, so the thread reads: failed, then escalated
                self.outcomes.teller.escalated(run, result, opened)
        return None


@dataclass(frozen=True)
class Marks:
    """What a result marks on its rule and target: a success a cooldown and a clean
    failure count, a success or a dry run its episode repaired (seconds; 0: nothing)."""

    cooldown: float = 0.0
    reset_failures: bool = False
    episode_ttl: float = 0.0
    forget_resolution: str = ""  # a firing run acted: the target's resolution is news again


class EventDraft:
    """The audit event of a run, drafted for the copies the store counts when it records
    it (it may draft it twice: copies can arrive while it is written)."""

    def __init__(
        self,
        run: Run,
        result: Result,
        reason: SkipReason | None,
        replica: str,
        finished_at: float,
        max_bytes: int,
    ) -> None:
        self.run, self.result, self.reason = run, result, reason
        self.replica, self.finished_at = replica, finished_at
        self.max_bytes = max_bytes  # what the event may keep of its plan and details
        self.reason_value = reason.value if reason else ""

    def steps(self, copies: int) -> list[Step]:
        at, result = self.finished_at, self.result
        steps = list(self.run.timeline)
        if copies:
            message = f"{copies} more deliveries of this alert collapsed into this job"
            steps.append(Step(at=at, name="deduplicated", message=message))
        data = {"outcome": result.outcome.value, "reason": self.reason_value}
        steps.append(Step(at=at, name="outcome", message=result.message, data=data))
        return steps

    def event(self, copies: int) -> AuditEvent:
        run, result = self.run, self.result
        job, rule = run.job, run.rule
        details = {**result.details, "deduplicated": copies} if copies else result.details
        whole = AuditEvent(
            event_id=job.event_id,
            rule=job.rule,
            target=run.target,
            handler=" → ".join(step.name for step in rule.steps) if rule else "",
            alertname=job.alert.name,
            fingerprint=job.alert.fingerprint,
            alert_status=job.alert.status,
            manual=job.manual,
            note=job.note,
            requested_by=job.requested_by,
            dry_run=result.outcome is Outcome.DRY_RUN,
            received_at=job.received_at,
            finished_at=self.finished_at,
            outcome=result.outcome,
            reason=self.reason_value,
            message=result.message,
            plan=result.plan,
            details=details,
            timeline=self.steps(copies),
            alert=job.alert,
            replica=self.replica,
            external_url=job.external_url,
            source=job.source,
            time_to_repair=time_to_repair(job, result, self.finished_at),
        )
        return capped(whole, self.max_bytes)


def time_to_repair(job: Job, result: Result, finished_at: float) -> float | None:
    """Seconds from the alert's ``startsAt`` to this verified success, for an automatic run
    on a firing alert; ``None`` otherwise. A success is verified: handlers return
    ``succeeded`` only after their verification. Manual runs (replays) are left out: their
    alert may have started days before anyone replayed it. Clock skew never makes it negative."""
    if result.outcome is not Outcome.SUCCEEDED or job.manual or job.alert.status != "firing":
        return None
    return round(max(0.0, finished_at - job.alert.starts_at.timestamp()), 3)
