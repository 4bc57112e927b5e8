"""The memory store's console sessions: open ones by id, and the ids of each credential."""

from __future__ import annotations

from remediator.store.memory.expiring import Expiring


class MemorySessions:
    def __init__(self) -> None:
        self._sessions: Expiring[str, str] = Expiring()  # session id -> credential name
        self._of: dict[str, set[str]] = {}  # credential name -> its session ids

    async def open_session(self, session_id: str, name: str, ttl: float) -> None:
        self._sessions.set(session_id, name, ttl)
        ids = self._of.setdefault(name, set())
        ids.intersection_update(i for i in list(ids) if self._sessions.get(i) is not None)
        ids.add(session_id)

    async def session_name(self, session_id: str) -> str | None:
        return self._sessions.get(session_id)

    async def close_session(self, session_id: str) -> None:
        name = self._sessions.pop(session_id)
        if name is not None:
            self._of.get(name, set()).discard(session_id)

    async def close_sessions_of(self, name: str) -> int:
        return sum(self._sessions.pop(i) is not None for i in self._of.pop(name, set()))
