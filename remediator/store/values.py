"""The values the store keeps and hands out: deliveries, pauses, job states, approvals.

Plain data with no I/O; the interfaces that pass them are in ``base``.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import orjson

from remediator.models import Alert, Job, NewJob


@dataclass(frozen=True)
class Delivery:
    """A job handed to one worker. ``deliveries`` counts hand-outs, this one included."""

    id: str
    job: Job
    deliveries: int

    def dead_letter(self, reason: str, at: float) -> dict[str, Any]:
        """The record kept of this delivery when it is dead-lettered (``Queue.dead_letters``)."""
        job = self.job
        return {
            "id": self.id,
            "event_id": job.event_id,
            "rule": job.rule,
            "deliveries": self.deliveries,
            "reason": reason,
            "at": at,
        }


GLOBAL_PAUSE = "global"  # the id of the pause the deprecated ``/api/v1/pause`` sets and lifts


@dataclass(frozen=True)
class Pause:
    """Remediation paused until ``until`` for the jobs every matcher matches.

    One model for every pause: a pause without matchers holds every job (a global
    pause); the one the deprecated ``/api/v1/pause`` manages has the id ``GLOBAL_PAUSE``.
    Matchers (Alertmanager syntax) see the alert's labels plus ``rule`` and ``target``.
    """

    reason: str
    until: float  # epoch seconds
    by: str = ""
    id: str = GLOBAL_PAUSE
    matchers: tuple[str, ...] = ()
    created: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reason": self.reason,
            "until": self.until,
            "by": self.by,
            "matchers": list(self.matchers),
            "created": self.created,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pause:
        return cls(
            reason=str(data["reason"]),
            until=float(data["until"]),
            by=str(data.get("by", "")),
            id=str(data.get("id", GLOBAL_PAUSE)),
            matchers=tuple(data.get("matchers", ())),
            created=float(data.get("created", 0.0)),
        )


# What a job that has no outcome yet is doing (the jobs view, ``GET /api/v1/jobs``).
JobStateName = Literal["queued", "deferred", "held", "awaiting_approval", "running"]
JOB_STATES: tuple[JobStateName, ...] = ("queued", "deferred", "held", "awaiting_approval", "running")


@dataclass(frozen=True)
class JobState:
    """One job without an outcome: written at intake, updated by the worker, removed
    when its outcome is recorded. ``why`` says what it waits for; ``since`` when the
    state began (epoch seconds)."""

    event_id: str
    rule: str
    alertname: str
    fingerprint: str
    state: str
    since: float
    received_at: float
    why: str = ""
    target: str = ""
    manual: bool = False

    def dumps(self) -> str:
        # orjson writes a dataclass itself: dataclasses.asdict deep-copies every field,
        # which was the largest cost of the webhook (one state per queued job)
        return orjson.dumps(self).decode()

    @classmethod
    def loads(cls, data: str | bytes) -> JobState:
        return cls(**json.loads(data))

    @classmethod
    def queued(cls, job: Job | NewJob, now: float) -> JobState:
        alert = job.alert
        return cls(
            event_id=job.event_id,
            rule=job.rule,
            alertname=alert.name,
            fingerprint=alert.fingerprint,
            state="queued",
            since=now,
            received_at=job.received_at,
            manual=job.manual,
        )

    @staticmethod
    def queued_json(job: Job | NewJob, now: float) -> str:
        """``queued(job, now).dumps()`` without building the dataclass (the webhook's hot
        path: one per queued job); the same fields in the same order."""
        alert = job.alert
        return orjson.dumps(
            {
                "event_id": job.event_id,
                "rule": job.rule,
                "alertname": alert.labels.get("alertname", ""),
                "fingerprint": alert.fingerprint,
                "state": "queued",
                "since": now,
                "received_at": job.received_at,
                "why": "",
                "target": "",
                "manual": job.manual,
            }
        ).decode()

    def moved(self, state: str, why: str, target: str, now: float) -> JobState:
        """This job in ``state``; ``since`` is kept while the state and why stay the same."""
        same = state == self.state and why == self.why
        return dataclasses.replace(
            self, state=state, why=why, target=target or self.target, since=self.since if same else now
        )


@dataclass(frozen=True)
class FailureCount:
    failures: int  # failures inside the window, this one included
    opened: bool  # True only for the failure that opened the circuit


@dataclass(frozen=True)
class Tally:
    """Failed credentials under one key (a client address, a presented name) in the window."""

    failures: int  # in the window, the one just counted included
    refused_for: float  # seconds the key stays refused (0.0: fewer than the limit)
    first: bool = False  # this failure made the key refused, the first time in this burst


@dataclass(frozen=True)
class StoreMarker:
    """The store's generation: written once into an empty store, so a replica that finds
    none (or another) where it saw one knows the store was wiped since."""

    id: str
    created: float  # epoch seconds: the store's data began then
    after: str = ""  # the marker this one replaced (a replica saw it gone), else ""
    last_seen: float = 0.0  # when that one was last seen (epoch seconds)

    def dumps(self) -> str:
        return orjson.dumps(self).decode()

    @classmethod
    def loads(cls, data: str | bytes) -> StoreMarker:
        found = json.loads(data)
        return cls(
            id=str(found["id"]),
            created=float(found["created"]),
            after=str(found.get("after", "")),
            last_seen=float(found.get("last_seen", 0.0)),
        )


Decision = Literal["approved", "rejected", "expired", "withdrawn"]


@dataclass(frozen=True)
class Approval:
    """One request for a human's yes, asked once per (rule, target, firing episode).

    ``event_id`` is the job that asked first: the id people decide by (HA twins of the
    same alert wait on the same request). ``decision`` stays None while it is pending;
    the first decision wins and is never replaced.
    """

    event_id: str
    rule: str
    target: str
    alertname: str
    requested_at: float  # epoch seconds
    expires_at: float  # no decision by then: ``expired``
    approvers: tuple[str, ...]
    plan: tuple[str, ...] = ()
    handler: str = ""
    alert: Alert | None = None  # what fired: the Slack message is rebuilt from it on a decision
    decision: Decision | None = None
    decided_by: str = ""  # "slack:U123 (alice)" or an admin credential's name
    decided_at: float | None = None
    note: str = ""
    channel: str = ""  # the Slack message with the buttons (empty: none posted)
    message_ts: str = ""
    context: tuple[dict[str, Any], ...] = ()  # the rule's context: as gathered (models.Gathered)
    precheck: str = ""  # the target's state as the precheck saw it before asking ("": not looked)

    @property
    def state(self) -> str:
        return self.decision or "pending"

    def to_json(self) -> dict[str, Any]:
        data = asdict(replace(self, alert=None))
        data["alert"] = None if self.alert is None else self.alert.model_dump(mode="json", by_alias=True)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Approval:
        data = {k: v for k, v in data.items() if k in _APPROVAL_FIELDS}
        data["approvers"] = tuple(data.get("approvers") or ())
        data["plan"] = tuple(data.get("plan") or ())
        data["context"] = tuple(data.get("context") or ())
        if data.get("alert") is not None:
            data["alert"] = Alert.model_validate(data["alert"])
        return cls(**data)

    def decided(self, decision: Decision, by: str, note: str, at: float) -> Approval:
        return replace(self, decision=decision, decided_by=by, note=note, decided_at=at)


_APPROVAL_FIELDS = set(Approval.__dataclass_fields__)


def lease_token(holder: str) -> str:
    """A fresh lease value: a random token, then who holds it (``<hex>:<holder>``)."""
    return f"{secrets.token_hex(16)}:{holder}"


def holder_of(token: object) -> str | None:
    """The holder kept in a lease value (``None``: no lease; ``""``: none was named)."""
    if token is None:
        return None
    value = token.decode() if isinstance(token, bytes) else str(token)
    return value.partition(":")[2]


def collapses(job: Job | NewJob) -> bool:
    """Only Alertmanager's deliveries are collapsed at intake; a manual replay never is."""
    return not job.manual


