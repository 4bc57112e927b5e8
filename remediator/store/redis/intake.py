"""The webhook intake on Redis: index the alerts and queue the jobs in one round trip.

Concurrent accept() calls share that round trip (``batching.AcceptBatcher``). An
automatic job is collapsed into the first one of its (rule, alert status, episode): the
intake marker ``keys.intake`` counts the copies (``scripts.ENQUEUE``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import orjson
from redis.asyncio.cluster import RedisCluster

from remediator.models import Alert, Job, NewJob
from remediator.store.redis.batching import AcceptBatcher, IntakeWrite
from remediator.store.redis.common import FAILURES, Backend, Part, guarded, log, ms, text
from remediator.store.values import JobState, collapses


def intake(
    jobs: Sequence[Job | NewJob],
    firing: Sequence[Alert],
    resolved: Sequence[Alert],
    firing_ttl: float,
    collapse: Callable[[Job | NewJob], str] | None = None,
) -> IntakeWrite:
    """What one accept() stores; firing alerts expire from the index after ``firing_ttl``.

    ``collapse`` names a job's intake key ('' = never collapsed): see ``scripts.ENQUEUE``."""
    now = time.time()
    expires = int((now + firing_ttl) * 1000)
    return IntakeWrite(
        jobs=[job.dumps() for job in jobs],
        states={job.event_id: JobState.queued_json(job, now) for job in jobs},
        firing={
            a.fingerprint: (
                expires,
                orjson.dumps({"startsAt": a.starts_at.isoformat(), "labels": a.labels}).decode(),
            )
            for a in firing
        },
        resolved=[a.fingerprint for a in resolved],
        ids=[job.event_id for job in jobs],
        rules=[job.rule for job in jobs],
        collapse=[collapse(job) for job in jobs] if collapse is not None else [""] * len(jobs),
    )


async def write_intake(backend: Backend, batch: list[IntakeWrite], ttl: float) -> None:
    """One round trip for every accept() of the batch; each item's ``collapsed`` gets the
    event ids of its jobs collapsed into earlier ones (markers live ``ttl``)."""
    if isinstance(backend.r, RedisCluster):
        collapsed = await _clustered_intake(backend, batch, ttl)
    else:  # one script: no second round trip to take back the collapsed jobs' states
        collapsed = await _script_intake(backend, batch, ttl)
    for item in batch:
        item.collapsed[:] = [event_id for event_id in item.ids if event_id in collapsed]


async def _script_intake(backend: Backend, batch: list[IntakeWrite], ttl: float) -> set[str]:
    """``scripts.INTAKE``: the firing index, the job states and the jobs in one command."""
    k, latest = backend.keys, _latest_firing(batch)
    firing = [(fp, item) for fp, item in latest.items() if item is not None]
    resolved = [fp for fp, item in latest.items() if item is None]
    keys = [k.streams, k.firing_index, k.firing_alerts, k.job_states, k.bell]
    args: list[str | bytes | int] = [ms(ttl), len(firing), len(resolved), k.rule_streams, k.group]
    for fp, (expires, data) in firing:
        args += [fp, expires, data]
    args += resolved
    for item in batch:
        for event_id, key, rule, job in zip(item.ids, item.collapse, item.rules, item.jobs, strict=True):
            if key:
                keys.append(key)
            args += [1 if key else 0, event_id, item.states.get(event_id, ""), rule, job]
    return {text(i) for i in await backend.run("INTAKE", keys, args)}


