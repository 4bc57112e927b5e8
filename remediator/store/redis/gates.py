"""What the gates ask, on Redis: pause, firing index, episodes, cooldowns and circuits."""

from __future__ import annotations

import json
import secrets
import time

from remediator.store.base import GLOBAL_PAUSE, FailureCount, Pause
from remediator.store.redis.common import Backend, guarded, ms


class RedisGates:
    """Gate state: one key per fact, expiring on its own (the firing index by script)."""

    def __init__(self, backend: Backend) -> None:
        self._b = backend
        self._r = backend.r
        self.keys = backend.keys

    # ---- pause -------------------------------------------------------------------
    @guarded
    async def set_pause(self, pause: Pause) -> None:
        data = json.dumps({**pause.as_dict(), "id": GLOBAL_PAUSE})
        await self._r.set(self.keys.pause, data, pxat=max(1, int(pause.until * 1000)))
        await self._bump()

    @guarded
    async def clear_pause(self) -> bool:
        cleared = bool(await self._r.delete(self.keys.pause))
        await self._bump()
        return cleared

    @guarded
    async def get_pause(self) -> Pause | None:
        data = await self._r.get(self.keys.pause)
        if data is None:
            return None
        pause = Pause.from_dict(json.loads(data))
        return pause if pause.until > time.time() else None

    @guarded
    async def add_pause(self, pause: Pause) -> None:
        if pause.id == GLOBAL_PAUSE:
            await self.set_pause(pause)
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

    # ---- firing-alert index ----------------------------------------------------
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
