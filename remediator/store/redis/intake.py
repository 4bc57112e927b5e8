"""The webhook intake on Redis: index the alerts and queue the jobs in one round trip."""

from __future__ import annotations

import time
from collections.abc import Sequence

import orjson
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

from remediator.models import Alert, Job, NewJob
from remediator.store.base import JobState
from remediator.store.redis import scripts as lua
from remediator.store.redis.batching import Intake
from remediator.store.redis.common import Backend


def intake(
    jobs: Sequence[Job | NewJob], firing: Sequence[Alert], resolved: Sequence[Alert], firing_ttl: float
) -> Intake:
    """What one accept() stores; firing alerts expire from the index after ``firing_ttl``."""
    now = time.time()
    expires = int((now + firing_ttl) * 1000)
    return Intake(
        jobs=[job.dumps() for job in jobs],
        states={job.event_id: JobState.queued(job, now).dumps() for job in jobs},
        firing={
            a.fingerprint: (
                expires,
                orjson.dumps({"startsAt": a.starts_at.isoformat(), "labels": a.labels}).decode(),
            )
            for a in firing
        },
        resolved=[a.fingerprint for a in resolved],
    )


async def write_intake(backend: Backend, batch: list[Intake]) -> None:
    """One pipelined round trip for every accept() of the batch."""
    try:
        await _pipeline_intake(backend, batch)
    except NoScriptError:  # a restarted Redis forgot the script: load it, write again
        await backend.r.script_load(lua.ENQUEUE)
        await _pipeline_intake(backend, batch)


async def _pipeline_intake(backend: Backend, batch: list[Intake]) -> None:
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
        if any(item.states for item in batch):  # the job-state index, same round trip, before the jobs
            pipe.hset(k.job_states, mapping={e: d for item in batch for e, d in item.states.items()})
        jobs = [data for item in batch for data in item.jobs]
        clustered = isinstance(r, RedisCluster)  # its pipelines refuse EVALSHA
        if jobs and not clustered:
            # EVALSHA straight into the pipeline: redis-py's script-in-pipeline support
            # costs an extra SCRIPT EXISTS round trip per batch. On NOSCRIPT the jobs
            # were not added, and the firing-index writes are idempotent: write again.
            pipe.evalsha(backend.scripts["ENQUEUE"].sha, 1, k.stream, *jobs)
        await pipe.execute()
    if jobs and clustered:
        await backend.run("ENQUEUE", [k.stream], jobs)


def _latest_firing(batch: list[Intake]) -> dict[str, tuple[int, str] | None]:
    """Per fingerprint, the last word of the batch: firing (expiry, data) or resolved (None)."""
    latest: dict[str, tuple[int, str] | None] = {}
    for item in batch:
        latest.update(item.firing)
        latest.update(dict.fromkeys(item.resolved))
    return latest
