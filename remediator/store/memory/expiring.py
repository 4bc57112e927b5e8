"""A dict whose entries vanish at their deadline: the memory store's stand-in for key TTLs."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from remediator import clock

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Expiring(Generic[K, V]):
    """Entries that vanish at their deadline (monotonic clock).

    With a ``cap``, the oldest entry (the first set, or set again, longest ago) goes
    when one more would exceed it; ``evicted`` is called for each live one dropped.
    """

    def __init__(self, cap: int | None = None, evicted: Callable[[], None] | None = None) -> None:
        self._data: dict[K, tuple[V, float]] = {}
        self._sweep_at = 4096  # sweep when the dict grows past this; then double it
        self._cap, self._evicted = cap, evicted

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: K) -> V | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[1] <= clock.monotonic():
            del self._data[key]
            return None
        return item[0]

    def set(self, key: K, value: V, ttl: float) -> None:
        if self._cap is not None:
            self._data.pop(key, None)  # set again: now the newest
        self._data[key] = (value, clock.monotonic() + ttl)
        if len(self._data) > self._sweep_at:
            self.sweep()
            self._sweep_at = max(4096, 2 * len(self._data))
        while self._cap is not None and len(self._data) > self._cap:
            oldest = next(iter(self._data))
            _, deadline = self._data.pop(oldest)
            if deadline > clock.monotonic() and self._evicted is not None:
                self._evicted()

    def remaining(self, key: K) -> float:
        if self.get(key) is None:
            return 0.0
        return max(0.0, self._data[key][1] - clock.monotonic())

    def keys(self) -> list[K]:
        return list(self._data)

    def pop(self, key: K) -> V | None:
        item = self._data.pop(key, None)
        return None if item is None or item[1] <= clock.monotonic() else item[0]

    def sweep(self) -> None:
        now = clock.monotonic()
        for key in [k for k, (_, dl) in self._data.items() if dl <= now]:
            del self._data[key]
