"""What a repair leaves on Redis: episodes, resolutions, cooldowns, attempts and circuits."""

from __future__ import annotations

import secrets

from remediator.store.redis.common import Part, guarded, ms
from remediator.store.values import FailureCount


class RedisGates(Part):
    """Gate state: one key per fact, expiring on its own."""

    # ---- episodes --------------------------------------------------------------
    @guarded
    async def episode_done(self, rule: str, episode: str) -> bool:
        return bool(await self._r.exists(self.keys.episode(rule, episode)))

    @guarded
    async def mark_episode(self, rule: str, episode: str, ttl: float) -> None:
        await self._r.set(self.keys.episode(rule, episode), "1", px=ms(ttl))

    @guarded
    async def claim_resolution(self, rule: str, episode: str, ttl: float) -> bool:
        key = self.keys.resolution(rule, episode)
        return bool(await self._r.set(key, "1", nx=True, px=ms(ttl)))

    @guarded
    async def forget_resolution(self, rule: str, episode: str) -> None:
        await self._r.delete(self.keys.resolution(rule, episode))

    # ---- cooldowns, attempts, circuits -------------------------------------------
    @guarded
    async def set_cooldown(self, rule: str, target: str, ttl: float) -> None:
        if ttl > 0:
            await self._r.set(self.keys.cooldown(rule, target), "1", px=ms(ttl))

    @guarded
    async def cooldown_remaining(self, rule: str, target: str) -> float:
        return await self._b.pttl(self.keys.cooldown(rule, target))

    @guarded
    async def record_failure(self, rule: str, target: str, window: float, max_attempts: int) -> FailureCount:
        keys = [self.keys.attempts(rule, target), self.keys.circuit(rule, target)]
        args = [ms(window), max_attempts, secrets.token_hex(8)]
        failures, opened = await self._b.run("RECORD_FAILURE", keys, args)
        return FailureCount(int(failures), bool(opened))

    @guarded
    async def reset_failures(self, rule: str, target: str) -> None:
        await self._r.delete(self.keys.attempts(rule, target))

    @guarded
    async def circuit_remaining(self, rule: str, target: str) -> float:
        return await self._b.pttl(self.keys.circuit(rule, target))
