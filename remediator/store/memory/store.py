"""The embedded store: one process, nothing survives a restart. Same contract as RedisStore.

``MemoryStore`` is made of its parts, one per interface of ``store.base``: a queue,
locks, gates, audit and threads, each keeping plain Python structures.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from remediator.models import Alert, Job, NewJob
from remediator.store.base import JobState, collapses
from remediator.store.composed import ComposedStore
from remediator.store.memory.approvals import MemoryApprovals
from remediator.store.memory.audit import MemoryAudit
from remediator.store.memory.expiring import Expiring
from remediator.store.memory.gates import MemoryGates
from remediator.store.memory.locks import MemoryLocks
from remediator.store.memory.queue import MemoryQueue
from remediator.store.memory.threads import MemoryThreads

_IntakeKey = tuple[str, str, str]


def _intake_key(job: Job | NewJob) -> _IntakeKey:
    return (job.rule, job.alert.status, job.alert.episode)


class MemoryStore(ComposedStore):
    """One process, nothing survives a restart. Same semantics as RedisStore.

    Per-alert state is capped (``max_firing``, ``max_episodes``); each entry dropped
    is counted in ``evictions`` and reported to ``on_evict`` (e.g. a metric).
    """

    kind = "memory"

    def __init__(
        self,
        *,
        firing_ttl: float = 6 * 3600.0,
        audit_max_events: int = 10_000,
        max_deliveries: int = 5,
        max_firing: int = 100_000,
        max_episodes: int = 100_000,
    ) -> None:
        self.evictions: Counter[str] = Counter()
        self.on_evict: Callable[[str], None] | None = None  # set by the app
        self.max_deliveries = max_deliveries
        self._firing_ttl = firing_ttl
        # (rule, alert status, episode) -> [first event id, copies collapsed into it]
        self._intake: Expiring[_IntakeKey, list[Any]] = Expiring(cap=max_episodes)
        self._memory_queue = MemoryQueue()
        self._memory_audit = MemoryAudit(audit_max_events)
        self._memory_gates = MemoryGates(
            firing_ttl=firing_ttl, max_firing=max_firing, max_episodes=max_episodes, evicted=self._evict
        )
        super().__init__(
            queue=self._memory_queue,
            locks=MemoryLocks(),
            gates=self._memory_gates,
            audit=self._memory_audit,
            threads=MemoryThreads(),
            approvals=MemoryApprovals(),
        )

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def accept(
        self, jobs: Sequence[Job | NewJob], firing: Sequence[Alert], resolved: Sequence[Alert]
    ) -> None:
        self._memory_gates.firing.update(firing, resolved)
        now = time.time()
        for job in jobs:
            self._memory_audit.jobs[job.event_id] = JobState.queued(job, now)
        if jobs:
            await self._memory_queue.push(job if isinstance(job, Job) else job.to_job() for job in jobs)

    async def accept_collapsing(
        self, jobs: Sequence[Job | NewJob], firing: Sequence[Alert], resolved: Sequence[Alert]
    ) -> list[str]:
        # The markers change before the first await, so concurrent calls see them; a
        # failed accept() takes back what this call changed.
        kept: list[Job | NewJob] = []
        collapsed: list[str] = []
        undo: list[tuple[_IntakeKey, list[Any] | None]] = []
        for job in jobs:
            if not collapses(job):
                kept.append(job)
                continue
            key = _intake_key(job)
            marker = self._intake.get(key)
            if marker is None:
                self._intake.set(key, [job.event_id, 0], self._firing_ttl)
                kept.append(job)
            else:
                marker[1] += 1
                collapsed.append(job.event_id)
            undo.append((key, marker))
        try:
            await self.accept(kept, firing, resolved)
        except BaseException:
            for key, marker in reversed(undo):
                if marker is None:
                    self._intake.pop(key)
                else:
                    marker[1] -= 1
            raise
        return collapsed

    async def settle_intake(self, job: Job, done: bool) -> int:
        if not collapses(job):
            return 0
        key = _intake_key(job)
        marker = self._intake.get(key)
        if marker is None or marker[0] != job.event_id:
            return 0
        n = int(marker[1])
        if done:
            marker[1] = 0
        else:
            self._intake.pop(key)
        return n

    async def intake_copies(self, job: Job) -> int:
        marker = self._intake.get(_intake_key(job)) if collapses(job) else None
        return int(marker[1]) if marker is not None and marker[0] == job.event_id else 0

    def sizes(self) -> dict[str, int]:
        """Entries per capped map (for tests and the memory bench)."""
        return {
            "firing": len(self._memory_gates.firing),
            "episode": len(self._memory_gates.episodes),
            "resolution": len(self._memory_gates.resolutions),
        }

    def _evict(self, kind: str) -> None:
        self.evictions[kind] += 1
        if self.on_evict is not None:
            self.on_evict(kind)
