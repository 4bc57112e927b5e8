"""The blast-radius brakes on Redis: per rule, a sorted set of the targets counted (by
the server's clock), a hash of the jobs held and a set of the ones released; entering
and releasing are one script each (``BRAKE_ENTER``, ``BRAKE_RELEASE``), so two replicas
never both let the target past the limit through, and the brake opens (is told) once."""

from __future__ import annotations

import time
from collections.abc import Sequence

from remediator.store.redis.common import Part, guarded, ms, text
from remediator.store.values import BrakeAnswer, BrakeState, BrakeVerdict, HeldJob

VERDICTS: dict[str, BrakeVerdict] = {v: v for v in ("pass", "released", "held", "opened")}
KEEP = 30 * 86400.0  # held and released ids live this long after the last write (no leak)


class RedisBrakes(Part):
    @guarded
    async def enter(
        self, rule: str, event_id: str, target: str, *, count: int, within: float, dry_run: bool
    ) -> BrakeAnswer:
        args = [event_id, target, count, ms(within), "1" if dry_run else "0", ms(KEEP)]
        found = await self._b.run("BRAKE_ENTER", self._keys(rule), args)
        verdict = VERDICTS[text(found[0])]
        return BrakeAnswer(verdict, int(found[1]), tuple(text(t) for t in found[2:]))

    @guarded
    async def state(self, rule: str, within: float) -> BrakeState:
        counted, held = self.keys.brake_counted(rule), self.keys.brake_held(rule)
        since = int(time.time() * 1000) - ms(within)  # a reader's clock: display only
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.zcount(counted, f"({since}", "+inf")
            pipe.hgetall(held)
            n, jobs = await pipe.execute()
        found = (HeldJob.loads(text(i), data) for i, data in jobs.items())
        return BrakeState(rule, int(n), tuple(sorted(found, key=lambda job: (job.at, job.event_id))))

    @guarded
    async def release(self, rule: str, event_ids: Sequence[str] | None) -> list[HeldJob]:
        if event_ids is not None and not event_ids:
            return []
        keys = [self.keys.brake_held(rule), self.keys.brake_released(rule)]
        ids = ["*"] if event_ids is None else list(event_ids)
        found = await self._b.run("BRAKE_RELEASE", keys, [ms(KEEP), *ids])
        jobs = [HeldJob.loads(text(found[i]), found[i + 1]) for i in range(0, len(found), 2)]
        return sorted(jobs, key=lambda job: (job.at, job.event_id))

    @guarded
    async def forget(self, rule: str, event_ids: Sequence[str]) -> None:
        if event_ids:
            async with self._r.pipeline(transaction=False) as pipe:
                pipe.hdel(self.keys.brake_held(rule), *event_ids)
                pipe.srem(self.keys.brake_released(rule), *event_ids)
                await pipe.execute()

    def _keys(self, rule: str) -> list[str]:
        k = self.keys
        return [k.brake_counted(rule), k.brake_held(rule), k.brake_released(rule)]
