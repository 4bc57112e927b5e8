"""The admin API's request and response bodies (also the source of its OpenAPI schemas)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
)

from remediator.durations import parse_duration, parse_rule_duration
from remediator.models import Alert, AuditEvent, Outcome, SkipReason, Step, Timestamp
from remediator.rules.schema import Policy, ProbeSpec

MAX_PAUSE = 30 * 86400.0
EVENT_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
CURSOR_PATTERN = r"^[A-Za-z0-9:._~+/=-]{1,200}$"
OUTCOMES = [o.value for o in Outcome] + [f"skipped:{r.value}" for r in SkipReason]
# 1m to 99d: every value the pattern allows is a window the API answers (the audit bounds
# what is read anyway: REMEDIATOR_AUDIT_MAX_EVENTS, REMEDIATOR_AUDIT_RETENTION).
WINDOW_PATTERN = r"^([1-9][0-9]{0,3}m|[1-9][0-9]{0,2}h|[1-9][0-9]?d)$"

PauseFor = Annotated[
    float,
    BeforeValidator(parse_rule_duration),  # a unit, as every duration operators write
    Field(gt=0, le=MAX_PAUSE),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d|w))+$",
            "description": "a duration with its unit: '30m', '2h', '1h30m', '7d' (at most 30 days; "
            "REMEDIATOR_MAX_PAUSE bounds it further)",
        }
    ),
]


class _Body(BaseModel):
    """A JSON request body: unknown keys and loose types are client mistakes."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


class ReplayRequest(_Body):
    dry_run: bool = False
    ignore_cooldown: bool = False
    ignore_circuit: bool = False
    note: str = Field(default="", max_length=500)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Reason = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_not_blank)]
"""Why a pause was made: 1 to 500 characters, not only spaces."""


class EventsQuery(BaseModel):
    """``GET /api/v1/events`` query parameters (strings parsed leniently, then bounded)."""

    model_config = ConfigDict(extra="ignore")

    limit: int = Field(default=50, ge=1, le=500)
    rule: str | None = Field(default=None, min_length=1, max_length=63)
    outcome: str | None = None
    cursor: str | None = Field(default=None, pattern=CURSOR_PATTERN)

    @field_validator("outcome")
    @classmethod
    def _outcome(cls, value: str | None) -> str | None:
        if value is not None and value not in OUTCOMES:
            raise ValueError(f"unknown outcome {value!r}; one of {', '.join(OUTCOMES)}")
        return value


class StatsQuery(BaseModel):
    """``GET /api/v1/stats`` query: the window, a duration such as ``24h`` or ``7d``."""

    model_config = ConfigDict(extra="ignore")

    window: str = "24h"

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        if not re.fullmatch(WINDOW_PATTERN, value):
            raise ValueError(
                f"invalid window {value!r}: minutes, hours or days from 1m to 99d, e.g. '30m', '24h', '7d'"
            )
        return value

    @property
    def seconds(self) -> float:
        return parse_duration(self.window)


class ReplayQuery(BaseModel):
    """Options of ``POST /api/v1/replay`` (the body is the alert payload itself)."""

    model_config = ConfigDict(extra="ignore")

    dry_run: bool = False
    ignore_cooldown: bool = False
    ignore_circuit: bool = False
    note: str = Field(default="", max_length=500)


class ManualAlert(BaseModel):
    """One alert posted by hand: like Alertmanager's, but ``status`` and ``startsAt`` optional."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    status: Literal["firing", "resolved"] = "firing"
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: Timestamp | None = Field(default=None, alias="startsAt")
    ends_at: Timestamp | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = ""

    def to_alert(self) -> Alert:
        data = self.model_dump(by_alias=True, exclude_none=True)
        data.setdefault("startsAt", datetime.now(UTC))
        return Alert.model_validate(data)


class ErrorBody(BaseModel):
    error: str
    detail: Any = None


class Accepted(BaseModel):
    accepted: int
    event_ids: list[str]
    unmatched_alerts: int = 0
    # jobs not queued: the same (rule, alert status, firing episode) is queued, running or done
    deduplicated: int = 0
    replay_of: str | None = None


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
    received_at: float
    finished_at: float
    replica: str
    alert: Alert | None = None
    time_to_repair: float | None = None

    @classmethod
    def of(cls, event: AuditEvent) -> EventSummary:
        return cls.model_validate(_common(event))


class EventDetail(EventSummary):
    plan: list[str] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)
    timeline: list[Step] = Field(default_factory=list)

    @classmethod
    def of(cls, event: AuditEvent) -> EventDetail:
        data = _common(event) | {"plan": event.plan, "details": event.details, "timeline": event.timeline}
        return cls.model_validate(data)


def _common(event: AuditEvent) -> dict[str, Any]:
    data = {name: getattr(event, name) for name in EventSummary.model_fields}
    data["outcome"] = event.outcome_label
    return data


class EventPage(BaseModel):
    events: list[EventSummary]
    next_cursor: str | None = None


class PauseState(BaseModel):
    paused: bool
    reason: str = ""
    by: str = ""
    until: float | None = None
    until_iso: str | None = None
    remaining_seconds: float | None = None
    was_paused: bool | None = None

    @classmethod
    def active(cls, reason: str, until: float, by: str = "") -> PauseState:
        return cls(
            paused=True,
            reason=reason,
            by=by,
            until=until,
            until_iso=iso(until),
            remaining_seconds=round(max(0.0, until - time.time()), 3),
        )


class RuleInfo(Policy):
    """One loaded rule: what it matches and runs, and its whole policy (every Policy field).

    Built from a validated rule (``admin.rule_info``), never parsed from input.
    """

    name: str
    description: str
    enabled: bool
    handler: str
    matchers: list[str]
    inhibited_by: list[str]
    concurrency_limit: int
    dry_run: bool = False
    """In effect: the rule's own ``dry_run`` or the service's global one."""
    dry_run_source: list[Literal["rule", "service"]] = []  # why it is on; empty when off
    probe: ProbeSpec | None = None
    """The rule's probe as written (its URL template unrendered); none without one."""


