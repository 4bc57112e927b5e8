"""``GET /api/v1/gates``: what the store holds against one (rule, target) now: its
cooldown, an open circuit, the lease. Read-only; ``remediator simulate --url`` asks it
(also the source of the OpenAPI schemas)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from remediator.api.times import UtcTime
from remediator.rules.rule import TARGET_PATTERN
from remediator.rules.schema import RULE_NAME_PATTERN


class GateQuery(BaseModel):
    """Which (rule, target): the rule's name and a rendered target (``remediator simulate``
    shows both)."""

    model_config = ConfigDict(extra="ignore")

    rule: str = Field(pattern=RULE_NAME_PATTERN, description="a rule's name")
    target: str = Field(pattern=TARGET_PATTERN, description="a rendered target, e.g. deployment/shop/web")


class Remaining(BaseModel):
    """A gate that holds until ``until``: ``remaining_seconds`` from the answer's ``now``."""

    until: UtcTime
    remaining_seconds: float


class LeaseState(BaseModel):
    """A run holds the target's lease: no other rule's run starts on it meanwhile."""

    until: UtcTime
    remaining_seconds: float
    holder: str = Field(description="the event id of the run that holds it ('' when not named)")


class GateState(BaseModel):
    """The live state of one (rule, target); a gate that is not set is null."""

    rule: str
    target: str
    now: UtcTime
    rule_loaded: bool = Field(description="whether the service's loaded rules have this rule")
    cooldown: Remaining | None = Field(description="no automatic run of the rule on the target until then")
    circuit: Remaining | None = Field(description="an open circuit: automatic runs are skipped until then")
    lease: LeaseState | None = Field(description="a run holds the target now")
