"""The one place the workers tell people: every notice a job causes is built and sent here.

As Alertmanager's notify stages own the sending, the stages never call the notifier
themselves: they ask the ``Teller`` (started, outcome, escalated, resolved, waiting,
approval asked or decided, a pause ran out), which fills in what the notice needs from
the run and hands it to the notifier (``send`` returns at once and never raises).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from remediator.durations import format_duration
from remediator.models import Outcome, Result
from remediator.notify.notice import Notice, NoticeKind, Notifier
from remediator.store.values import Approval, Pause
from remediator.worker.runs import Run


class Teller:
    """Builds each notice from the run it is about, and sends it."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    def started(self, run: Run, *, dry_run: bool) -> None:
        """The handler starts (``after_failure``: an earlier attempt on it failed)."""
        self._send(self.notice(run, "started", dry_run=dry_run, after_failure=run.job.attempts > 0))

    def context(self, run: Run, *, dry_run: bool) -> None:
        """What the rule's ``context:`` gathered, before anything is done (a thread reply)."""
        self._send(replace(self.notice(run, "context", dry_run=dry_run), context=list(run.context)))

    def outcome(self, run: Run, result: Result) -> None:
        self._send(self.notice(run, "outcome", result=result))

    def escalated(self, run: Run, result: Result, failures: int) -> None:
        self._send(self.notice(run, "escalated", result=result, failures=failures))

    def resolved(self, run: Run) -> None:
        self._send(self.notice(run, "resolved"))

    def waiting(self, run: Run, message: str, waited: float) -> None:
        self._send(replace(self.notice(run, "waiting"), message=message, duration=waited))

    def approval(self, run: Run, approval: Approval, kind: NoticeKind) -> None:
        """``approval``: asked (the buttons); ``approval_decided``: its message updated."""
        self._send(replace(self.notice(run, kind), approval=approval, plan=list(approval.plan)))

    def decided(self, approval: Approval) -> None:
        """An approval decided away from any run (a Slack click, the API, the CLI)."""
        self._send(decided_notice(approval))

    def brake_opened(self, run: Run, *, wanted: int, within: float, dry_run: bool) -> None:
        """A rule's blast-radius brake opened: told once, to the channel and PagerDuty."""
        self._send(
            replace(
                self.notice(run, "brake_opened", dry_run=dry_run), message=brake_text(run, wanted, within)
            )
        )

    def pause_ended(self, pause: Pause, message: str) -> None:
        self._send(Notice(kind="pause_ended", message=message, pause=pause.as_dict()))

    def notice(
        self,
        run: Run,
        kind: NoticeKind,
        *,
        result: Result | None = None,
        dry_run: bool = False,
        failures: int = 0,
        after_failure: bool = False,
    ) -> Notice:
        """The notice of ``kind`` about ``run`` (and its ``result``, once there is one)."""
        job, rule = run.job, run.rule
        details: dict[str, Any] = result.details if result else {}
        return Notice(
            kind=kind,
            rule=job.rule,
            target=run.target,
            channel=(rule.policy.slack_channel or "") if rule else "",
            event_id=job.event_id,
            handler=" → ".join(step.name for step in rule.steps) if rule else "",
            alert=job.alert,
            external_url=job.external_url,
            source=job.source,
            manual=job.manual,
            requested_by=job.requested_by,
            dry_run=dry_run or (result is not None and result.outcome is Outcome.DRY_RUN),
            outcome=result.outcome.value if result else "",
            message=result.message if result else "",
            duration=details.get("duration_seconds") if result else None,
            plan=result.plan if result else [],
            details=details,
            escalate=_mention(run, result),
            cooldown=rule.policy.cooldown if rule else 0.0,
            failures=failures,
            max_attempts=rule.policy.max_attempts if rule else 0,
            attempt_window=rule.policy.attempt_window if rule else 0.0,
            timeline=list(run.timeline) if result else [],
            after_failure=after_failure,
        )

    def _send(self, notice: Notice) -> None:
        self.notifier.send(notice)


def _mention(run: Run, result: Result | None) -> str:
    """Whom the notice names: a chain that reached its ``page:`` step, the page's Slack
    mention; otherwise the rule's ``escalate`` (posted when its circuit opens)."""
    if result is not None and result.outcome is Outcome.ESCALATED:
        return str((result.details.get("page") or {}).get("slack", ""))
    return run.rule.policy.escalate if run.rule else ""


def brake_text(run: Run, wanted: int, within: float) -> str:
    """``systemic? `rule` wants to act on 41 targets within 10m; held: ...``"""
    rule = run.known_rule.name
    return (
        f"systemic? `{rule}` wants to act on {wanted} targets within {format_duration(within)}; "
        f"held: {run.target} and every further target until an operator releases them "
        f"(remediator brakes release {rule})"
    )


def decided_notice(approval: Approval) -> Notice:
    """The notice that updates an approval's Slack message once it is decided."""
    return Notice(
        kind="approval_decided",
        rule=approval.rule,
        target=approval.target,
        event_id=approval.event_id,
        handler=approval.handler,
        alert=approval.alert,
        plan=list(approval.plan),
        approval=approval,
    )