class ReloadInfo(BaseModel):
    ok: bool
    at: float
    hash: str
    message: str
    errors: list[str]


class RulesInfo(BaseModel):
    loaded: bool
    path: str
    resolved_path: str
    hash: str | None = None
    count: int = 0
    poll_interval: float
    dry_run: bool = False  # the service runs with REMEDIATOR_DRY_RUN / --dry-run
    defaults: Policy | None = None  # the file's ``defaults:``; None when no rules are loaded
    rules: list[RuleInfo]
    last_reload: ReloadInfo | None = None


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    problems: list[str]  # any of them: 503
    warnings: list[str] = Field(
        default_factory=list, description="worth a look, still ready (e.g. the store was wiped)"
    )
    rules: dict[str, Any]
    store: dict[str, Any]
    replica: str


def iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def valid_event_id(value: str) -> bool:
    return re.fullmatch(EVENT_ID_PATTERN, value) is not None


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
        description="succeeded / (succeeded + failed); null when nothing was attempted"
    )
    time_to_repair: RepairTimes
    circuits_opened: int


class Stats(BaseModel):
    """Per rule over a window, from the audit (which keeps at most
    REMEDIATOR_AUDIT_MAX_EVENTS events for REMEDIATOR_AUDIT_RETENTION)."""

    window: str
    window_seconds: float
    since: float
    until: float
    events: int
    rules: list[RuleStats]


# ---- approvals ---------------------------------------------------------------------------
APPROVAL_STATES = ["pending", "approved", "rejected", "expired", "withdrawn"]


class DecisionRequest(_Body):
    """``POST /api/v1/approvals/{event_id}``: the caller's decision (the token says who)."""

    decision: Literal["approve", "reject"]
    note: str = Field(default="", max_length=500)


class ApprovalsQuery(BaseModel):
    """``GET /api/v1/approvals`` query parameters."""

    model_config = ConfigDict(extra="ignore")

    state: Literal["pending", "approved", "rejected", "expired", "withdrawn"] | None = None
    limit: int = Field(default=50, ge=1, le=500)


class ApprovalInfo(BaseModel):
    """One approval request: what would run, who may decide, and the decision once made."""

    event_id: str = Field(description="the job that asked; decide with POST /api/v1/approvals/{event_id}")
    rule: str
    target: str
    handler: str
    alertname: str
    state: Literal["pending", "approved", "rejected", "expired", "withdrawn"]
    plan: list[str]
    approvers: list[str]
    requested_at: float
    expires_at: float
    expires_at_iso: str
    decided_by: str = ""
    decided_at: float | None = None
    note: str = ""
    slack_message: bool = Field(description="a Slack message with buttons was posted")

    @classmethod
    def of(cls, approval: Any) -> ApprovalInfo:
        return cls(
            event_id=approval.event_id,
            rule=approval.rule,
            target=approval.target,
            handler=approval.handler,
            alertname=approval.alertname,
            state=approval.state,
            plan=list(approval.plan),
            approvers=list(approval.approvers),
            requested_at=approval.requested_at,
            expires_at=approval.expires_at,
            expires_at_iso=iso(approval.expires_at),
            decided_by=approval.decided_by,
            decided_at=approval.decided_at,
            note=approval.note,
            slack_message=bool(approval.message_ts),
        )


class ApprovalPage(BaseModel):
    approvals: list[ApprovalInfo]
