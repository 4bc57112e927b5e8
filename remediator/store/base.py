"""What the store promises: six interfaces by concern, ``Store`` made of all six, and
the values they pass.

Two stores implement ``Store``: ``memory.MemoryStore`` (the embedded default: one
process, nothing survives a restart) and ``redis.store.RedisStore`` (production: every
replica shares it). ``tests/store/test_store_contract.py`` runs the same contract on
both. Every method raises ``StoreUnavailable`` when it cannot answer.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, Protocol

import orjson

from remediator.models import Alert, AuditEvent, Job, NewJob
from remediator.store.admission import Admission, Admitted, Concluded, Conclusion


@dataclass(frozen=True)
class Delivery:
    """A job handed to one worker. ``deliveries`` counts hand-outs, this one included."""

    id: str
    job: Job
    deliveries: int


GLOBAL_PAUSE = "global"  # the id of the matcher-less pause of ``/api/v1/pause``


@dataclass(frozen=True)
class Pause:
    """Remediation paused until ``until`` for the jobs every matcher matches (none: all).

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


class Queue(Protocol):
    """Jobs waiting for a worker: taken, acknowledged, deferred or dead-lettered."""

    async def dequeue(self, consumer: str, count: int, block: float) -> list[Delivery]: ...
    async def ack(self, delivery_id: str) -> None: ...
    async def touch(self, consumer: str, delivery_id: str) -> None: ...
    # jobs whose worker went silent for ``min_idle`` seconds, handed to ``consumer``
    async def reclaim(self, consumer: str, min_idle: float, count: int) -> list[Delivery]: ...
    # ``hold``: the job is held by a pause or window; ``release_held`` makes it due now
    async def defer(self, delivery_id: str, job: Job, delay: float, hold: bool = False) -> None: ...
    async def promote_due(self) -> int: ...
    async def release_held(self) -> int: ...
    async def dead_letter(self, delivery: Delivery, reason: str) -> None: ...
    async def dead_letters(self, limit: int) -> list[dict[str, Any]]: ...
    async def queue_depth(self) -> int: ...


class Locks(Protocol):
    """One repair per target at a time (leases), and concurrency budgets (slots)."""

    # ``holder`` (an event id) is kept with the lease: a loser can say whom it lost to
    async def acquire_lease(self, target: str, ttl: float, holder: str = "") -> str | None: ...
    async def extend_lease(self, target: str, token: str, ttl: float) -> bool: ...
    async def release_lease(self, target: str, token: str) -> bool: ...
    async def lease_remaining(self, target: str) -> float: ...
    async def lease_holder(self, target: str) -> str | None: ...
    async def acquire_slot(self, group: str, limit: int, token: str, ttl: float) -> bool: ...
    async def release_slot(self, group: str, token: str) -> None: ...


class Gates(Protocol):
    """What the gates ask before a repair: pause, firing index, episodes, cooldowns, circuits."""

    # the global pause (matcher-less, id ``GLOBAL_PAUSE``)
    async def set_pause(self, pause: Pause) -> None: ...
    async def clear_pause(self) -> bool: ...
    async def get_pause(self) -> Pause | None: ...
    # scoped pauses, several at once, each with its id; ``list_pauses`` includes the global one
    async def add_pause(self, pause: Pause) -> None: ...
    async def remove_pause(self, pause_id: str) -> Pause | None: ...
    async def list_pauses(self) -> list[Pause]: ...
    # bumped by every change to the pauses (not by one running out): ``admit`` checks it
    async def pauses_version(self) -> int: ...
    # the version, read before the list: a job checked against them is admitted only
    # while the version is the same
    async def versioned_pauses(self) -> tuple[int, list[Pause]]: ...

    # firing-alert index (inhibition and the "resolved already?" gate)
    async def firing_labels(self) -> list[dict[str, str]]: ...
    async def is_firing(self, fingerprint: str, starts_at: str) -> bool: ...

    async def episode_done(self, rule: str, episode: str) -> bool: ...
    async def mark_episode(self, rule: str, episode: str, ttl: float) -> None: ...
    # True for the first caller only: this resolution of this episode is announced once
    async def claim_resolution(self, rule: str, episode: str, ttl: float) -> bool: ...

    async def set_cooldown(self, rule: str, target: str, ttl: float) -> None: ...
    async def cooldown_remaining(self, rule: str, target: str) -> float: ...
    async def record_failure(
        self, rule: str, target: str, window: float, max_attempts: int
    ) -> FailureCount: ...
    async def reset_failures(self, rule: str, target: str) -> None: ...
    async def circuit_remaining(self, rule: str, target: str) -> float: ...