BrakeVerdict = Literal["pass", "released", "held", "opened"]


@dataclass(frozen=True)
class HeldJob:
    """A job the blast-radius brake holds until an operator releases it."""

    event_id: str
    target: str
    at: float  # epoch seconds it was first held
    dry_run: bool = False  # the rule was in dry run: the brake shows before it goes live

    def dumps(self) -> str:
        return json.dumps({"target": self.target, "at": self.at, "dry_run": self.dry_run})

    @classmethod
    def loads(cls, event_id: str, data: str | bytes) -> HeldJob:
        fields = json.loads(data)
        return cls(event_id, str(fields["target"]), float(fields["at"]), bool(fields.get("dry_run")))


@dataclass(frozen=True)
class BrakeAnswer:
    """What the brake says of one job: ``pass`` (its target counts, or was counted),
    ``released`` (held before, an operator let it go), ``held`` (stays held), ``opened``
    (held, and the first: the brake opened, people are told). ``counted``: the distinct
    targets in the window; ``held``: on ``opened``, the targets held (to tell them)."""

    verdict: BrakeVerdict
    counted: int
    held: tuple[str, ...] = ()


@dataclass(frozen=True)
class BrakeState:
    """One rule's brake: the distinct targets it acted on in the window, and the jobs held."""

    rule: str
    counted: int
    held: tuple[HeldJob, ...] = ()

    @property
    def open(self) -> bool:
        """Jobs wait for an operator's release."""
        return bool(self.held)

    @property
    def dry_run(self) -> bool:
        return any(job.dry_run for job in self.held)
