"""Bodies of the blast-radius brakes (``/api/v1/brakes``), also the source of their
OpenAPI schemas: each rule's brake, the jobs it holds, and a release."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from remediator.api.schemas import EVENT_ID_PATTERN
from remediator.api.times import UtcTime
from remediator.store.values import BrakeState, HeldJob


class HeldInfo(BaseModel):
    """A job the brake holds: its target, since when, and whether its rule was in dry run."""

    event_id: str
    target: str
    held_at: UtcTime
    dry_run: bool

    @classmethod
    def of(cls, job: HeldJob) -> HeldInfo:
        return cls(event_id=job.event_id, target=job.target, held_at=job.at, dry_run=job.dry_run)


class BrakeInfo(BaseModel):
    """One rule's brake (``max_targets``): ``count`` distinct targets within
    ``within_seconds``; ``counted`` in the window now; ``open`` while jobs are held."""

    rule: str
    count: int
    within_seconds: float
    counted: int
    open: bool
    dry_run: bool
    held: list[HeldInfo]

    @classmethod
    def of(cls, state: BrakeState, count: int, within: float) -> BrakeInfo:
        return cls(
            rule=state.rule,
            count=count,
            within_seconds=within,
            counted=state.counted,
            open=state.open,
            dry_run=state.dry_run,
            held=[HeldInfo.of(job) for job in state.held],
        )


class BrakeList(BaseModel):
    """Every loaded rule with a brake, in the file's order."""

    brakes: list[BrakeInfo]


class BrakeRelease(BaseModel):
    """``POST /api/v1/brakes/{rule}/release``: the held jobs to let go (none or absent: all)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    event_ids: list[Annotated[str, Field(pattern=EVENT_ID_PATTERN)]] | None = Field(
        default=None, max_length=10_000
    )


class BrakeReleased(BaseModel):
    """The jobs released: each runs through every gate again, at once."""

    rule: str
    released: list[HeldInfo]
    still_held: int