class Audit(Protocol):
    """What happened to each alert, and the timeline of a run cut short by a shutdown."""

    async def record_event(self, event: AuditEvent) -> None: ...
    async def get_event(self, event_id: str) -> AuditEvent | None: ...
    async def list_events(
        self,
        limit: int,
        cursor: str | None = None,
        rule: str | None = None,
        outcome: str | None = None,
    ) -> tuple[list[AuditEvent], str | None]: ...
    # kept for the run that re-delivers the job
    async def stash_timeline(self, event_id: str, steps: str, ttl: float) -> None: ...
    async def take_timeline(self, event_id: str) -> str | None: ...
    # the job-state index: written at intake (``accept``), removed by ``record_event``;
    # a job no longer in the index (its outcome is recorded) is left alone
    async def set_job_state(self, event_id: str, state: str, why: str, target: str = "") -> None: ...
    async def job_state(self, event_id: str) -> JobState | None: ...
    async def job_states(self, state: str | None, limit: int) -> list[JobState]: ...


class Approvals(Protocol):
    """Requests for a human's yes: asked once per scope, decided once (first decision wins)."""

    # ``scope`` (rule, target, episode) is asked once: the first caller stores ``approval``
    # and gets (it, True); any later caller gets the stored request and False
    async def request_approval(self, scope: str, approval: Approval, ttl: float) -> tuple[Approval, bool]: ...
    async def get_approval(self, event_id: str) -> Approval | None: ...
    # the first decision wins: (the request with it, True); already decided: (as stored, False);
    # no such request: (None, False)
    async def decide_approval(
        self, event_id: str, decision: Decision, by: str, note: str
    ) -> tuple[Approval | None, bool]: ...
    async def set_approval_message(self, event_id: str, channel: str, ts: str) -> None: ...
    async def list_approvals(self, limit: int) -> list[Approval]: ...  # newest first


class Threads(Protocol):
    """Slack threads per (rule, target): the first replica to set one wins."""

    async def claim_thread(self, rule: str, target: str, ts: str, ttl: float) -> str: ...
    async def get_thread(self, rule: str, target: str) -> str | None: ...


class Store(Queue, Locks, Gates, Audit, Threads, Approvals, Protocol):
    """All shared state."""

    kind: str

    async def ping(self) -> None: ...
    async def close(self) -> None: ...

    # intake: index the alerts, then store the jobs, before the webhook answers 202
    async def accept(
        self, jobs: Sequence[Job | NewJob], firing: Sequence[Alert], resolved: Sequence[Alert]
    ) -> None: ...
    # the same, in the same store call, but an automatic job whose (rule, alert status,
    # firing episode) is already queued, running or done is not queued: it is counted on
    # the first job's intake marker. Returns the event ids of the jobs not queued.
    async def accept_collapsing(
        self, jobs: Sequence[Job | NewJob], firing: Sequence[Alert], resolved: Sequence[Alert]
    ) -> list[str]: ...
    # at a job's outcome: how many copies were collapsed into it. ``done`` (its episode is
    # repaired) keeps the marker, so later copies are still collapsed; otherwise it goes,
    # and the next copy is queued again. Only the job that owns the marker settles it.
    async def settle_intake(self, job: Job, done: bool) -> int: ...
    # the copies collapsed into this job so far (0 for a job that owns no marker)
    async def intake_copies(self, job: Job) -> int: ...

    # a job's run, started and ended in one call each (``store.admission``)
    async def admit(self, ask: Admission) -> Admitted: ...
    async def conclude(self, end: Conclusion) -> Concluded: ...
