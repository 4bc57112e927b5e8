"""Bodies of the operators' controls: pauses, maintenance windows and the jobs view (also
the source of their OpenAPI schemas). Pauses and windows speak RFC 3339 UTC times
(``api/times.py``), as the rest of the API does."""

from __future__ import annotations

from dataclasses import asdict
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from remediator import clock
from remediator.api.schemas import PauseFor, Reason
from remediator.api.times import TimeInput, UtcTime
from remediator.errors import MatcherError
from remediator.rules.matchers import parse_matcher
from remediator.rules.windows import Window
from remediator.store.values import JOB_STATES, JobState, Pause

PAUSE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
JobStateName = Literal["queued", "deferred", "held", "awaiting_approval", "running"]


class PauseCreate(BaseModel):
    """``POST /api/v1/pauses`` and the deprecated ``POST /api/v1/pause`` (which takes no
    matchers): what to hold (matchers; none: everything), why, until when.

    Exactly one of ``for`` (a duration with its unit) and ``until`` (RFC 3339, or epoch
    seconds); the author is the token's name (``by`` is taken from older clients and ignored).
    """

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    matchers: list[str] = Field(default_factory=list, max_length=20)
    reason: Reason
    for_: PauseFor | None = Field(default=None, alias="for")
    until: TimeInput | None = None
    by: str = Field(
        default="",
        max_length=200,
        description="Ignored (accepted from older clients): the pause records the token's name.",
    )

    @field_validator("matchers")
    @classmethod
    def _matchers(cls, value: list[str]) -> list[str]:
        for text in value:
            if len(text) > 500:
                raise ValueError("a matcher is at most 500 characters")
            try:
                parse_matcher(text)
            except MatcherError as exc:
                raise ValueError(str(exc)) from exc
        return value

    def length(self, now: float) -> tuple[float, float]:
        """When the pause ends (epoch seconds) and how long it lasts from ``now`` (a ``for``
        exactly as written, so REMEDIATOR_MAX_PAUSE is exact); ValueError when neither or
        both are given."""
        if (self.for_ is None) == (self.until is None):
            raise ValueError("give exactly one of 'for' (e.g. '1h') and 'until' (RFC 3339)")
        if self.for_ is not None:
            return now + self.for_, self.for_
        assert self.until is not None
        return self.until, self.until - now


class PauseInfo(BaseModel):
    """One pause; a pause without matchers holds every job (``global`` is the one the
    deprecated ``/api/v1/pause`` manages)."""

    id: str
    reason: str
    by: str
    matchers: list[str]
    created: UtcTime
    until: UtcTime
    remaining_seconds: float

    @classmethod
    def of(cls, pause: Pause) -> PauseInfo:
        return cls(
            id=pause.id,
            reason=pause.reason,
            by=pause.by,
            matchers=list(pause.matchers),
            created=pause.created,
            until=pause.until,
            remaining_seconds=round(max(0.0, pause.until - clock.now()), 3),
        )


class WindowInfo(BaseModel):
    """A maintenance window of rules.yaml; ``open_until`` is set while it is open."""

    name: str
    matchers: list[str]
    schedule: str
    open_until: UtcTime | None = None

    @classmethod
    def of(cls, window: Window, now: float) -> WindowInfo:
        return cls(
            name=window.name,
            matchers=[str(m) for m in window.matchers],
            schedule=window.describe(),
            open_until=window.open_until(now),
        )


class PauseList(BaseModel):
    pauses: list[PauseInfo]
    windows: list[WindowInfo]


class JobsQuery(BaseModel):
    """``GET /api/v1/jobs`` query: one state, or every job without an outcome."""

    model_config = ConfigDict(extra="ignore")

    state: JobStateName | None = None
    limit: int = Field(default=100, ge=1, le=1000)


class JobInfo(BaseModel):
    """A job without an outcome yet: what it is, what it does or waits for, since when.

    ``state`` ``done`` (only from ``GET /api/v1/jobs/{event_id}``): its outcome is recorded;
    ``outcome`` says which, and ``GET /api/v1/events/{event_id}`` has the rest.
    """

    event_id: str
    rule: str
    target: str
    alertname: str
    fingerprint: str
    manual: bool
    state: Literal["queued", "deferred", "held", "awaiting_approval", "running", "done"]
    why: str
    since: UtcTime
    received_at: UtcTime
    outcome: str | None = None

    @classmethod
    def of(cls, job: JobState) -> JobInfo:
        state = job.state if job.state in JOB_STATES else "queued"
        return cls.model_validate(asdict(job) | {"state": state})


class JobList(BaseModel):
    jobs: list[JobInfo]
