"""Approval requests over HTTP (``/api/v1/approvals``): the query, a decision, the answer.

Times are RFC 3339 UTC strings (``api/times.py``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from remediator.api.times import UtcTime
from remediator.models import Gathered
from remediator.store.values import Approval

APPROVAL_STATES = ["pending", "approved", "rejected", "expired", "withdrawn"]
ApprovalState = Literal["pending", "approved", "rejected", "expired", "withdrawn"]


class DecisionRequest(BaseModel):
    """``POST /api/v1/approvals/{event_id}``: the caller's decision (the token says who)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    decision: Literal["approve", "reject"]
    note: str = Field(default="", max_length=500)


class ApprovalsQuery(BaseModel):
    """``GET /api/v1/approvals`` query parameters."""

    model_config = ConfigDict(extra="ignore")

    state: ApprovalState | None = None
    limit: int = Field(default=50, ge=1, le=500)


class ApprovalInfo(BaseModel):
    """One approval request: what would run, who may decide, and the decision once made."""

    event_id: str = Field(description="the job that asked; decide with POST /api/v1/approvals/{event_id}")
    rule: str
    target: str
    handler: str
    alertname: str
    state: ApprovalState
    plan: list[str]
    precheck: str = Field(default="", description="the target's state as the precheck saw it before asking")
    approvers: list[str] = Field(description="Slack user ids (U..., W...) and user-group ids (S...)")
    requested_at: UtcTime
    expires_at: UtcTime
    decided_by: str = ""
    decided_at: UtcTime | None = None
    note: str = ""
    slack_message: bool = Field(description="a Slack message with buttons was posted")
    context: list[Gathered] = Field(
        default_factory=list, description="what the rule's context: gathered before asking"
    )

    @classmethod
    def of(cls, approval: Approval) -> ApprovalInfo:
        shown = {name: getattr(approval, name) for name in cls.model_fields if hasattr(approval, name)}
        shown["context"] = list(approval.context)
        return cls.model_validate(shown | {"slack_message": bool(approval.message_ts)})


class ApprovalPage(BaseModel):
    approvals: list[ApprovalInfo]
