"""Console sessions on Redis: one key per open session (the credential's name, expiring
with the session) and one set per credential of its session ids."""

from __future__ import annotations

from remediator.store.redis.common import Part, guarded, ms, text


class RedisSessions(Part):
    @guarded
    async def open_session(self, session_id: str, name: str, ttl: float) -> None:
        keys = [self.keys.session(session_id), self.keys.sessions_of(name)]
        await self._b.run("OPEN_SESSION", keys, [name, ms(ttl), session_id])

    @guarded
    async def session_name(self, session_id: str) -> str | None:
        name = await self._r.get(self.keys.session(session_id))
        return None if name is None else text(name)

    @guarded
    async def close_session(self, session_id: str) -> None:
        name = await self._r.getdel(self.keys.session(session_id))
        if name is not None:
            await self._r.srem(self.keys.sessions_of(text(name)), session_id)

    @guarded
    async def close_sessions_of(self, name: str) -> int:
        ids = await self._r.smembers(self.keys.sessions_of(name))
        async with self._r.pipeline(transaction=True) as pipe:
            for session_id in ids:
                pipe.delete(self.keys.session(text(session_id)))
            pipe.delete(self.keys.sessions_of(name))
            ended = await pipe.execute()
        return sum(int(n) for n in ended[:-1])
