"""The memory store's Slack threads per (rule, target)."""

from __future__ import annotations

from remediator.store.memory.expiring import Expiring


class MemoryThreads:
    """The first thread set for a (rule, target) wins until it expires."""

    def __init__(self) -> None:
        self._threads: Expiring[tuple[str, str], str] = Expiring()  # (rule, target) -> ts

    async def claim_thread(self, rule: str, target: str, ts: str, ttl: float) -> str:
        current = self._threads.get((rule, target))
        if current is not None:
            return current
        self._threads.set((rule, target), ts, ttl)
        return ts

    async def get_thread(self, rule: str, target: str) -> str | None:
        return self._threads.get((rule, target))
