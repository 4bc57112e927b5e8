"""The admin API's requests and queries, and the rules' answers (also the source of their
OpenAPI schemas). Events and stats are in ``audit_models``, approvals in
``approval_models``, pauses and jobs in ``control_models``."""

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
    JsonValue,
    WithJsonSchema,
    field_validator,
)

from remediator.api.times import UtcTime
from remediator.durations import parse_duration, parse_rule_duration
from remediator.models import Alert, Outcome, SkipReason, Timestamp
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
    outcome: str | None = Field(default=None, json_schema_extra={"enum": list[JsonValue](OUTCOMES)})
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

    window: str = Field(
        default="24h",
        description="minutes, hours or days from 1m to 99d, e.g. 30m, 24h, 7d",
        json_schema_extra={"pattern": WINDOW_PATTERN},
    )

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


class PauseState(BaseModel):
    """The deprecated ``/api/v1/pause``'s answer, in its old shape (epoch ``until`` and
    ``until_iso``); ``/api/v1/pauses`` is its successor."""

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
            until_iso=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until)),  # its old shape
            remaining_seconds=round(max(0.0, until - time.time()), 3),
        )


class StepInfo(BaseModel):
    """One step of a rule's chain: a handler with what follows it, or a page."""

    handler: str = Field(description="the handler's name, or `page`")
    on_success: str = ""
    on_failure: str = ""
    timeout_seconds: float | None = Field(
        default=None, description="the step's own timeout; null: the rule's"
    )
    page: dict[str, Any] | None = Field(
        default=None, description="a page step: its slack mention and pagerduty"
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
    steps: list[StepInfo] = []
    """The chain: one step for a ``handler:`` rule, each of ``steps:`` otherwise."""


class ReloadInfo(BaseModel):
    ok: bool
    at: UtcTime
    hash: str
    message: str
    errors: list[str]


class RulesInfo(BaseModel):
    loaded: bool
    path: str
    resolved_path: str
    hash: str | None = None
    count: int = 0
    poll_interval_seconds: float
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


def valid_event_id(value: str) -> bool:
    return re.fullmatch(EVENT_ID_PATTERN, value) is not None
