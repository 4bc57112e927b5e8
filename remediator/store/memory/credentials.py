"""The memory store's failed credentials (also each replica's fallback while the shared
store is down): failure times per key in a sliding window, and the good addresses."""

from __future__ import annotations

import time
from collections.abc import Sequence

from remediator.store.memory.expiring import Expiring
from remediator.store.values import Tally


class MemoryCredentials:
    """At most ``cap`` keys of each kind (the oldest go first): an attacker who cycles
    through addresses or names cannot grow it without bound."""

    def __init__(self, cap: int = 100_000) -> None:
        self._failures: Expiring[str, list[float]] = Expiring(cap)  # key -> times, oldest first
        self._told: Expiring[str, bool] = Expiring(cap)  # key -> its burst was reported
        self._good: Expiring[tuple[str, str], bool] = Expiring(cap)

    async def count_failure(self, keys: Sequence[str], window: float, limit: int) -> list[Tally]:
        return [self._count(key, window, limit, time.monotonic()) for key in keys]

    def _count(self, key: str, window: float, limit: int, now: float) -> Tally:
        times = [t for t in self._failures.get(key) or () if t > now - window]
        times = [*times, now][-(limit + 1) :]
        self._failures.set(key, times, window)
        if len(times) < limit:
            return Tally(len(times), 0.0)
        left = max(0.001, times[-limit] + window - now)  # until fewer than limit remain
        first = self._told.get(key) is None
        self._told.set(key, True, left + window)
        return Tally(len(times), left, first)

    async def remember_good(self, name: str, address: str, ttl: float) -> None:
        self._good.set((name, address), True, ttl)

    async def known_good(self, name: str, address: str) -> bool:
        return self._good.get((name, address)) is not None
