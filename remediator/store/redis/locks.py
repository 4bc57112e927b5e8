"""Leases (``SET NX PX`` + token + compare-and-set scripts) and slots (a sorted set per group)."""

from __future__ import annotations

from remediator.store.redis.common import Part, guarded, ms
from remediator.store.values import holder_of, lease_token


class RedisLocks(Part):
    """One repair per target at a time, and concurrency budgets per group."""

    @guarded
    async def acquire_lease(self, target: str, ttl: float, holder: str = "") -> str | None:
        token = lease_token(holder)
        ok = await self._r.set(self.keys.lease(target), token, nx=True, px=ms(ttl))
        return token if ok else None

    @guarded
    async def extend_lease(self, target: str, token: str, ttl: float) -> bool:
        return bool(await self._b.run("EXTEND", [self.keys.lease(target)], [token, ms(ttl)]))

    @guarded
    async def release_lease(self, target: str, token: str) -> bool:
        return bool(await self._b.run("RELEASE", [self.keys.lease(target)], [token]))

    @guarded
    async def lease_remaining(self, target: str) -> float:
        return await self._b.pttl(self.keys.lease(target))

    @guarded
    async def lease_holder(self, target: str) -> str | None:
        return holder_of(await self._r.get(self.keys.lease(target)))

    @guarded
    async def acquire_slot(self, group: str, limit: int, token: str, ttl: float) -> bool:
        args = [token, limit, ms(ttl)]
        return bool(await self._b.run("ACQUIRE_SLOT", [self.keys.slots(group)], args))

    @guarded
    async def release_slot(self, group: str, token: str) -> None:
        await self._r.zrem(self.keys.slots(group), token)
