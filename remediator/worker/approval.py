"""The approval stage: a rule with ``approval: {required: true}`` waits for a human's yes.

The job first passes the gates that need no lease and the check-only admission, then
asks for approval once per (rule, target, firing episode): the store keeps the
request (first wins across replicas and the HA twins of one alert), so exactly one
message goes to Slack, and a restarted replica finds the request where it left it.
While nobody has decided, the job is deferred and looks again every ``DEFER_INTERVAL``
(each pass runs the earlier gates again: an alert that resolves meanwhile ends
``skipped:resolved``). Approved: it goes on to the lease. Rejected: ``skipped:rejected``.
No decision before the timeout: ``skipped:not_approved``.

``decide`` is the one way a decision is made (Slack buttons, API, CLI): the first
decision wins, and a request past its timeout can only expire.
"""

from __future__ import annotations

from dataclasses import dataclass

from remediator import clock
from remediator.durations import human_duration
from remediator.models import SkipReason
from remediator.rules.schema import ApprovalSpec
from remediator.settings import Settings
from remediator.store.base import Approvals
from remediator.store.values import Approval, Decision
from remediator.worker.runs import Run
from remediator.worker.stages import Defer, Skip, Stop
from remediator.worker.telling import Teller

KEEP_DECIDED = 86400.0  # seconds a request is kept after its timeout (listing, late clicks)


def scope_of(run: Run) -> str:
    """What one approval covers: an Alertmanager alert's firing episode on the target
    (its HA twins and repeats share it); a manual or resolved job only itself."""
    job = run.job
    if run.automatic:
        return f"{job.rule}|{run.target}|{job.alert.episode}"
    return f"{job.rule}|{run.target}|event:{job.event_id}"


@dataclass(frozen=True)
class Decided:
    """What ``decide`` did: the request as it stands (None: no such request), whether
    this call's decision was stored, and whether this call found it timed out and expired it."""

    approval: Approval | None
    recorded: bool = False
    expired: bool = False

    @property
    def changed(self) -> bool:
        """This call changed the request: its Slack message is to be updated."""
        return self.recorded or self.expired


async def decide(approvals: Approvals, event_id: str, decision: Decision, by: str, note: str = "") -> Decided:
    """Record ``decision`` unless one was made first; a request past its timeout can only
    expire (the first to notice stores ``expired``)."""
    found = await approvals.get_approval(event_id)
    if found is None or found.decision is not None:
        return Decided(found)
    if clock.now() >= found.expires_at and decision != "expired":
        expired, stored = await approvals.decide_approval(event_id, "expired", "timeout", "")
        return Decided(expired, expired=stored)
    approval, stored = await approvals.decide_approval(event_id, decision, by, note)
    return Decided(approval, recorded=stored)


def describe(approval: Approval) -> str:
    """``approved by alice (note)``: who decided what, for the timeline and the CLI."""
    if approval.decision is None:
        return "awaiting approval"
    if approval.decision == "expired":
        return f"not approved within {human_duration(approval.expires_at - approval.requested_at)}"
    if approval.decision == "withdrawn":
        return f"withdrawn: {approval.note}"
    text = f"{approval.decision} by {approval.decided_by}"
    return f"{text}: {approval.note}" if approval.note else text


