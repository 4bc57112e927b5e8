"""Failed credentials on Redis: a sorted set of failure times per key (a client address,
a presented name), counted by one script on the server's clock; the good addresses of a
name are plain keys with a TTL."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from remediator.store.redis.common import Part, guarded, ms
from remediator.store.values import Tally


class RedisCredentials(Part):
    @guarded
    async def count_failure(self, keys: Sequence[str], window: float, limit: int) -> list[Tally]:
        names = [name for key in keys for name in (self.keys.failures(key), self.keys.failures_told(key))]
        found = await self._b.run("COUNT_FAILURE", names, [ms(window), limit, secrets.token_hex(8)])
        values = [int(v) for v in found]
        return [Tally(values[i], values[i + 1] / 1000, bool(values[i + 2])) for i in range(0, len(values), 3)]

    @guarded
    async def remember_good(self, name: str, address: str, ttl: float) -> None:
        await self._r.set(self.keys.good_address(name, address), "1", px=ms(ttl))

    @guarded
    async def known_good(self, name: str, address: str) -> bool:
        return bool(await self._r.exists(self.keys.good_address(name, address)))
