"""The alerts firing now, on Redis: a sorted set of fingerprints by expiry and a hash of
their labels (``FIRING`` and ``IS_FIRING`` drop the expired as they read)."""

from __future__ import annotations

import json
import time

from remediator.store.redis.common import Part, guarded


class RedisFiring(Part):
    """Inhibition reads the labels; the "resolved already?" check one alert's episode."""

    @guarded
    async def firing_labels(self) -> list[dict[str, str]]:
        keys = [self.keys.firing_index, self.keys.firing_alerts]
        values = await self._b.run("FIRING", keys, [int(time.time() * 1000)])
        return [json.loads(value)["labels"] for value in values]

    @guarded
    async def is_firing(self, fingerprint: str, starts_at: str) -> bool:
        keys = [self.keys.firing_index, self.keys.firing_alerts]
        data = await self._b.run("IS_FIRING", keys, [fingerprint, int(time.time() * 1000)])
        return data is not None and bool(json.loads(data)["startsAt"] == starts_at)
