"""What needs a person now, for the console's banners and the Waiting page: open circuits,
pending approval requests (with their plan and approvers), active pauses.

Approvers are configured as Slack ids (``U...`` people, ``S...`` user groups). A person's
name is shown where an approval recorded it (a Slack decision is kept as
``slack:U123 (alice)``); an id with no name recorded says what it is, never bare.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

from remediator.api.service import Service
from remediator.store.values import Approval, JobState, Pause

CIRCUIT_EVENTS = 500  # open circuits are looked for among these events' (rule, target) pairs
CIRCUIT_PAIRS = 100
APPROVALS = 200
_DECIDED_BY = re.compile(r"slack:([UW][A-Z0-9]+) \((.+)\)")


@dataclass(frozen=True)
class Circuit:
    rule: str
    target: str
    seconds_left: float


@dataclass(frozen=True)
class Attention:
    circuits: list[Circuit] = field(default_factory=list)
    pending: list[Approval] = field(default_factory=list)
    pauses: list[Pause] = field(default_factory=list)


async def attention(svc: Service) -> Attention:
    circuits = await open_circuits(svc)
    found = await svc.store.approvals.list_approvals(APPROVALS)
    return Attention(
        circuits=[Circuit(rule, target, left) for rule, pairs in circuits.items() for target, left in pairs],
        pending=[a for a in found if a.state == "pending"],
        pauses=await svc.store.pauses.list_pauses(),
    )


async def open_circuits(svc: Service) -> dict[str, list[tuple[str, float]]]:
    """Open circuits per rule: (target, seconds left), for the (rule, target) pairs of the
    last ``CIRCUIT_EVENTS`` events only (one audit read and one store read per pair)."""
    events, _ = await svc.store.audit.list_events(CIRCUIT_EVENTS)
    pairs = list(dict.fromkeys((e.rule, e.target) for e in events if e.target))[:CIRCUIT_PAIRS]
    left = await asyncio.gather(*(svc.store.gates.circuit_remaining(rule, target) for rule, target in pairs))
    found: dict[str, list[tuple[str, float]]] = {}
    for (rule, target), seconds in zip(pairs, left, strict=True):
        if seconds > 0:
            found.setdefault(rule, []).append((target, seconds))
    return found


@dataclass(frozen=True)
class Waiting:
    """The approval a job waits on: its plan, and its approvers as a person reads them."""

    approval: Approval
    approvers: list[str]


async def approvals_by_job(svc: Service, jobs: list[JobState]) -> dict[str, Waiting]:
    """For each job awaiting approval, its request (the job's own, or its twin's: the same
    rule and target ask once)."""
    if not any(job.state == "awaiting_approval" for job in jobs):
        return {}
    found = await svc.store.approvals.list_approvals(APPROVALS)
    names = recorded_names(found)
    by_id = {a.event_id: a for a in found}
    by_scope = {(a.rule, a.target): a for a in found if a.state == "pending"}
    out = {}
    for job in jobs:
        approval = by_id.get(job.event_id) or by_scope.get((job.rule, job.target))
        if job.state == "awaiting_approval" and approval is not None:
            out[job.event_id] = Waiting(approval, [approver_name(a, names) for a in approval.approvers])
    return out


def recorded_names(approvals: list[Approval]) -> dict[str, str]:
    """Slack user id -> name, from the decisions that recorded one."""
    names = {}
    for approval in approvals:
        if match := _DECIDED_BY.fullmatch(approval.decided_by):
            names[match[1]] = match[2]
    return names


def approver_name(slack_id: str, names: dict[str, str]) -> str:
    """``alice (U024BE7LH)``, or what the id is: ``Slack user group S0614TZR7``."""
    if slack_id in names:
        return f"{names[slack_id]} ({slack_id})"
    kind = "user group" if slack_id.startswith("S") else "user"
    return f"Slack {kind} {slack_id}"
