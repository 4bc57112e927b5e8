"""The memory store's blast-radius brakes: per rule, when each target was last counted,
the jobs held and the ones released. Each call runs without yielding, so it is atomic."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from remediator import clock
from remediator.store.values import BrakeAnswer, BrakeState, HeldJob


@dataclass
class _Brake:
    counted: dict[str, float] = field(default_factory=dict)  # target -> last counted at
    held: dict[str, HeldJob] = field(default_factory=dict)  # event id -> the held job
    released: set[str] = field(default_factory=set)  # event ids an operator released

    def prune(self, now: float, within: float) -> None:
        for target in [t for t, at in self.counted.items() if at <= now - within]:
            del self.counted[target]


class MemoryBrakes:
    def __init__(self) -> None:
        self._brakes: dict[str, _Brake] = {}

    async def enter(
        self, rule: str, event_id: str, target: str, *, count: int, within: float, dry_run: bool
    ) -> BrakeAnswer:
        brake, now = self._brakes.setdefault(rule, _Brake()), clock.now()
        brake.prune(now, within)
        if event_id in brake.released:
            brake.released.discard(event_id)
            brake.counted[target] = now
            return BrakeAnswer("released", len(brake.counted))
        if event_id in brake.held:
            return BrakeAnswer("held", len(brake.counted))
        if target in brake.counted or len(brake.counted) < count:
            brake.counted[target] = now
            return BrakeAnswer("pass", len(brake.counted))
        opened = not brake.held
        brake.held[event_id] = HeldJob(event_id, target, now, dry_run)
        if opened:
            return BrakeAnswer("opened", len(brake.counted), (target,))
        return BrakeAnswer("held", len(brake.counted))

    async def state(self, rule: str, within: float) -> BrakeState:
        brake = self._brakes.get(rule)
        if brake is None:
            return BrakeState(rule, 0)
        brake.prune(clock.now(), within)
        held = sorted(brake.held.values(), key=lambda job: (job.at, job.event_id))
        return BrakeState(rule, len(brake.counted), tuple(held))

    async def release(self, rule: str, event_ids: Sequence[str] | None) -> list[HeldJob]:
        brake = self._brakes.get(rule)
        if brake is None:
            return []
        names = list(brake.held) if event_ids is None else [i for i in event_ids if i in brake.held]
        released = sorted((brake.held[i] for i in names), key=lambda job: (job.at, job.event_id))
        for job in released:
            del brake.held[job.event_id]
            brake.released.add(job.event_id)
        return released

    async def forget(self, rule: str, event_ids: Sequence[str]) -> None:
        brake = self._brakes.get(rule)
        if brake is not None:
            for event_id in event_ids:
                brake.held.pop(event_id, None)
                brake.released.discard(event_id)
