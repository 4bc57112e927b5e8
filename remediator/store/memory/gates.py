"""The memory store's gate state: pause, firing index, episodes, cooldowns and circuits.

Per-alert state (firing alerts, episodes, resolutions) is capped by count, the oldest
evicted first, so an alert storm cannot take the process's memory: the TTLs alone let
150k alerts hold 400+ MiB. Per-target state is bounded by the targets the rules name.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from remediator.store.base import GLOBAL_PAUSE, FailureCount, Pause
from remediator.store.memory.expiring import Expiring
from remediator.store.memory.firing import FiringIndex

RuleTarget = tuple[str, str]  # (rule, target)
RuleEpisode = tuple[str, str]  # (rule, episode)


class MemoryGates:
    """What the gates ask; ``evicted(kind)`` is called for each capped entry dropped."""

    def __init__(
        self, *, firing_ttl: float, max_firing: int, max_episodes: int, evicted: Callable[[str], None]
    ) -> None:
        self.firing = FiringIndex(firing_ttl, max_firing, lambda: evicted("firing"))
        self.episodes: Expiring[RuleEpisode, bool] = Expiring(max_episodes, lambda: evicted("episode"))
        self.resolutions: Expiring[RuleEpisode, bool] = Expiring(max_episodes, lambda: evicted("resolution"))
        self._pause: Pause | None = None
        self._pauses: dict[str, Pause] = {}  # scoped pauses by id
        self._pauses_version = 0  # bumped by every change to the pauses
        self._cooldowns: Expiring[RuleTarget, bool] = Expiring()
        self._circuits: Expiring[RuleTarget, bool] = Expiring()  # open until the deadline
        self._attempts: dict[RuleTarget, list[float]] = {}  # failure times (epoch)

    async def set_pause(self, pause: Pause) -> None:
        self._pause = pause
        self._pauses_version += 1

    async def clear_pause(self) -> bool:
        was = await self.get_pause() is not None  # an expired pause is no pause
        self._pause = None
        self._pauses_version += 1
        return was

    async def get_pause(self) -> Pause | None:
        if self._pause is not None and self._pause.until <= time.time():
            self._pause = None
        return self._pause

    async def add_pause(self, pause: Pause) -> None:
        if pause.id == GLOBAL_PAUSE:
            await self.set_pause(pause)
        else:
            self._pauses[pause.id] = pause
            self._pauses_version += 1

    async def remove_pause(self, pause_id: str) -> Pause | None:
        self._pauses_version += 1
        if pause_id == GLOBAL_PAUSE:
            pause = await self.get_pause()
            self._pause = None
            return pause
        pause = self._pauses.pop(pause_id, None)
        return pause if pause is not None and pause.until > time.time() else None

    async def list_pauses(self) -> list[Pause]:
        now = time.time()
        for pause_id in [i for i, p in self._pauses.items() if p.until <= now]:
            del self._pauses[pause_id]
        scoped = sorted(self._pauses.values(), key=lambda p: (p.created, p.id))
        pause = await self.get_pause()
        return ([pause] if pause is not None else []) + scoped

    async def pauses_version(self) -> int:
        return self._pauses_version

    async def versioned_pauses(self) -> tuple[int, list[Pause]]:
        return self._pauses_version, await self.list_pauses()

    async def firing_labels(self) -> list[dict[str, str]]:
        return self.firing.labels()

    async def is_firing(self, fingerprint: str, starts_at: str) -> bool:
        return self.firing.is_firing(fingerprint, starts_at)

    async def episode_done(self, rule: str, episode: str) -> bool:
        return self.episodes.get((rule, episode)) is not None

    async def mark_episode(self, rule: str, episode: str, ttl: float) -> None:
        self.episodes.set((rule, episode), True, ttl)

    async def claim_resolution(self, rule: str, episode: str, ttl: float) -> bool:
        if self.resolutions.get((rule, episode)) is not None:
            return False
        self.resolutions.set((rule, episode), True, ttl)
        return True

    async def set_cooldown(self, rule: str, target: str, ttl: float) -> None:
        if ttl > 0:
            self._cooldowns.set((rule, target), True, ttl)

    async def cooldown_remaining(self, rule: str, target: str) -> float:
        return self._cooldowns.remaining((rule, target))

    async def record_failure(self, rule: str, target: str, window: float, max_attempts: int) -> FailureCount:
        key, now = (rule, target), time.time()
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
