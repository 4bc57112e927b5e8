"""The store's generation marker on Redis: one key without expiry, set once (``SET NX``)."""

from __future__ import annotations

from remediator.store.redis.common import Part, guarded, ms
from remediator.store.values import StoreMarker


class RedisGeneration(Part):
    @guarded
    async def marker(self) -> StoreMarker | None:
        data = await self._r.get(self.keys.generation)
        return None if data is None else StoreMarker.loads(data)

    @guarded
    async def create_marker(self, marker: StoreMarker) -> StoreMarker:
        if await self._r.set(self.keys.generation, marker.dumps(), nx=True):
            return marker
        data = await self._r.get(self.keys.generation)
        return marker if data is None else StoreMarker.loads(data)

    @guarded
    async def claim_report(self, marker_id: str, ttl: float) -> bool:
        return bool(await self._r.set(self.keys.generation_reported(marker_id), "1", nx=True, px=ms(ttl)))