async def _clustered_intake(backend: Backend, batch: list[IntakeWrite], ttl: float) -> set[str]:
    """Redis Cluster: the keys live in three slots ({firing}, {audit}, {q}), so the index
    writes are pipelined (the job states before the jobs), then ENQUEUE runs (a cluster
    pipeline refuses EVALSHA), and the collapsed jobs' states are taken back after."""
    r, k, latest = backend.r, backend.keys, _latest_firing(batch)
    firing = {fp: item for fp, item in latest.items() if item is not None}
    resolved = [fp for fp, item in latest.items() if item is None]
    async with r.pipeline(transaction=False) as pipe:
        if firing:
            pipe.zadd(k.firing_index, {fp: exp for fp, (exp, _) in firing.items()})
            pipe.hset(k.firing_alerts, mapping={fp: data for fp, (_, data) in firing.items()})
        if resolved:
            pipe.zrem(k.firing_index, *resolved)
            pipe.hdel(k.firing_alerts, *resolved)
        if any(item.states for item in batch):
            pipe.hset(k.job_states, mapping={e: d for item in batch for e, d in item.states.items()})
        await pipe.execute()
    keys, args = [k.streams, k.bell], list[str | bytes | int]([ms(ttl), k.rule_streams, k.group])
    for item in batch:
        for event_id, key, rule, data in zip(item.ids, item.collapse, item.rules, item.jobs, strict=True):
            if key:
                keys.append(key)
            args += [event_id if key else "", rule, data]
    if len(args) == 3:
        return set()
    collapsed = {text(i) for i in await backend.run("ENQUEUE", keys, args)}
    if collapsed:  # their queued state was written before the script ran: drop it
        try:
            await r.hdel(k.job_states, *collapsed)
        except FAILURES as exc:  # the jobs are stored: the answer stays 202
            log.warning("store.intake_state_cleanup_failed", error=repr(exc), jobs=len(collapsed))
    return collapsed


class RedisIntake(Part):
    """The webhook's write: alerts indexed, jobs and their states stored, in one round trip
    shared by every accept() of the moment."""

    def __init__(self, backend: Backend, firing_ttl: float) -> None:
        super().__init__(backend)
        self._firing_ttl = firing_ttl
        self._batcher = AcceptBatcher(self._write)

    async def accept(
        self, jobs: Sequence[Job | NewJob], firing: Sequence[Alert], resolved: Sequence[Alert]
    ) -> None:
        item = intake(jobs, firing, resolved, self._firing_ttl)
        if item.jobs or item.firing or item.resolved:
            await self._batcher.submit(item)

    async def accept_collapsing(
        self, jobs: Sequence[Job | NewJob], firing: Sequence[Alert], resolved: Sequence[Alert]
    ) -> list[str]:
        item = intake(jobs, firing, resolved, self._firing_ttl, self.key)
        if item.jobs or item.firing or item.resolved:
            await self._batcher.submit(item)
        return item.collapsed

    @guarded
    async def settle_intake(self, job: Job, done: bool) -> int:
        if not collapses(job):
            return 0
        n = await self._b.run("SETTLE_INTAKE", [self.key(job)], [job.event_id, int(done)])
        return int(n)

    @guarded
    async def intake_copies(self, job: Job) -> int:
        if not collapses(job):
            return 0
        owner, n = await self._r.hmget(self.key(job), ["id", "n"])
        return int(n or 0) if owner is not None and text(owner) == job.event_id else 0

    def key(self, job: Job | NewJob) -> str:
        """The job's intake marker ('' for a job never collapsed: a manual replay)."""
        return self.keys.intake(job.alert.status, job.rule, job.alert.episode) if collapses(job) else ""

    async def close(self) -> None:
        """Fail the writes still waiting (the store is closing)."""
        await self._batcher.close()

    @guarded
    async def _write(self, batch: list[IntakeWrite]) -> None:
        """One pipelined round trip for every accept() waiting in this moment."""
        await write_intake(self._b, batch, self._firing_ttl)


def _latest_firing(batch: list[IntakeWrite]) -> dict[str, tuple[int, str] | None]:
    """Per fingerprint, the last word of the batch: firing (expiry, data) or resolved (None)."""
    latest: dict[str, tuple[int, str] | None] = {}
    for item in batch:
        latest.update(item.firing)
        latest.update(dict.fromkeys(item.resolved))
    return latest
