"""The memory store's gate state: episodes, resolutions, cooldowns, attempts and circuits.

Per-alert state (episodes, resolutions) is capped by count, the oldest evicted first, so
an alert storm cannot take the process's memory. Per-target state is bounded by the
targets the rules name.
"""

from __future__ import annotations

from collections.abc import Callable

from remediator import clock
from remediator.store.memory.expiring import Expiring
from remediator.store.values import FailureCount

RuleTarget = tuple[str, str]  # (rule, target)
RuleEpisode = tuple[str, str]  # (rule, episode)


class MemoryGates:
    """What a repair leaves; ``evicted(kind)`` is called for each capped entry dropped."""

    def __init__(self, *, max_episodes: int, evicted: Callable[[str], None]) -> None:
        self.episodes: Expiring[RuleEpisode, bool] = Expiring(max_episodes, lambda: evicted("episode"))
        self.resolutions: Expiring[RuleEpisode, bool] = Expiring(max_episodes, lambda: evicted("resolution"))
        self._cooldowns: Expiring[RuleTarget, bool] = Expiring()
        self._circuits: Expiring[RuleTarget, bool] = Expiring()  # open until the deadline
        self._attempts: dict[RuleTarget, list[float]] = {}  # failure times (epoch)

    async def episode_done(self, rule: str, episode: str) -> bool:
        return self.episodes.get((rule, episode)) is not None

    async def mark_episode(self, rule: str, episode: str, ttl: float) -> None:
        self.episodes.set((rule, episode), True, ttl)

    async def claim_resolution(self, rule: str, episode: str, ttl: float) -> bool:
        if self.resolutions.get((rule, episode)) is not None:
            return False
        self.resolutions.set((rule, episode), True, ttl)
        return True

    async def forget_resolution(self, rule: str, episode: str) -> None:
        self.resolutions.pop((rule, episode))

    async def set_cooldown(self, rule: str, target: str, ttl: float) -> None:
        if ttl > 0:
            self._cooldowns.set((rule, target), True, ttl)

    async def cooldown_remaining(self, rule: str, target: str) -> float:
        return self._cooldowns.remaining((rule, target))

    async def record_failure(self, rule: str, target: str, window: float, max_attempts: int) -> FailureCount:
        key, now = (rule, target), clock.now()
        recent = [t for t in self._attempts.get(key, []) if t > now - window] + [now]
        self._attempts[key] = recent
        opened = False
        if len(recent) >= max_attempts and self._circuits.get(key) is None:
            self._circuits.set(key, True, window)
            opened = True
        return FailureCount(len(recent), opened)

    async def reset_failures(self, rule: str, target: str) -> None:
        self._attempts.pop((rule, target), None)

    async def circuit_remaining(self, rule: str, target: str) -> float:
        return self._circuits.remaining((rule, target))
