"""A store made of its six parts: each call goes to the part that owns it.

Both stores are built this way (``memory.MemoryStore``, ``redis.store.RedisStore``):
each part implements one interface of ``base`` and keeps only its own state, and the
store adds what spans them (intake, ping, close). A subclass may override any method
(tests do, to make one call fail).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from remediator.models import AuditEvent, Job
from remediator.store.admission import (
    Admission,
    Admitted,
    Concluded,
    Conclusion,
    admit_in_steps,
    conclude_in_steps,
)
from remediator.store.base import (
    Approval,
    Approvals,
    Audit,
    Decision,
    Delivery,
    FailureCount,
    Gates,
    JobState,
    Locks,
    Pause,
    Queue,
    Threads,
)

if TYPE_CHECKING:
    from remediator.store.base import Store


class ComposedStore:
    """Every ``Store`` method but intake, ping and close, handed to its part."""

    def __init__(
        self,
        *,
        queue: Queue,
        locks: Locks,
        gates: Gates,
        audit: Audit,
        threads: Threads,
        approvals: Approvals,
    ) -> None:
        self._queue = queue
        self._approvals = approvals
        self._locks = locks
        self._gates = gates
        self._audit = audit
        self._threads = threads

    # ---- queue ---------------------------------------------------------------------------
    async def dequeue(self, consumer: str, count: int, block: float) -> list[Delivery]:
        return await self._queue.dequeue(consumer, count, block)

    async def ack(self, delivery_id: str) -> None:
        return await self._queue.ack(delivery_id)

    async def touch(self, consumer: str, delivery_id: str) -> None:
        return await self._queue.touch(consumer, delivery_id)

    async def reclaim(self, consumer: str, min_idle: float, count: int) -> list[Delivery]:
        return await self._queue.reclaim(consumer, min_idle, count)

    async def defer(self, delivery_id: str, job: Job, delay: float, hold: bool = False) -> None:
        return await self._queue.defer(delivery_id, job, delay, hold)

    async def promote_due(self) -> int:
        return await self._queue.promote_due()

    async def release_held(self) -> int:
        return await self._queue.release_held()

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        return await self._queue.dead_letter(delivery, reason)

    async def dead_letters(self, limit: int) -> list[dict[str, Any]]:
        return await self._queue.dead_letters(limit)

    async def queue_depth(self) -> int:
        return await self._queue.queue_depth()

    # ---- locks ---------------------------------------------------------------------------
    async def acquire_lease(self, target: str, ttl: float, holder: str = "") -> str | None:
        return await self._locks.acquire_lease(target, ttl, holder)

    async def extend_lease(self, target: str, token: str, ttl: float) -> bool:
        return await self._locks.extend_lease(target, token, ttl)

    async def release_lease(self, target: str, token: str) -> bool:
        return await self._locks.release_lease(target, token)

    async def lease_remaining(self, target: str) -> float:
        return await self._locks.lease_remaining(target)

    async def lease_holder(self, target: str) -> str | None:
        return await self._locks.lease_holder(target)

    async def acquire_slot(self, group: str, limit: int, token: str, ttl: float) -> bool:
        return await self._locks.acquire_slot(group, limit, token, ttl)

    async def release_slot(self, group: str, token: str) -> None:
        return await self._locks.release_slot(group, token)

    # ---- gates ---------------------------------------------------------------------------
    async def set_pause(self, pause: Pause) -> None:
        return await self._gates.set_pause(pause)

    async def clear_pause(self) -> bool:
        return await self._gates.clear_pause()

    async def get_pause(self) -> Pause | None:
        return await self._gates.get_pause()

    async def add_pause(self, pause: Pause) -> None:
        return await self._gates.add_pause(pause)

    async def remove_pause(self, pause_id: str) -> Pause | None:
        return await self._gates.remove_pause(pause_id)

    async def list_pauses(self) -> list[Pause]:
        return await self._gates.list_pauses()

    async def pauses_version(self) -> int:
        return await self._gates.pauses_version()

    async def versioned_pauses(self) -> tuple[int, list[Pause]]:
        return await self._gates.versioned_pauses()

    async def firing_labels(self) -> list[dict[str, str]]:
        return await self._gates.firing_labels()

    async def is_firing(self, fingerprint: str, starts_at: str) -> bool:
        return await self._gates.is_firing(fingerprint, starts_at)

    async def episode_done(self, rule: str, episode: str) -> bool:
        return await self._gates.episode_done(rule, episode)

    async def mark_episode(self, rule: str, episode: str, ttl: float) -> None:
        return await self._gates.mark_episode(rule, episode, ttl)

    async def claim_resolution(self, rule: str, episode: str, ttl: float) -> bool:
        return await self._gates.claim_resolution(rule, episode, ttl)

    async def set_cooldown(self, rule: str, target: str, ttl: float) -> None:
        return await self._gates.set_cooldown(rule, target, ttl)

    async def cooldown_remaining(self, rule: str, target: str) -> float:
        return await self._gates.cooldown_remaining(rule, target)

    async def record_failure(
        self,
        rule: str,
        target: str,
        window: float,
        max_attempts: int,
    ) -> FailureCount:
        return await self._gates.record_failure(rule, target, window, max_attempts)

    async def reset_failures(self, rule: str, target: str) -> None:
        return await self._gates.reset_failures(rule, target)

    async def circuit_remaining(self, rule: str, target: str) -> float:
        return await self._gates.circuit_remaining(rule, target)

    # ---- a run's start and end (one call each where the store can: ``store.admission``)
    async def admit(self, ask: Admission) -> Admitted:
        return await admit_in_steps(cast("Store", self), ask)

    async def conclude(self, end: Conclusion) -> Concluded:
        return await conclude_in_steps(cast("Store", self), end)

    # ---- audit ---------------------------------------------------------------------------
    async def record_event(self, event: AuditEvent) -> None:
        return await self._audit.record_event(event)

    async def get_event(self, event_id: str) -> AuditEvent | None:
        return await self._audit.get_event(event_id)

    async def list_events(
        self,
        limit: int,
        cursor: str | None = None,
        rule: str | None = None,
        outcome: str | None = None,
    ) -> tuple[list[AuditEvent], str | None]:
        return await self._audit.list_events(limit, cursor, rule, outcome)

    async def stash_timeline(self, event_id: str, steps: str, ttl: float) -> None:
        return await self._audit.stash_timeline(event_id, steps, ttl)

    async def take_timeline(self, event_id: str) -> str | None:
        return await self._audit.take_timeline(event_id)

    async def set_job_state(self, event_id: str, state: str, why: str, target: str = "") -> None:
        return await self._audit.set_job_state(event_id, state, why, target)

    async def job_state(self, event_id: str) -> JobState | None:
        return await self._audit.job_state(event_id)

    async def job_states(self, state: str | None, limit: int) -> list[JobState]:
        return await self._audit.job_states(state, limit)

    # ---- threads -------------------------------------------------------------------------
    async def claim_thread(self, rule: str, target: str, ts: str, ttl: float) -> str:
        return await self._threads.claim_thread(rule, target, ts, ttl)

    async def get_thread(self, rule: str, target: str) -> str | None:
        return await self._threads.get_thread(rule, target)

    # ---- approvals -----------------------------------------------------------------------
    async def request_approval(self, scope: str, approval: Approval, ttl: float) -> tuple[Approval, bool]:
        return await self._approvals.request_approval(scope, approval, ttl)

    async def get_approval(self, event_id: str) -> Approval | None:
        return await self._approvals.get_approval(event_id)

    async def decide_approval(
        self, event_id: str, decision: Decision, by: str, note: str
    ) -> tuple[Approval | None, bool]:
        return await self._approvals.decide_approval(event_id, decision, by, note)

    async def set_approval_message(self, event_id: str, channel: str, ts: str) -> None:
        return await self._approvals.set_approval_message(event_id, channel, ts)

    async def list_approvals(self, limit: int) -> list[Approval]:
        return await self._approvals.list_approvals(limit)
