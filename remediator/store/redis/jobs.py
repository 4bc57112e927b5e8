"""The job-state index on Redis: one hash, event id -> JobState JSON (written at intake,
moved by the workers, removed when the outcome is recorded)."""

from __future__ import annotations

import time

from remediator.store.redis.common import Part, guarded
from remediator.store.values import JobState


class RedisJobs(Part):
    """Jobs without an outcome, and what each is doing."""

    @guarded
    async def set_job_state(self, event_id: str, state: str, why: str, target: str = "") -> None:
        await self._b.run("JOB_STATE", [self.keys.job_states], [event_id, state, why, target, time.time()])

    @guarded
    async def job_state(self, event_id: str) -> JobState | None:
        data = await self._r.hget(self.keys.job_states, event_id)
        return None if data is None else JobState.loads(data)

    @guarded
    async def job_states(self, state: str | None, limit: int) -> list[JobState]:
        """Oldest first (by when the job was received)."""
        found = [JobState.loads(data) for data in (await self._r.hgetall(self.keys.job_states)).values()]
        found = [job for job in found if state is None or job.state == state]
        return sorted(found, key=lambda job: (job.received_at, job.event_id))[:limit]
