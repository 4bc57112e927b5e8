"""The memory store's intake: alerts indexed, jobs queued with their states, and an
automatic job collapsed into the first one of its (rule, alert status, episode)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from remediator import clock
from remediator.models import Alert, Job, NewJob
from remediator.store.memory.expiring import Expiring
from remediator.store.memory.firing import MemoryFiring
from remediator.store.memory.jobs import MemoryJobs
from remediator.store.memory.queue import MemoryQueue
from remediator.store.values import JobState, collapses

_IntakeKey = tuple[str, str, str]


def _intake_key(job: Job | NewJob) -> _IntakeKey:
    return (job.rule, job.alert.status, job.alert.episode)


class MemoryIntake:
    """Writes to the firing index, the job states and the queue it is given."""

    def __init__(
        self, *, firing: MemoryFiring, jobs: MemoryJobs, queue: MemoryQueue, ttl: float, cap: int
    ) -> None:
        self._firing, self._jobs, self._queue = firing, jobs, queue
        self._ttl = ttl
        # (rule, alert status, episode) -> [first event id, copies collapsed into it]
        self._markers: Expiring[_IntakeKey, list[Any]] = Expiring(cap=cap)

    async def accept(
        self, jobs: Sequence[Job | NewJob], firing: Sequence[Alert], resolved: Sequence[Alert]
    ) -> None:
        self._firing.update(firing, resolved)
        now = clock.now()
        for job in jobs:
            self._jobs.queued(JobState.queued(job, now))
        if jobs:
            await self._queue.push(job if isinstance(job, Job) else job.to_job() for job in jobs)

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
            marker = self._markers.get(key)
            if marker is None:
                self._markers.set(key, [job.event_id, 0], self._ttl)
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
                    self._markers.pop(key)
                else:
                    marker[1] -= 1
            raise
        return collapsed

    async def settle_intake(self, job: Job, done: bool) -> int:
        if not collapses(job):
            return 0
        key = _intake_key(job)
        marker = self._markers.get(key)
        if marker is None or marker[0] != job.event_id:
            return 0
        n = int(marker[1])
        if done:
            marker[1] = 0
        else:
            self._markers.pop(key)
        return n

    async def intake_copies(self, job: Job) -> int:
        marker = self._markers.get(_intake_key(job)) if collapses(job) else None
        return int(marker[1]) if marker is not None and marker[0] == job.event_id else 0