class AwaitingApproval:
    """Ask once, wait (Defer), then let the job through or skip it."""

    def __init__(self, approvals: Approvals, settings: Settings, teller: Teller) -> None:
        self.approvals = approvals
        self.settings = settings
        self.teller = teller

    def needed(self, run: Run) -> bool:
        """The rule wants a human's yes, and this run would change something."""
        spec = run.known_rule.policy.approval
        return spec is not None and spec.required and not self.dry_run(run)

    async def __call__(self, run: Run) -> Stop | None:
        spec = run.known_rule.policy.approval
        if spec is None or not self.needed(run) or run.result is not None:
            return None
        approval, asked = await self.approvals.request_approval(
            scope_of(run), self._request(run, spec), spec.timeout + KEEP_DECIDED
        )
        if asked:
            self.teller.approval(run, approval, "approval")
        if approval.decision is None and clock.now() >= approval.expires_at:
            result = await decide(self.approvals, approval.event_id, "expired", "timeout")
            if result.approval is None:
                return Skip(SkipReason.NOT_APPROVED, "the approval request is gone (expired)")
            approval = result.approval
            if result.changed:  # the buttons go away once, whoever else waits on it
                self.teller.approval(run, approval, "approval_decided")
        return self._answer(run, approval, asked)

    def _answer(self, run: Run, approval: Approval, asked: bool) -> Stop | None:
        data = {"approval": approval.event_id, "by": approval.decided_by, "note": approval.note}
        if approval.decision == "approved":
            run.step("approval.approved", describe(approval), **data, at=approval.decided_at)
            run.log.info("remediation.approved", by=approval.decided_by, approval=approval.event_id)
            return None
        if approval.decision == "rejected":
            run.step("approval.rejected", describe(approval), **data, at=approval.decided_at)
            return Skip(SkipReason.REJECTED, describe(approval))
        if approval.decision is not None:  # expired, withdrawn
            run.step(f"approval.{approval.decision}", describe(approval), **data, at=approval.decided_at)
            return Skip(SkipReason.NOT_APPROVED, describe(approval))
        left = approval.expires_at - clock.now()
        message = f"awaiting approval by {', '.join(approval.approvers)} ({human_duration(left)} left)"
        # The first pass that meets the request (after waits for inhibition or a pause, too):
        # the job keeps the request's id from then on, so later passes neither record the
        # request again nor look at the target again before it is decided (precheck.py).
        first_pass = not run.job.approval
        if first_pass:  # the steps of this pass are kept (Defer with a job stashes them)
            if asked:
                run.step(
                    "approval.requested",
                    message,
                    approval=approval.event_id,
                    approvers=list(approval.approvers),
                )
            else:
                run.step(
                    "approval.awaiting",
                    f"waits for the approval asked by event {approval.event_id}",
                    approval=approval.event_id,
                )
            run.log.info("remediation.awaiting_approval", approval=approval.event_id, asked=asked)
        first = run.job.first_deferred_at or clock.now()
        delay = min(self.settings.defer_interval, max(0.05, left))
        job = run.job.model_copy(update={"approval": approval.event_id}) if first_pass else None
        return Defer("approval", message, first, delay, job=job)

    async def withdraw(self, run: Run, skip: Skip) -> None:
        """A job that waited for approval and was stopped by another gate (the alert
        resolved, the episode was repaired meanwhile): the request is withdrawn, so its
        buttons go away, unless it was decided already."""
        if not run.job.approval or skip.reason in (SkipReason.REJECTED, SkipReason.NOT_APPROVED):
            return
        result = await decide(self.approvals, run.job.approval, "withdrawn", "remediator", skip.message)
        if result.changed and result.approval is not None:
            self.teller.approval(run, result.approval, "approval_decided")

    def dry_run(self, run: Run) -> bool:
        """A dry run changes nothing: it needs nobody's yes."""
        return self.settings.dry_run or run.known_rule.policy.dry_run or bool(run.job.dry_run)

    def _request(self, run: Run, spec: ApprovalSpec) -> Approval:
        now = clock.now()
        rule, job = run.known_rule, run.job
        plan = tuple(run.plan.describe()) if run.plan is not None else ()  # the whole chain
        if run.plan is not None and run.plan.probe is not None:
            plan += tuple(run.plan.probe.plan(rule.policy.verify_timeout))
        return Approval(
            event_id=job.event_id,
            rule=rule.name,
            target=run.target,
            alertname=job.alert.name,
            requested_at=now,
            expires_at=now + spec.timeout,
            approvers=spec.approvers,
            plan=plan,
            handler=" → ".join(step.name for step in rule.steps),
            alert=job.alert,
            context=tuple(entry.model_dump() for entry in run.context),
            precheck=run.precheck,
        )
