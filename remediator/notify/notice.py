"""What the pipeline tells people, and the interface a notifier implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import structlog

from remediator.models import Alert, Gathered, Step
from remediator.store.values import Approval

NoticeKind = Literal[
    "started",
    "outcome",
    "escalated",
    "resolved",
    "rules_reload",
    "waiting",
    "pause_started",
    "pause_ended",
    "approval",
    "approval_decided",
    "store_reset",
    "context",
    "brake_opened",
    "brake_released",
]
# Notices about the service, not one incident: posted to the channel, never in a thread.
SERVICE_NOTICES = frozenset(
    {"rules_reload", "pause_started", "pause_ended", "store_reset", "brake_opened", "brake_released"}
)


@dataclass(frozen=True, kw_only=True)
class Notice:
    """One thing worth a human's attention. ``rule``/``target`` key the thread."""

    kind: NoticeKind
    rule: str = ""
    target: str = ""
    channel: str = ""  # the rule's slack_channel ("": the default, REMEDIATOR_SLACK_CHANNEL)
    event_id: str = ""
    handler: str = ""
    alert: Alert | None = None
    external_url: str = ""
    source: str = "alertmanager"  # who sent the alert: its external_url is Alertmanager's or Grafana's
    dry_run: bool = False
    manual: bool = False
    requested_by: str = ""  # who asked for a manual replay
    outcome: str = ""
    message: str = ""
    duration: float | None = None
    plan: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    escalate: str = ""
    cooldown: float = 0.0
    failures: int = 0
    max_attempts: int = 0
    attempt_window: float = 0.0
    timeline: list[Step] = field(default_factory=list)  # what the handler did (outcomes)
    # pause_started / pause_ended: the pause (id, reason, by, until, matchers, created)
    pause: dict[str, Any] = field(default_factory=dict)
    approval: Approval | None = None  # "approval": asked; "approval_decided": with its decision
    after_failure: bool = False  # "started": an earlier attempt of this job failed (a retry)
    context: list[Gathered] = field(default_factory=list)  # "context": what was gathered before acting


def replay_command(event_id: str) -> str:
    """The shell command that re-runs an escalated event: the open circuit would skip a
    plain replay, and ``--wait`` makes the exit code tell whether it worked."""
    return f"remediator replay {event_id} --ignore-circuit --wait 300"


class Notifier(Protocol):
    """Delivers notices. ``send`` must return at once and never raise."""

    async def start(self) -> None:
        """Start delivering (the app calls it once, before the workers start)."""

    def send(self, notice: Notice) -> None:
        """Queue ``notice`` for delivery; return at once, never raise."""

    async def close(self) -> None:
        """Deliver what is queued, within a bound, then stop."""


class LogNotifier:
    """The default with no Slack configured: every notice goes to the log."""

    def __init__(self) -> None:
        self._log = structlog.get_logger("remediator.notify.notice")

    async def start(self) -> None:
        return None

    def send(self, notice: Notice) -> None:
        self._log.info(
            f"notify.{notice.kind}",
            rule=notice.rule,
            target=notice.target,
            event_id=notice.event_id,
            outcome=notice.outcome,
            message=notice.message,
        )

    async def close(self) -> None:
        return None
