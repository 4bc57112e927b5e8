"""The embedded store: one process, nothing survives a restart. Same contract as RedisStore.

``MemoryStore`` hands out its parts, one per interface of ``store.base``, each keeping
plain Python structures; ``admit`` and ``conclude`` run their steps one by one
(``store.stepwise``) without yielding between them, so each is atomic.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from remediator.store.admission import Admission, Admitted, Concluded, Conclusion
from remediator.store.memory.approvals import MemoryApprovals
from remediator.store.memory.audit import MemoryAudit
from remediator.store.memory.brakes import MemoryBrakes
from remediator.store.memory.credentials import MemoryCredentials
from remediator.store.memory.firing import MemoryFiring
from remediator.store.memory.gates import MemoryGates
from remediator.store.memory.generation import MemoryGeneration
from remediator.store.memory.intake import MemoryIntake
from remediator.store.memory.jobs import MemoryJobs
from remediator.store.memory.locks import MemoryLocks
from remediator.store.memory.pauses import MemoryPauses
from remediator.store.memory.queue import MemoryQueue
from remediator.store.memory.sessions import MemorySessions
from remediator.store.memory.threads import MemoryThreads
from remediator.store.stepwise import admit_in_steps, conclude_in_steps


class MemoryStore:
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
        max_firing: int = 100_000,
        max_episodes: int = 100_000,
    ) -> None:
        self.evictions: Counter[str] = Counter()
        self.on_evict: Callable[[str], None] | None = None  # set by the app
        self.queue = MemoryQueue()
        self.locks = MemoryLocks()
        self.pauses = MemoryPauses()
        self.firing = MemoryFiring(firing_ttl, max_firing, lambda: self._evict("firing"))
        self.gates = MemoryGates(max_episodes=max_episodes, evicted=self._evict)
        self.jobs = MemoryJobs()
        self.audit = MemoryAudit(audit_max_events, self.jobs)
        self.approvals = MemoryApprovals()
        self.threads = MemoryThreads()
        self.intake = MemoryIntake(
            firing=self.firing, jobs=self.jobs, queue=self.queue, ttl=firing_ttl, cap=max_episodes
        )
        self.credentials = MemoryCredentials()
        self.sessions = MemorySessions()
        self.generation = MemoryGeneration()
        self.brakes = MemoryBrakes()

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def admit(self, ask: Admission) -> Admitted:
        return await admit_in_steps(self, ask)

    async def conclude(self, end: Conclusion) -> Concluded:
        return await conclude_in_steps(self, end)

    def sizes(self) -> dict[str, int]:
        """Entries per capped map (for tests and the memory bench)."""
        return {
            "firing": len(self.firing),
            "episode": len(self.gates.episodes),
            "resolution": len(self.gates.resolutions),
        }

    def _evict(self, kind: str) -> None:
        self.evictions[kind] += 1
        if self.on_evict is not None:
            self.on_evict(kind)
