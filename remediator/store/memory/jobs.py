"""The memory store's job-state index: jobs without an outcome, by event id."""

from __future__ import annotations

from remediator import clock
from remediator.store.values import JobState


class MemoryJobs:
    """Written at intake (``queued``), moved by the workers, dropped at the outcome."""

    def __init__(self) -> None:
        self.states: dict[str, JobState] = {}

    def queued(self, state: JobState) -> None:
        self.states[state.event_id] = state

    def done(self, event_id: str) -> None:
        self.states.pop(event_id, None)

    async def set_job_state(self, event_id: str, state: str, why: str, target: str = "") -> None:
        current = self.states.get(event_id)
        if current is not None:
            self.states[event_id] = current.moved(state, why, target, clock.now())

    async def job_state(self, event_id: str) -> JobState | None:
        return self.states.get(event_id)

    async def job_states(self, state: str | None, limit: int) -> list[JobState]:
        """Oldest first (by when the job was received)."""
        found = [job for job in self.states.values() if state is None or job.state == state]
        return sorted(found, key=lambda job: (job.received_at, job.event_id))[:limit]
