"""Every pause on Redis, one model. The global pause (id ``GLOBAL_PAUSE``) keeps its own
key (``pause``, expiring at its end) as older replicas read it; the others are one hash
(pause id -> JSON). ``pauses:version`` is bumped by every change."""

from __future__ import annotations

import json
import time

from remediator.store.redis.common import Part, guarded
from remediator.store.values import GLOBAL_PAUSE, Pause


class RedisPauses(Part):
    """The pauses, and their version (``admit`` checks it)."""

    @guarded
    async def add_pause(self, pause: Pause) -> None:
        if pause.id == GLOBAL_PAUSE:
            data = json.dumps(pause.as_dict())
            await self._r.set(self.keys.pause, data, pxat=max(1, int(pause.until * 1000)))
        else:
            await self._r.hset(self.keys.pauses, pause.id, json.dumps(pause.as_dict()))
        await self._bump()

    @guarded
    async def remove_pause(self, pause_id: str) -> Pause | None:
        if pause_id == GLOBAL_PAUSE:
            data = await self._r.getdel(self.keys.pause)
        else:  # the one whose HDEL removed it wins (e.g. announces the end)
            data = await self._r.hget(self.keys.pauses, pause_id)
            if data is not None and not await self._r.hdel(self.keys.pauses, pause_id):
                data = None
        await self._bump()
        if data is None:
            return None
        pause = Pause.from_dict(json.loads(data))
        return pause if pause.until > time.time() else None

    async def _bump(self) -> None:
        await self._r.incr(self.keys.pauses_version)

    @guarded
    async def pauses_version(self) -> int:
        return int(await self._r.get(self.keys.pauses_version) or 0)

    @guarded
    async def list_pauses(self) -> list[Pause]:
        return (await self.versioned_pauses())[1]

    @guarded
    async def versioned_pauses(self) -> tuple[int, list[Pause]]:
        """The version, then the global pause first and the scoped ones by creation; drops
        the expired. The version is read first: a change in between makes it stale, never
        the list."""
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.get(self.keys.pauses_version)
            pipe.get(self.keys.pause)
            pipe.hgetall(self.keys.pauses)
            version, found, scoped = await pipe.execute()
        now, expired, pauses = time.time(), [], []
        for pause_id, data in scoped.items():
            pause = Pause.from_dict(json.loads(data))
            if pause.until <= now:
                expired.append(pause_id)
            else:
                pauses.append(pause)
        if expired:
            await self._r.hdel(self.keys.pauses, *expired)
        pauses.sort(key=lambda p: (p.created, p.id))
        if found is not None and (pause := Pause.from_dict(json.loads(found))).until > now:
            pauses.insert(0, pause)
        return int(version or 0), pauses
