"""The memory store's generation marker (it lives as long as the process: no wipe to see)."""

from __future__ import annotations

from remediator.store.memory.expiring import Expiring
from remediator.store.values import StoreMarker


class MemoryGeneration:
    def __init__(self) -> None:
        self._marker: StoreMarker | None = None
        self._reported: Expiring[str, bool] = Expiring()

    async def marker(self) -> StoreMarker | None:
        return self._marker

    async def create_marker(self, marker: StoreMarker) -> StoreMarker:
        if self._marker is None:
            self._marker = marker
        return self._marker

    async def claim_report(self, marker_id: str, ttl: float) -> bool:
        if self._reported.get(marker_id) is not None:
            return False
        self._reported.set(marker_id, True, ttl)
        return True
