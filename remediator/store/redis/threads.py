"""Slack threads per (rule, target) on Redis: the first replica to set one wins."""

from __future__ import annotations

from remediator.store.redis.common import Part, guarded, ms, text


class RedisThreads(Part):
    @guarded
    async def claim_thread(self, rule: str, target: str, ts: str, ttl: float) -> str:
        return text(await self._b.run("CLAIM_THREAD", [self.keys.thread(rule, target)], [ts, ms(ttl)]))

    @guarded
    async def get_thread(self, rule: str, target: str) -> str | None:
        value = await self._b.r.get(self.keys.thread(rule, target))
        return None if value is None else text(value)
