"""What the audit looks like over HTTP: events, their timelines, and the per-rule stats.

Times are RFC 3339 UTC strings and durations ``*_seconds`` numbers (``api/times.py``);
the audit itself keeps epoch seconds, as it always did.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from remediator.api.times import UtcTime
from remediator.models import Alert, AuditEvent, Gathered, Step


class StepInfo(Step):
    """One entry of an event's timeline, its time in RFC 3339."""

    at: UtcTime


class EventSummary(BaseModel):
    """One audit event without its timeline; ``outcome`` is ``skipped:<reason>`` for skips."""

    event_id: str
    rule: str
    target: str
    handler: str
    alertname: str
    fingerprint: str
    alert_status: str
    outcome: str
    reason: str
    message: str
    manual: bool
    note: str
    dry_run: bool
    requested_by: str = ""
    received_at: UtcTime
    finished_at: UtcTime
    replica: str
    alert: Alert | None = None
    time_to_repair_seconds: float | None = Field(
        default=None, description="from the alert's startsAt to this verified success (automatic runs)"
    )
    source: str = "alertmanager"  # who sent the alert: alertmanager or grafana

    @classmethod
    def of(cls, event: AuditEvent) -> EventSummary:
        return cls.model_validate(_common(event))


class EventDetail(EventSummary):
    plan: list[str] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)
    timeline: list[StepInfo] = Field(default_factory=list)
    context: list[Gathered] = Field(
        default_factory=list,
        description="what the rule's context: gathered before acting (secrets redacted; the "
        "timeline's context step holds it)",
    )

    @classmethod
    def of(cls, event: AuditEvent) -> EventDetail:
        steps = [step.model_dump() for step in event.timeline]
        data = _common(event) | {"plan": event.plan, "details": event.details, "timeline": steps}
        return cls.model_validate(data | {"context": context_of(event)})


def context_of(event: AuditEvent) -> list[dict[str, Any]]:
    """The entries of the event's ``context`` step (the last one), as kept."""
    for step in reversed(event.timeline):
        if step.name == "context":
            return list(step.data.get("entries") or [])
    return []


def _common(event: AuditEvent) -> dict[str, Any]:
    data = {name: getattr(event, name) for name in EventSummary.model_fields if hasattr(event, name)}
    data["outcome"] = event.outcome_label
    data["time_to_repair_seconds"] = event.time_to_repair
    return data


class EventPage(BaseModel):
    events: list[EventSummary]
    next_cursor: str | None = None


class RepairTimes(BaseModel):
    """Time to repair (an alert's startsAt to a verified automatic success), in seconds."""

    count: int
    median_seconds: float | None = None
    p90_seconds: float | None = None


class RuleStats(BaseModel):
    rule: str
    runs: int = Field(description="audit events of the rule in the window, skips included")
    outcomes: dict[str, int] = Field(description="events by outcome, e.g. succeeded, skipped:cooldown")
    success_rate: float | None = Field(
        description="succeeded / (succeeded + failed + escalated); null when nothing was attempted"
    )
    time_to_repair: RepairTimes
    circuits_opened: int


class Stats(BaseModel):
    """Per rule over a window, from the audit (which keeps at most
    REMEDIATOR_AUDIT_MAX_EVENTS events for REMEDIATOR_AUDIT_RETENTION)."""

    window: str
    window_seconds: float
    since: UtcTime
    until: UtcTime
    events: int
    rules: list[RuleStats]
