"""The memory store's leases (one repair per target) and slots (concurrency budgets)."""

from __future__ import annotations

from remediator import clock
from remediator.store.memory.expiring import Expiring
from remediator.store.values import holder_of, lease_token


class MemoryLocks:
    """Leases by target, slots by group; each ends at its deadline if not released."""

    def __init__(self) -> None:
        self._leases: Expiring[str, str] = Expiring()  # target -> token
        self._slots: dict[str, dict[str, float]] = {}  # group -> token -> deadline

    async def acquire_lease(self, target: str, ttl: float, holder: str = "") -> str | None:
        if self._leases.get(target) is not None:
            return None
        token = lease_token(holder)
        self._leases.set(target, token, ttl)
        return token

    async def extend_lease(self, target: str, token: str, ttl: float) -> bool:
        if self._leases.get(target) != token:
            return False
        self._leases.set(target, token, ttl)
        return True

    async def release_lease(self, target: str, token: str) -> bool:
        if self._leases.get(target) != token:
            return False
        self._leases.pop(target)
        return True

    async def lease_remaining(self, target: str) -> float:
        return self._leases.remaining(target)

    async def lease_holder(self, target: str) -> str | None:
        return holder_of(self._leases.get(target))

    async def acquire_slot(self, group: str, limit: int, token: str, ttl: float) -> bool:
        now = clock.monotonic()
        slots = {t: dl for t, dl in self._slots.get(group, {}).items() if dl > now}
        self._slots[group] = slots
        if token not in slots and len(slots) >= limit:
            return False
        slots[token] = now + ttl
        return True

    async def release_slot(self, group: str, token: str) -> None:
        self._slots.get(group, {}).pop(token, None)
