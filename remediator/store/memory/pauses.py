"""The memory store's pauses: one dict by id, the global pause (``GLOBAL_PAUSE``) among them."""

from __future__ import annotations

from remediator import clock
from remediator.store.values import GLOBAL_PAUSE, Pause


class MemoryPauses:
    """Every pause, and the version every change bumps."""

    def __init__(self) -> None:
        self._pauses: dict[str, Pause] = {}
        self._version = 0

    async def add_pause(self, pause: Pause) -> None:
        self._pauses[pause.id] = pause
        self._version += 1

    async def remove_pause(self, pause_id: str) -> Pause | None:
        self._version += 1
        pause = self._pauses.pop(pause_id, None)
        return pause if pause is not None and pause.until > clock.now() else None

    async def list_pauses(self) -> list[Pause]:
        now = clock.now()
        for pause_id in [i for i, p in self._pauses.items() if p.until <= now]:
            del self._pauses[pause_id]
        return sorted(self._pauses.values(), key=lambda p: (p.id != GLOBAL_PAUSE, p.created, p.id))

    async def pauses_version(self) -> int:
        return self._version

    async def versioned_pauses(self) -> tuple[int, list[Pause]]:
        return self._version, await self.list_pauses()
