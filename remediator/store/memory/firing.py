"""The memory store's index of firing alerts, capped by count, the oldest sent dropped first."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from remediator import clock
from remediator.models import Alert


class MemoryFiring:
    """Per fingerprint: when the alert started, its labels, when the entry expires."""

    def __init__(self, ttl: float, cap: int, evicted: Callable[[], None]) -> None:
        self._ttl, self._cap, self._evicted = ttl, cap, evicted
        self._alerts: dict[str, tuple[str, dict[str, str], float]] = {}  # fp -> starts, labels, exp
        self._sweep_at = 4096

    def __len__(self) -> int:
        return len(self._alerts)

    def update(self, firing: Sequence[Alert], resolved: Sequence[Alert]) -> None:
        """Index alerts sent as firing (sent again: now the newest), drop resolved ones."""
        now = clock.now()
        expires = now + self._ttl
        if len(self._alerts) > self._sweep_at:  # drop alerts that stopped being sent
            self._alerts = {fp: item for fp, item in self._alerts.items() if item[2] > now}
            self._sweep_at = max(4096, 2 * len(self._alerts))
        for alert in firing:
            self._alerts.pop(alert.fingerprint, None)
            self._alerts[alert.fingerprint] = (
                alert.starts_at.isoformat(),
                dict(alert.labels),
                expires,
            )
        while len(self._alerts) > self._cap:  # the oldest sent goes first
            del self._alerts[next(iter(self._alerts))]
            self._evicted()
        for alert in resolved:
            self._alerts.pop(alert.fingerprint, None)

    async def firing_labels(self) -> list[dict[str, str]]:
        now = clock.now()
        for fp in [fp for fp, (_, _, exp) in self._alerts.items() if exp <= now]:
            del self._alerts[fp]
        return [labels for _, labels, _ in self._alerts.values()]

    async def is_firing(self, fingerprint: str, starts_at: str) -> bool:
        item = self._alerts.get(fingerprint)
        return item is not None and item[0] == starts_at and item[2] > clock.now()
